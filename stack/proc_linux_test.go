package stack

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startSleeper starts `sleep 300`, which the test owns, and ends it when
// the test ends.
func startSleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Wait until it has executed sleep (its command line reads as ours before).
	for i := 0; i < 200; i++ {
		if _, argv, err := processIdentity(cmd.Process.Pid); err == nil && len(argv) == 2 && argv[0] == "sleep" {
			return cmd
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("sleep did not start")
	return nil
}

func TestOwnsNeedsPidStartAndExactArgv(t *testing.T) {
	cmd := startSleeper(t)
	pid := cmd.Process.Pid
	start, argv, err := processIdentity(pid)
	if err != nil || start == "" {
		t.Fatalf("identity of %d: %q %q %v", pid, start, argv, err)
	}
	cases := []struct {
		name  string
		pid   int
		start string
		argv  []string
		want  bool
	}{
		{"all three match", pid, start, []string{"sleep", "300"}, true},
		{"empty argv", pid, start, nil, false},
		{"argv a suffix of the real one", pid, start, []string{"300"}, false},
		{"longer argv", pid, start, []string{"sleep", "300", "x"}, false},
		{"other start time", pid, start + "1", []string{"sleep", "300"}, false},
		{"no start time recorded", pid, "", []string{"sleep", "300"}, false},
		{"pid 0", 0, start, []string{"sleep", "300"}, false},
		{"negative pid", -pid, start, []string{"sleep", "300"}, false},
	}
	for _, c := range cases {
		if got := owns(c.pid, c.start, c.argv); got != c.want {
			t.Errorf("%s: owns = %v, want %v", c.name, got, c.want)
		}
	}
	// PID 1 is never ours, even described exactly.
	if s1, a1, err := processIdentity(1); err == nil && owns(1, s1, a1) {
		t.Error("owns(1) with its own start time and argv is true")
	}
	if err := signalTerm(1); err == nil {
		t.Error("signalTerm(1) did not refuse")
	}
}

// The reproducer of a state.json that names a process ktrace did not
// start, with an empty argv: stack down must leave it running and say so.
func TestDownLeavesForeignProcesses(t *testing.T) {
	cmd := startSleeper(t)
	pid := cmd.Process.Pid
	start, _, _ := processIdentity(pid)
	for _, comp := range []Component{
		{Name: "kafka", Pid: pid, Argv: []string{}},
		{Name: "kafka", Pid: pid, Start: start, Argv: []string{}},
		{Name: "kafka", Pid: pid, Start: "1", Argv: []string{"sleep", "300"}},
		{Name: "kafka", Pid: 1, Argv: []string{}},
	} {
		dir := t.TempDir()
		b, _ := json.Marshal(State{Components: []Component{comp}})
		if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		var progress bytesWriter
		if err := Down(dir, &progress); err != nil {
			t.Fatal(err)
		}
		if !processExists(pid) {
			t.Fatalf("stack down signalled pid %d, described as %+v", pid, comp)
		}
		if comp.Pid == pid && !containsAll(string(progress), "not stopping pid", "not the kafka that ktrace started") {
			t.Errorf("down said %q, want it to name the process it left", progress)
		}
	}
	// The same process, described exactly, is stopped.
	dir := t.TempDir()
	b, _ := json.Marshal(State{Components: []Component{{Name: "kafka", Pid: pid, Start: start, Argv: []string{"sleep", "300"}}}})
	os.WriteFile(filepath.Join(dir, "state.json"), b, 0o644)
	if err := Down(dir, nil); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if cmd.ProcessState == nil || cmd.ProcessState.Success() {
		t.Errorf("the process described exactly was not stopped: %v", cmd.ProcessState)
	}
}

type bytesWriter []byte

func (w *bytesWriter) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
