//go:build linux || darwin

package stack

import (
	"fmt"
	"os/exec"
	"syscall"
)

// Supported reports whether the stack runs on this system: on Linux and
// macOS it can prove which processes it started (processIdentity).
func Supported() error { return nil }

// detach makes the child the leader of a session of its own, so that it
// outlives the ktrace process that started it.
func detach(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} }

func signalTerm(pid int) error { return signalPid(pid, syscall.SIGTERM) }
func signalKill(pid int) error { return signalPid(pid, syscall.SIGKILL) }

func signalPid(pid int, sig syscall.Signal) error {
	if pid <= 1 {
		return fmt.Errorf("refusing to signal pid %d", pid)
	}
	return syscall.Kill(pid, sig)
}
