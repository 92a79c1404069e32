package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ktrace-dev/ktrace/internal/testenv"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// ktrace serve serves the map on loopback, re-reads its source every
// --interval, and the data a page polls changes when the traces do.
func TestServe(t *testing.T) {
	lost, err := os.ReadFile("../../fixtures/stargazers-lost.ktrace")
	if err != nil {
		t.Fatal(err)
	}
	links, _ := os.ReadFile("../../fixtures/stargazers-links.ktrace")
	src := filepath.Join(t.TempDir(), "traces.ktrace")
	os.WriteFile(src, lost, 0o644)

	var out, errb testenv.Buffer
	ios := &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errb, Getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	cmd := NewCmdServe(ios, nil)
	cmd.SetArgs([]string{"--file", src, "--listen", "127.0.0.1:0", "--interval", "1s"})
	go func() { done <- cmd.ExecuteContext(ctx) }()
	defer cancel()
	addr := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/`)
	var base string
	for i := 0; i < 100 && base == ""; i++ {
		if m := addr.FindStringSubmatch(out.String()); m != nil {
			base = "http://" + m[1]
		}
		time.Sleep(50 * time.Millisecond)
	}
	if base == "" {
		t.Fatalf("no address printed: %q %q", out.String(), errb.String())
	}
	code, page := get(t, base+"/")
	if code != 200 || !strings.HasPrefix(page, "<!doctype html>") || !strings.Contains(page, "connect-src 'self'") || !strings.Contains(page, `"live":1`) {
		t.Fatalf("GET /: %d %.200s", code, page)
	}
	version := func() string {
		_, body := get(t, base+"/data.json")
		var d struct{ Version string }
		json.Unmarshal([]byte(body), &d)
		return d.Version
	}
	v1 := version()
	if v1 == "" || !strings.Contains(page, v1) {
		t.Fatalf("data.json version %q is not the page's", v1)
	}
	if code, body := get(t, base+"/healthz"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Errorf("healthz: %d %s", code, body)
	}
	os.WriteFile(src, links, 0o644)
	changed := false
	for i := 0; i < 60 && !changed; i++ {
		time.Sleep(100 * time.Millisecond)
		changed = version() != v1
	}
	if !changed {
		t.Error("the map did not change after the traces did")
	}
	// A broken source keeps the last map and says so.
	os.WriteFile(src, []byte("not traces"), 0o644)
	unhealthy := false
	for i := 0; i < 60 && !unhealthy; i++ {
		time.Sleep(100 * time.Millisecond)
		code, _ := get(t, base+"/healthz")
		unhealthy = code == http.StatusServiceUnavailable
	}
	if code, _ := get(t, base+"/"); !unhealthy || code != 200 {
		t.Errorf("after a bad read: healthz unhealthy %v, page %d", unhealthy, code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop when its context ended")
	}
	if !strings.Contains(errb.String(), "serving the last map") {
		t.Errorf("the bad read was not reported: %q", errb.String())
	}
}
