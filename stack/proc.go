package stack

import (
	"errors"
	"slices"
)

// A process is known as the one ktrace started by three things, all of
// which must match what state.json recorded when it was started: its PID,
// its start time as the operating system reports it (so that a PID the
// system gave to another program later does not count), and the exact
// argv ktrace gave it. ktrace never signals a PID of 1 or less.

// errGone is returned by processIdentity for a process that has exited
// (or is a zombie waiting to be reaped).
var errGone = errors.New("process has exited")

// owns reports whether pid is the process described by start and argv.
func owns(pid int, start string, argv []string) bool {
	if pid <= 1 || start == "" || len(argv) == 0 {
		return false
	}
	gotStart, gotArgv, err := processIdentity(pid)
	return err == nil && gotStart == start && slices.Equal(gotArgv, argv)
}

// processExists reports whether some process, ours or not, has pid.
func processExists(pid int) bool {
	_, _, err := processIdentity(pid)
	return err == nil
}
