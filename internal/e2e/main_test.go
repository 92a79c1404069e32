package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktrace-dev/ktrace/stack/jaeger"
)

// ktraceBin is a ktrace binary built for the end-to-end tests (the stack
// runs each component as `ktrace stack serve NAME`). It is built with
// -buildvcs=true, as `go build` in a clone does by default.
var ktraceBin string

// dirtyAtBuild is `git status --porcelain` as ktraceBin was built.
var dirtyAtBuild []byte

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ktrace-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ktraceBin = filepath.Join(dir, "ktrace")
	dirtyAtBuild, _ = exec.Command("git", "status", "--porcelain").Output()
	build := exec.Command("go", "build", "-buildvcs=true", "-o", ktraceBin, "../../cmd/ktrace")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building ktrace:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// A binary built with `go build` in a clone names the commit it was built
// from (and whether the tree had changes), not just "dev".
func TestVersionOfAGoBuild(t *testing.T) {
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse: %v", err)
	}
	dirty := dirtyAtBuild
	out, err := exec.Command(ktraceBin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	if !strings.HasPrefix(got, "ktrace ") || !strings.Contains(got, "commit "+string(rev[:12])) {
		t.Errorf("version %q, want the commit %s", got, rev[:12])
	}
	if strings.Contains(got, "modified") != (len(dirty) > 0) {
		t.Errorf("version %q: the modified flag does not match git status (%d bytes of changes)", got, len(dirty))
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := jaeger.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
