package stack

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// sZomb is SZOMB of <sys/proc.h>: a process that exited and awaits its parent.
const sZomb = 5

// processIdentity reads a process's start time (kern.proc.pid, in
// microseconds since the epoch) and its argv (kern.procargs2: argc, the
// executable's path, padding, then argc strings).
func processIdentity(pid int) (start string, argv []string, err error) {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil || kp.Proc.P_pid != int32(pid) {
		return "", nil, errGone
	}
	if kp.Proc.P_stat == sZomb {
		return "", nil, errGone
	}
	tv := kp.Proc.P_starttime
	start = strconv.FormatInt(int64(tv.Sec)*1e6+int64(tv.Usec), 10)
	raw, err := unix.SysctlRaw("kern.procargs2", pid)
	if err != nil || len(raw) < 4 {
		return "", nil, fmt.Errorf("pid %d: cannot read its arguments", pid)
	}
	argc := int(binary.LittleEndian.Uint32(raw))
	rest := raw[4:]
	i := bytes.IndexByte(rest, 0) // the executable's path
	if i < 0 {
		return "", nil, fmt.Errorf("pid %d: malformed arguments", pid)
	}
	rest = rest[i:]
	for len(rest) > 0 && rest[0] == 0 {
		rest = rest[1:]
	}
	for len(argv) < argc {
		j := bytes.IndexByte(rest, 0)
		if j < 0 {
			return "", nil, fmt.Errorf("pid %d: malformed arguments", pid)
		}
		argv = append(argv, string(rest[:j]))
		rest = rest[j+1:]
	}
	return start, argv, nil
}
