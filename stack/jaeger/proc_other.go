//go:build !unix

package jaeger

import "os/exec"

func groupOwn(*exec.Cmd) {}

// stopGroup ends the process; without process groups there is no gentler
// signal to send first.
func stopGroup(cmd *exec.Cmd, _ bool) { _ = cmd.Process.Kill() }
