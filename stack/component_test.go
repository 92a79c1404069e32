//go:build linux

package stack

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A component whose command line changes once it runs (here a shell that
// executes another program; a process being executed reads as an empty
// command line for a moment, which a loaded machine makes longer) is not
// taken for a stale PID while this program started it: start-up waits for
// it and stop stops it.
func TestStartedComponentIsKnownByItsProcess(t *testing.T) {
	c := Component{Name: "sleeper", Argv: []string{"/bin/sh", "-c", "exec sleep 30"},
		Health: "http://127.0.0.1:1/healthz", Log: filepath.Join(t.TempDir(), "sleeper.log")}
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	pid := c.Pid
	defer syscall.Kill(pid, syscall.SIGKILL)
	err := c.waitHealthy(context.Background(), 500*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not healthy after") {
		t.Fatalf("start-up: %v, want a time-out (the process runs, under another command line)", err)
	}
	if c.Alive() {
		t.Fatal("Alive took the shell's command line for the running program's")
	}
	if !c.running() {
		t.Fatal("the started process is not known to run")
	}
	c.stop(false)
	if c.running() || syscall.Kill(pid, 0) == nil {
		t.Fatal("stop left the process running")
	}
}

// A component that exits during start-up is reported with its log's tail.
func TestStartedComponentExits(t *testing.T) {
	c := Component{Name: "quitter", Argv: []string{"/bin/sh", "-c", "echo no such storage; exit 3"},
		Health: "http://127.0.0.1:1/healthz", Log: filepath.Join(t.TempDir(), "quitter.log")}
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	err := c.waitHealthy(context.Background(), 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "quitter exited during start-up: no such storage") {
		t.Fatalf("start-up: %v, want the exit and the log's tail", err)
	}
}

// A component that fails is quoted from its own run's log lines, not an
// earlier run's.
func TestStartUpErrorQuotesThisRun(t *testing.T) {
	log := filepath.Join(t.TempDir(), "quitter.log")
	os.WriteFile(log, []byte("an old run's complaint\n"), 0o644)
	c := Component{Name: "quitter", Argv: []string{"/bin/sh", "-c", "echo this run; exit 3"},
		Health: "http://127.0.0.1:1/healthz", Log: log}
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	err := c.waitHealthy(context.Background(), 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "this run") || strings.Contains(err.Error(), "old run") {
		t.Fatalf("start-up: %v, want this run's log only", err)
	}
}
