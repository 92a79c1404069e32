package stack

import (
	"bytes"
	"fmt"
	"os"
	"strings"
)

// processIdentity reads a process's start time (field 22 of
// /proc/PID/stat, in clock ticks since boot) and its argv
// (/proc/PID/cmdline).
func processIdentity(pid int) (start string, argv []string, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", nil, errGone
	}
	// The command name (field 2) is in parentheses and may hold spaces
	// and parentheses itself: the fields that follow start after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return "", nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(stat[i+1:]))
	// fields[0] is field 3 (the state), so field 22 is fields[19].
	if len(fields) < 20 {
		return "", nil, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields)+2)
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return "", nil, errGone
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return "", nil, errGone
	}
	if len(cmdline) > 0 {
		argv = strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
	}
	return fields[19], argv, nil
}
