package jaeger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// ErrNoToolchain is returned by Build when no Go toolchain is on PATH.
var ErrNoToolchain = errors.New("no Jaeger binary found and no Go toolchain to build one: install Jaeger v2 (" + Version + ") and pass --jaeger-bin, or install Go")

// Build compiles Jaeger v2 from the Go module proxy into CachedPath, the
// same way scripts/install-jaeger does, writing progress to w. It takes
// minutes the first time and is skipped when the binary exists.
func Build(ctx context.Context, w io.Writer) (string, error) {
	bin := CachedPath()
	if fi, err := os.Stat(bin); err == nil && fi.Mode()&0o111 != 0 {
		return bin, nil
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", ErrNoToolchain
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	fmt.Fprintf(w, "downloading Jaeger %s's module from the Go module proxy, then building it (6 minutes on an idle 2-core machine, up to 17 on a busy one; once)...\n", Version)
	var out bytes.Buffer
	dl := exec.CommandContext(ctx, gobin, "mod", "download", "-json", "github.com/jaegertracing/jaeger@"+Version)
	dl.Dir = os.TempDir()
	dl.Stdout, dl.Stderr = &out, &out
	if err := dl.Run(); err != nil {
		return "", fmt.Errorf("downloading jaeger %s: %v: %s", Version, err, tailBytes(out.Bytes(), 300))
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out.Bytes(), &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("downloading jaeger %s: no module directory in %q", Version, tailBytes(out.Bytes(), 200))
	}
	tmp := bin + ".tmp"
	defer os.Remove(tmp)
	var log bytes.Buffer
	build := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-o", tmp, "./cmd/jaeger")
	build.Dir = mod.Dir
	build.Stdout, build.Stderr = &log, &log
	start := time.Now()
	if err := build.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- build.Wait() }()
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return "", fmt.Errorf("building jaeger: %v: %s", err, tailBytes(log.Bytes(), 300))
			}
			if err := os.Rename(tmp, bin); err != nil {
				return "", err
			}
			fmt.Fprintf(w, "built %s in %s\n", bin, time.Since(start).Round(time.Second))
			return bin, nil
		case <-tick.C:
			fmt.Fprintf(w, "compiling Jaeger %s (go build ./cmd/jaeger): %s so far...\n", Version, time.Since(start).Round(time.Second))
		}
	}
}

func tailBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}
