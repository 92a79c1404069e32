//go:build unix

package jaeger

import (
	"os/exec"
	"syscall"
)

// groupOwn puts the child in a process group of its own, so that stopping
// it stops whatever it started too.
func groupOwn(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// stopGroup signals the process group groupOwn made (never a PID ≤ 1).
func stopGroup(cmd *exec.Cmd, kill bool) {
	pid := cmd.Process.Pid
	if pid <= 1 {
		return
	}
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-pid, sig)
}
