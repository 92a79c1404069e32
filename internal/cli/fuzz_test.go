package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/trace"
)

// FuzzPipeline runs every reader end to end: the bytes as a trace file
// (Jaeger JSON, OTLP JSON or a snapshot, sniffed as always), through the
// graph and the break, SPOF and continuity analyses, into every renderer.
// Whatever the bytes, ktrace exits 0, 1 or 3 with well-formed output, or 2
// with one line naming the problem; it never panics. The seed corpus (the
// fixtures, the hostile names, the bad inputs) runs in every `go test`;
// scripts/test fuzzes briefly; for a long run:
//
//	go test ./internal/cli -run '^$' -fuzz FuzzPipeline -fuzztime 30m
func FuzzPipeline(f *testing.F) {
	for _, p := range []string{"kafka-e2e.json", "broken-hop.json", "db-peer.json", "rpc-chain.json", "stargazers-lost.ktrace"} {
		b, err := os.ReadFile(filepath.Join("../../fixtures", p))
		if err != nil {
			f.Fatal(err)
		}
		if len(b) < 200<<10 {
			f.Add(b)
		}
	}
	var snap bytes.Buffer
	if err := file.WriteSnapshot(&snap, "seed", hostileSet(f)); err != nil {
		f.Fatal(err)
	}
	f.Add(snap.Bytes())
	for _, s := range []string{
		`{"data":[]`, "\xef\xbb\xbf{\"data\":[]}", `{"data":[{"traceID":"1","spans":[{"traceID":"1","spanID":"2","processID":"p","duration":-5}],"processes":{"p":{"serviceName":"s"}}}]}`,
		`{"data":[{"traceID":"1","spans":[{"traceID":"1","spanID":"2","processID":"p","startTime":1e300}],"processes":{"p":{"serviceName":"s"}}}]}`,
		`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a|b\n"}}]},"scopeSpans":[{"spans":[{"traceId":"00000000000000000000000000000001","spanId":"0000000000000002","name":"op","kind":4,"startTimeUnixNano":"1000","endTimeUnixNano":"2000","attributes":[{"key":"messaging.destination.name","value":{"stringValue":"t\t1"}}]}]}]}]}`,
		"\x1f\x8b\x08\x00\x00\x00\x00\x00", "{\"format\":\"ktrace-snapshot\",\"version\":2}\n\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p := filepath.Join(t.TempDir(), "in")
		if err := os.WriteFile(p, in, 0o644); err != nil {
			t.Fatal(err)
		}
		r := runIO(t, false, nil, "graph", "--file", p)
		if r.code == ExitUsage {
			if lines := strings.Split(strings.TrimSuffix(r.err, "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "ktrace: ") || r.out != "" {
				t.Fatalf("bad input: want one error line and no output, got %q / %q", r.err, r.out)
			}
			return
		}
		if r.code != 0 {
			t.Fatalf("graph: exit %d: %s", r.code, r.err)
		}
		for _, line := range strings.Split(strings.TrimSuffix(r.out, "\n"), "\n") {
			if strings.Count(line, "\t") != 9 || controlChars.MatchString(line) {
				t.Fatalf("graph TSV line %q", line)
			}
		}
		for _, args := range [][]string{
			{"graph", "-o", "json"}, {"graph", "-o", "dot"}, {"graph", "-o", "mermaid"},
			{"report", "--broken"}, {"report", "--broken", "-o", "markdown"}, {"report", "--broken", "-o", "json"},
			{"spof"}, {"spof", "-o", "json"}, {"check"}, {"check", "-o", "json"},
		} {
			r := runIO(t, false, nil, append(args, "--file", p)...)
			if r.code != 0 && r.code != ExitFindings && r.code != ExitInconclusive {
				t.Fatalf("%v: exit %d after graph read the file: %s", args, r.code, r.err)
			}
			if args[len(args)-1] != "json" && controlChars.MatchString(r.out) { // JSON carries names as sent
				t.Fatalf("%v writes a control character: %q", args, controlChars.FindString(r.out))
			}
		}
		for _, args := range [][]string{{"graph"}, {"report", "--broken"}, {"spof"}, {"check"}} {
			r := runIO(t, true, nil, append(args, "--file", p)...)
			if controlChars.MatchString(r.out) {
				t.Fatalf("%v on a terminal writes a control character: %q", args, controlChars.FindString(r.out))
			}
		}
	})
}

// hostileSet is the hostile names' traces as a set.
func hostileSet(tb testing.TB) []trace.Trace {
	var set trace.Set
	if _, err := file.ReadFile(hostileTracesFile(tb), nil, &set, &trace.Resources{}); err != nil {
		tb.Fatal(err)
	}
	return set.Traces()
}

// FuzzSpec parses arbitrary check specs: an error is one line naming the
// file; a spec that parses is checked against a fixture and rendered.
//
//	go test ./internal/cli -run '^$' -fuzz FuzzSpec -fuzztime 10m
func FuzzSpec(f *testing.F) {
	b, err := os.ReadFile("../../examples/stargazers-check.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("version: 1\nflows:\n  - name: f\n   entry: x\n"))
	f.Add([]byte("version: 1\nflows:\n  - name: \"x\\n```\"\n    entry: github-source\n    path:\n      - topic: stargazers-flat\n    min_traces: 0\n"))
	f.Add([]byte("{a: [1, 2, {b: *x}]}"))
	f.Fuzz(func(t *testing.T, in []byte) {
		p := filepath.Join(t.TempDir(), "spec.yaml")
		if err := os.WriteFile(p, in, 0o644); err != nil {
			t.Fatal(err)
		}
		summary := filepath.Join(t.TempDir(), "summary.md")
		r := runIO(t, false, map[string]string{"GITHUB_STEP_SUMMARY": summary}, "check", "--spec", p, "--fixture", "stargazers-lost", "--github",
			"--junit", filepath.Join(t.TempDir(), "j.xml"), "--sarif", filepath.Join(t.TempDir(), "s.sarif"))
		switch r.code {
		case ExitUsage:
			if lines := strings.Split(strings.TrimSuffix(r.err, "\n"), "\n"); len(lines) != 1 || !strings.Contains(lines[0], p) {
				t.Fatalf("bad spec: want one line naming it, got %q", r.err)
			}
		case ExitOK, ExitFindings, ExitInconclusive:
		default:
			t.Fatalf("exit %d: %s", r.code, r.err)
		}
	})
}
