//go:build !linux && !darwin

package stack

import (
	"errors"
	"os/exec"
	"runtime"
)

// Supported reports whether the stack runs on this system. Elsewhere
// than Linux and macOS ktrace cannot prove which processes it started
// (it reads their start time and argv from the system), so it starts
// none.
func Supported() error {
	return errors.New("ktrace stack and demo run on Linux and macOS only, not on " + runtime.GOOS +
		"; graph, report, check, spof, docs, diff and pull work here against a Jaeger or files")
}

func processIdentity(int) (string, []string, error) { return "", nil, Supported() }

func detach(*exec.Cmd) {}

func signalTerm(int) error { return Supported() }
func signalKill(int) error { return Supported() }
