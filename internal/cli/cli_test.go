package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ktrace-dev/ktrace/render"
)

type result struct {
	out, err string
	code     int
}

func run(t *testing.T, stdin string, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	io := &IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errb, Getenv: func(k string) string { return env[k] }}
	code := Main(args, io)
	return result{out.String(), errb.String(), code}
}

func write(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// oneLineErr checks that stderr is exactly one "ktrace: …" line containing want.
func oneLineErr(t *testing.T, r result, code int, want string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d (stderr %q)", r.code, code, r.err)
	}
	lines := strings.Split(strings.TrimRight(r.err, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "ktrace: ") || !strings.Contains(last, want) {
		t.Errorf("stderr %q: want a line naming %q", r.err, want)
	}
	if r.out != "" {
		t.Errorf("stdout not empty on error: %q", r.out)
	}
}

const cycle = `{"data":[{"traceID":"1","spans":[
 {"traceID":"1","spanID":"a","processID":"p","references":[{"refType":"CHILD_OF","traceID":"1","spanID":"b"}]},
 {"traceID":"1","spanID":"b","processID":"p","references":[{"refType":"CHILD_OF","traceID":"1","spanID":"a"}]}],
 "processes":{"p":{"serviceName":"s"}}}]}`

const dup = `{"data":[{"traceID":"1","spans":[
 {"traceID":"1","spanID":"a","processID":"p","operationName":"x"},
 {"traceID":"1","spanID":"a","processID":"p","operationName":"y"}],
 "processes":{"p":{"serviceName":"s"}}}]}`

func TestBadInputExitCodes(t *testing.T) {
	valid, _ := os.ReadFile("../../fixtures/rpc-chain.json")
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", valid[:200], "truncated JSON"},
		{"unknown shape", []byte(`{"hello":"world"}`), "unrecognised JSON"},
		{"empty", nil, "empty input"},
		{"binary", []byte{0x00, 0x01, 0xfe, 0xff, 0x00}, "binary data"},
		{"cycle", []byte(cycle), "parent references form a cycle"},
		{"duplicate", []byte(dup), "duplicate span id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := write(t, "in.json", c.data)
			r := run(t, "", nil, "graph", "--file", p)
			oneLineErr(t, r, ExitUsage, c.want)
			if !strings.Contains(r.err, p) {
				t.Errorf("error does not name the file: %q", r.err)
			}
		})
	}
	oneLineErr(t, run(t, "", nil, "graph", "--file", "/nonexistent/x.json"), ExitUsage, "no such file")
}

func TestUsageErrors(t *testing.T) {
	oneLineErr(t, run(t, "", nil, "graph", "--no-such-flag"), ExitUsage, "unknown flag: --no-such-flag")
	oneLineErr(t, run(t, "", nil, "graph"), ExitUsage, "no trace source")
	oneLineErr(t, run(t, "", nil, "graph", "--fixture", "rpc-chain", "-o", "yaml"), ExitUsage, `-o "yaml"`)
	oneLineErr(t, run(t, "", nil, "graph", "--fixture", "nope"), ExitUsage, "no such fixture")
	oneLineErr(t, run(t, "", nil, "graph", "--jaeger", "127.0.0.1:1", "--since", "yesterday"), ExitUsage, "--since")
	oneLineErr(t, run(t, "", nil, "graph", "--jaeger", "127.0.0.1:1", "--tag", "novalue"), ExitUsage, "--tag")
	oneLineErr(t, run(t, "", nil, "nosuchcommand"), ExitUsage, "unknown command")
	oneLineErr(t, run(t, "", nil, "graph", "--jaeger", "127.0.0.1:1", "--jaeger-ca", "x.pem"), ExitUsage, "need --jaeger-tls")
}

func TestUnreachableJaeger(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	r := run(t, "", nil, "graph", "--jaeger", addr, "--timeout", "5s")
	oneLineErr(t, r, ExitBackend, "jaeger at "+addr+": unreachable")
}

// A server that accepts connections and never answers.
func TestSlowJaeger(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { <-ctx.Done(); c.Close() }()
		}
	}()
	defer ln.Close()
	start := time.Now()
	r := run(t, "", nil, "services", "--jaeger", ln.Addr().String(), "--timeout", "300ms")
	oneLineErr(t, r, ExitBackend, "jaeger at "+ln.Addr().String())
	if !strings.Contains(r.err, "no answer within 300ms") && !strings.Contains(r.err, "unreachable") {
		t.Errorf("stderr %q does not say it timed out", r.err)
	}
	if time.Since(start) > 20*time.Second {
		t.Error("--timeout was not honoured")
	}
}

func TestTokenNeverPrinted(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	secret := "tok-5f2b9c"
	for _, r := range []result{
		run(t, "", nil, "graph", "--jaeger", addr, "--jaeger-token", secret),
		run(t, "", map[string]string{"KTRACE_JAEGER_TOKEN": secret}, "graph", "--jaeger", addr),
		run(t, "", nil, "graph", "--help", "--jaeger-token", secret),
	} {
		if strings.Contains(r.out+r.err, secret) {
			t.Errorf("token printed: %q %q", r.out, r.err)
		}
	}
}

func TestGraphFormats(t *testing.T) {
	r := run(t, "", nil, "graph", "--fixture", "broken-hop", "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	var g render.GraphJSON
	if err := json.Unmarshal([]byte(r.out), &g); err != nil || len(g.Edges) != 7 || len(g.Stitches) != 2 {
		t.Fatalf("json: %v, %d edges", err, len(g.Edges))
	}
	for format, marker := range map[string]string{"dot": "digraph ktrace", "mermaid": "flowchart LR", "text": "FROM\tTO\tKIND"} {
		r := run(t, "", nil, "graph", "--fixture", "broken-hop", "-o", format)
		if r.code != 0 || !strings.HasPrefix(r.out, marker) {
			t.Errorf("-o %s: exit %d, output %q", format, r.code, r.out)
		}
	}
	// Files from stdin, and several sources merged.
	data, _ := os.ReadFile("../../fixtures/db-peer.json")
	r = run(t, string(data), nil, "graph", "--file", "-", "--fixture", "rpc-chain", "-o", "json")
	if err := json.Unmarshal([]byte(r.out), &g); r.code != 0 || err != nil || g.Traces != 4 {
		t.Errorf("stdin + fixture: exit %d, %d traces, %s", r.code, g.Traces, r.err)
	}
}

func TestTTYAndNoColor(t *testing.T) {
	render1 := func(noColor bool) string {
		var out bytes.Buffer
		io := &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &bytes.Buffer{}, OutTTY: true, NoColor: noColor, Getenv: func(string) string { return "" }}
		if code := Main([]string{"graph", "--fixture", "broken-hop"}, io); code != 0 {
			t.Fatalf("exit %d", code)
		}
		return out.String()
	}
	color, plain := render1(false), render1(true)
	if !strings.Contains(color, "\x1b[") || strings.Contains(plain, "\x1b[") || !strings.Contains(plain, "╭") {
		t.Errorf("TTY colour handling wrong:\n%s\n%s", color, plain)
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if !noColor(env(map[string]string{"NO_COLOR": "1"})) || !noColor(env(map[string]string{"TERM": "dumb"})) ||
		noColor(env(map[string]string{"NO_COLOR": ""})) {
		t.Error("NO_COLOR / TERM=dumb not honoured")
	}
}

func TestPullWritesSnapshotAndKeepsExisting(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, "s.ktrace")
	r := run(t, "", nil, "pull", "--fixture", "kafka-e2e", snap)
	if r.code != 0 || !strings.Contains(r.err, "wrote 12 traces") || r.out != "" {
		t.Fatalf("pull: exit %d, stderr %q, stdout %q", r.code, r.err, r.out)
	}
	before, _ := os.ReadFile(snap)
	r = run(t, "", nil, "pull", "--fixture", "rpc-chain", snap)
	oneLineErr(t, r, ExitUsage, "file exists (use --force to overwrite)")
	after, _ := os.ReadFile(snap)
	if !bytes.Equal(before, after) {
		t.Error("existing snapshot changed without --force")
	}
	a := run(t, "", nil, "graph", "--file", snap, "-o", "json")
	b := run(t, "", nil, "graph", "--fixture", "kafka-e2e", "-o", "json")
	if a.code != 0 || a.out != b.out {
		t.Errorf("snapshot graph differs from the fixture's:\n%s\n%s", a.out, b.out)
	}
	if r := run(t, "", nil, "pull", "--force", "--fixture", "rpc-chain", snap); r.code != 0 {
		t.Errorf("--force: exit %d %s", r.code, r.err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %d entries", len(entries))
	}
}

func TestServicesFromFiles(t *testing.T) {
	r := run(t, "", nil, "services", "--fixture", "rpc-chain")
	want := "checkout\t3 operations\t4 spans\nfrontend\t2 operations\t4 spans\npayments\t1 operation\t1 span\n"
	if r.code != 0 || r.out != want {
		t.Errorf("got %q, want %q", r.out, want)
	}
}

func TestVersionAndCompletion(t *testing.T) {
	r := run(t, "", nil, "version")
	if r.code != 0 || !strings.HasPrefix(r.out, "ktrace ") {
		t.Errorf("version: %q", r.out)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r := run(t, "", nil, "completion", sh)
		if r.code != 0 || !strings.Contains(r.out, "ktrace") {
			t.Errorf("completion %s: exit %d", sh, r.code)
		}
	}
}

func TestEmptyInputWarns(t *testing.T) {
	p := write(t, "e.json", []byte(`{"data":[]}`))
	r := run(t, "", nil, "graph", "--file", p, "-o", "json")
	if r.code != 0 || !strings.Contains(r.err, "no traces found") {
		t.Errorf("exit %d stderr %q", r.code, r.err)
	}
}

func TestReportBroken(t *testing.T) {
	r := run(t, "", nil, "report", "--broken", "--fixture", "stargazers-lost", "-o", "json", "--ui-url", "http://127.0.0.1:16686/")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	var rep render.ReportJSON
	if err := json.Unmarshal([]byte(r.out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 1 {
		t.Fatalf("findings %+v", rep.Findings)
	}
	f := rep.Findings[0]
	if f.Rule != "lost-inside" || f.Service != "stargazers-join" || f.Topic != "stargazers-results" || f.Traces != 24 ||
		len(f.Examples) != 5 || !strings.HasPrefix(f.Examples[0].URL, "http://127.0.0.1:16686/trace/") {
		t.Errorf("finding %+v", f)
	}
	// --fail turns findings into exit 1; a clean run stays 0.
	if r := run(t, "", nil, "report", "--broken", "--fixture", "stargazers-lost", "--fail"); r.code != ExitFindings {
		t.Errorf("--fail with a break: exit %d", r.code)
	}
	if r := run(t, "", nil, "report", "--broken", "--fixture", "stargazers-links", "--fail"); r.code != 0 {
		t.Errorf("--fail without breaks: exit %d %s", r.code, r.err)
	}
	md := run(t, "", nil, "report", "--broken", "--fixture", "kafka-e2e", "-o", "markdown")
	if md.code != 0 || !strings.Contains(md.out, "| `lost-hop` | orders-api → orders → shipping | 6 | 6 |") {
		t.Errorf("markdown:\n%s", md.out)
	}
	oneLineErr(t, run(t, "", nil, "report", "--fixture", "kafka-e2e"), ExitUsage, "--broken")
}

func TestSPOFCommand(t *testing.T) {
	r := run(t, "", nil, "spof", "--fixture", "stargazers-lost", "-o", "json", "--entry", "github-avro-stargazers-jackdaw")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	var doc render.SPOFJSON
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range doc.Findings {
		if f.Kind == "dominator" && f.Node == "service:stargazers-join" && strings.Contains(f.Reason, "github-avro-stargazers-jackdaw → stargazers-api") {
			found = true
			if len(f.Blast) != 3 || f.Entries[0] != "topic:github-avro-stargazers-jackdaw" {
				t.Errorf("blast radius %+v", f)
			}
		}
	}
	if !found {
		t.Errorf("no join dominator in %+v", doc.Findings)
	}
	if r := run(t, "", nil, "spof", "--fixture", "stargazers-lost", "--fail-on", "dominator,bridge"); r.code != ExitFindings {
		t.Errorf("--fail-on with findings: exit %d", r.code)
	}
	if r := run(t, "", nil, "spof", "--fixture", "stargazers-lost", "--fail-on", "single-partition"); r.code != 0 {
		t.Errorf("--fail-on without such findings: exit %d", r.code)
	}
	oneLineErr(t, run(t, "", nil, "spof", "--fixture", "stargazers-lost", "--fail-on", "bogus"), ExitUsage, "--fail-on")
	oneLineErr(t, run(t, "", nil, "spof", "--fixture", "stargazers-lost", "--entry", "nowhere"), ExitUsage, `--entry "nowhere"`)
	for format, marker := range map[string]string{"mermaid": "class ", "dot": `color="red"`} {
		if r := run(t, "", nil, "spof", "--fixture", "rpc-chain", "-o", format); r.code != 0 || !strings.Contains(r.out, marker) {
			t.Errorf("-o %s: %s", format, r.out)
		}
	}
	p := write(t, "one.json", []byte(`{"data":[{"traceID":"1","spans":[{"traceID":"1","spanID":"2","processID":"p"}],"processes":{"p":{"serviceName":"solo"}}}]}`))
	var out bytes.Buffer
	io := &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &bytes.Buffer{}, OutTTY: true, NoColor: true, Getenv: func(string) string { return "" }}
	if code := Main([]string{"spof", "--file", p}, io); code != 0 || !strings.Contains(out.String(), "nothing to analyse: the graph has 1 node(s)") {
		t.Errorf("single node: exit %d %q", code, out.String())
	}
}

func TestDiffCommand(t *testing.T) {
	r := run(t, "", nil, "diff", "fixture:stargazers-lost", "fixture:stargazers-links", "-o", "json", "--latency-threshold", "1000")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	var doc DiffJSON
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Changes) == 0 || doc.Changes[0].Kind != "relation-changed" || doc.Changes[0].Before != "stitched" || doc.Changes[0].After != "parent" {
		t.Errorf("changes %+v", doc.Changes)
	}
	same := run(t, "", nil, "diff", "fixture:stargazers-lost", "../../fixtures/stargazers-lost.ktrace", "--fail-on-change")
	if same.code != 0 || same.out != "no changes\n" {
		t.Errorf("identical inputs: exit %d %q", same.code, same.out)
	}
	if r := run(t, "", nil, "diff", "fixture:stargazers-links", "fixture:stargazers-lost", "--fail-on-change", "-o", "markdown"); r.code != ExitFindings ||
		!strings.Contains(r.out, "⚠️ `relation-changed` (context now lost) | service:stargazers-join -&gt; topic:stargazers-results \\(produce\\) | parent → stitched |") {
		t.Errorf("markdown: exit %d\n%s", r.code, r.out)
	}
	oneLineErr(t, run(t, "", nil, "diff", "only-one"), ExitUsage, "accepts 2 arg(s)")
}

func TestDocsCommand(t *testing.T) {
	dir := t.TempDir()
	owners := write(t, "owners.yaml", []byte("default: {owner: platform, lifecycle: production}\n"))
	r := run(t, "", nil, "docs", "--fixture", "stargazers-lost", "--out", dir, "--owners", owners)
	if r.code != 0 || !strings.Contains(r.out, "asyncapi/stargazers-join.yaml\n") || !strings.Contains(r.err, "wrote 17 files") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	cat, _ := os.ReadFile(filepath.Join(dir, "catalog-info.yaml"))
	if !strings.Contains(string(cat), "owner: platform") || strings.Contains(string(cat), "owner-placeholder") {
		t.Errorf("owners not applied:\n%s", cat)
	}
	oneLineErr(t, run(t, "", nil, "docs", "--fixture", "stargazers-lost"), ExitUsage, "--out DIR is required")
	bad := write(t, "bad.yaml", []byte("defaults: {}\n"))
	oneLineErr(t, run(t, "", nil, "docs", "--fixture", "stargazers-lost", "--out", dir, "--owners", bad), ExitUsage, "--owners")
}

// A single file streams into the graph; the same trace twice in one file is
// merged by falling back to loading it whole. Both give the graph of the set.
func TestGraphStreamsAndMergesRepeats(t *testing.T) {
	data, _ := os.ReadFile("../../fixtures/rpc-chain.json")
	var doc struct{ Data []json.RawMessage }
	json.Unmarshal(data, &doc)
	// The first trace, split in two halves listed separately.
	var first struct {
		TraceID   string            `json:"traceID"`
		Spans     []json.RawMessage `json:"spans"`
		Processes json.RawMessage   `json:"processes"`
	}
	json.Unmarshal(doc.Data[0], &first)
	half := func(spans []json.RawMessage) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"traceID": first.TraceID, "spans": spans, "processes": first.Processes})
		return b
	}
	split, _ := json.Marshal(map[string]any{"data": []json.RawMessage{half(first.Spans[:3]), doc.Data[1], half(first.Spans[3:])}})
	p := write(t, "split.json", split)
	a := run(t, "", nil, "graph", "--file", p, "-o", "json")
	b := run(t, "", nil, "graph", "--fixture", "rpc-chain", "-o", "json")
	c := run(t, "", nil, "graph", "--file", "../../fixtures/rpc-chain.json", "--fixture", "db-peer", "-o", "json")
	if a.code != 0 || a.out != b.out {
		t.Errorf("split trace: exit %d %s\n%s\nwant\n%s", a.code, a.err, a.out, b.out)
	}
	if c.code != 0 || !strings.Contains(c.out, `"traces": 4`) {
		t.Errorf("two inputs: %s", c.out)
	}
}

func TestVersionFrom(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2026-12-02T04:19:03Z"}, {Key: "vcs.modified", Value: modified}}
	}
	rev := "e9b16358d740faad0537d1d1d7d3db915e8f1cc2"
	cases := []struct {
		name  string
		stamp string
		bi    *debug.BuildInfo
		want  string
	}{
		{"release stamp wins", "v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}}, "v1.2.3"},
		{"no build info", "", nil, "dev"},
		{"go install", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}}, "v1.4.0 (go1.26.8)"},
		{"go build, clean", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261202041903-e9b16358d740"}, Settings: vcs(rev, "false")},
			"v0.0.0-20261202041903-e9b16358d740 (commit e9b16358d740, 2026-12-02T04:19:03Z, go1.26.8)"},
		{"go build, dirty", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "true")},
			"dev (commit e9b16358d740, modified, 2026-12-02T04:19:03Z, go1.26.8)"},
		{"go run, no VCS", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "dev (go1.26.8)"},
	}
	for _, c := range cases {
		if got := versionFrom(c.stamp, c.bi); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// Where the stack cannot run (Windows), stack and demo say so in one line
// with exit 2 before doing anything, and the other commands still work.
func TestStackUnsupportedHere(t *testing.T) {
	old := stackSupported
	stackSupported = func() error { return errors.New("ktrace stack and demo run on Linux and macOS only, not on windows") }
	defer func() { stackSupported = old }()
	for _, args := range [][]string{{"stack", "up"}, {"stack", "down"}, {"stack", "status"}, {"demo"}} {
		oneLineErr(t, run(t, "", nil, args...), ExitUsage, "run on Linux and macOS only")
	}
	if r := run(t, "", nil, "graph", "--fixture", "kafka-e2e"); r.code != 0 || !strings.Contains(r.out, "topic:orders") {
		t.Errorf("graph: exit %d, %q", r.code, r.err)
	}
}

func TestJaegerAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1": "127.0.0.1:16685", "127.0.0.1:": "127.0.0.1:16685", "jaeger:16686": "jaeger:16686",
		"[::1]": "[::1]:16685", "::1": "[::1]:16685", "[::1]:9": "[::1]:9", "example.com": "example.com:16685",
	} {
		if got, err := jaegerAddr(in); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", ":", "a b"} {
		if got, err := jaegerAddr(in); err == nil {
			t.Errorf("%q: %q accepted", in, got)
		}
	}
}

// Messages a new user met: traffic without a stack says only that; a piped
// report with no breaks says so on stderr, its stdout a header for machines.
func TestMessages(t *testing.T) {
	r := run(t, "", nil, "stack", "traffic", "--state-dir", t.TempDir())
	oneLineErr(t, r, ExitUsage, "the stack is not running")
	if strings.Contains(r.err, "replaying") {
		t.Errorf("traffic announced a replay with no stack: %q", r.err)
	}
	r = run(t, "", nil, "report", "--broken", "--fixture", "stargazers-links")
	if r.code != 0 || r.out != "RULE\tWHERE\tTRACES\tOCCURRENCES\tEXAMPLE\n" || !strings.Contains(r.err, "no breaks: every hop carries its trace context") {
		t.Errorf("report with no breaks: exit %d, out %q, err %q", r.code, r.out, r.err)
	}
}

// Terminal tables fit the terminal: long names are cut with an ellipsis;
// piped output keeps them whole.
func TestTablesFitTheTerminal(t *testing.T) {
	for _, args := range [][]string{
		{"graph", "--fixture", "stargazers-lost"},
		{"report", "--broken", "--fixture", "stargazers-lost"},
		{"spof", "--fixture", "stargazers-lost"},
	} {
		var out bytes.Buffer
		io := &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &bytes.Buffer{}, OutTTY: true, NoColor: true, Width: 100,
			Getenv: func(string) string { return "" }}
		if code := Main(args, io); code > 1 {
			t.Fatalf("%v: exit %d", args, code)
		}
		cut := false
		for _, line := range strings.Split(out.String(), "\n") {
			if w := utf8.RuneCountInString(line); w > 100 {
				t.Errorf("%v: a line of %d cells on a 100-cell terminal: %q", args, w, line)
			}
			cut = cut || strings.Contains(line, "…")
		}
		if !cut {
			t.Errorf("%v: nothing was cut:\n%s", args, out.String())
		}
		if r := run(t, "", nil, args...); strings.Contains(r.out, "…") {
			t.Errorf("%v: piped output was cut", args)
		}
	}
}

// spof shows one row per node, ranked by blast radius; a single instance
// that cuts off only itself (billing, a leaf) is left to -o json.
func TestSPOFOneRowPerNode(t *testing.T) {
	r := run(t, "", nil, "spof", "--fixture", "kafka-e2e")
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	seen := map[string]bool{}
	last := 1 << 30
	for _, line := range lines[1:] {
		f := strings.Split(line, "\t")
		if seen[f[0]] {
			t.Errorf("two rows for %s", f[0])
		}
		seen[f[0]] = true
		n, _ := strconv.Atoi(strings.SplitN(f[3], ":", 2)[0])
		if n > last {
			t.Errorf("rows not ranked by blast radius: %q", line)
		}
		last = n
	}
	if len(lines) != 5 || seen["service:billing"] || !seen["service:orders-api"] {
		t.Errorf("rows:\n%s", r.out)
	}
	var doc render.SPOFJSON
	json.Unmarshal([]byte(run(t, "", nil, "spof", "--fixture", "kafka-e2e", "-o", "json").out), &doc)
	minor := false
	for _, f := range doc.Findings {
		minor = minor || (f.Node == "service:billing" && f.Kind == "single-instance" && f.Minor)
	}
	if !minor {
		t.Error("-o json lost billing's single instance")
	}
	if r := run(t, "", nil, "spof", "--fixture", "kafka-e2e", "--fail-on", "single-consumer"); r.code != 0 {
		t.Errorf("--fail-on single-consumer: exit %d", r.code)
	}
}

// A consumer whose clock runs behind its producer's never shows a
// negative latency; the skew is reported as such.
func TestNoNegativeLatency(t *testing.T) {
	p := write(t, "skew.json", []byte(`{"data":[{"traceID":"1","processes":{"p":{"serviceName":"producer"},"c":{"serviceName":"consumer"}},"spans":[
{"traceID":"1","spanID":"1","processID":"p","operationName":"send","startTime":1795637300000000,"duration":100,"tags":[{"key":"span.kind","value":"producer"},{"key":"messaging.system","value":"kafka"},{"key":"messaging.destination.name","value":"t"}]},
{"traceID":"1","spanID":"2","processID":"c","operationName":"receive","startTime":1795637299000000,"duration":100,"references":[{"refType":"CHILD_OF","traceID":"1","spanID":"1"}],"tags":[{"key":"span.kind","value":"consumer"},{"key":"messaging.system","value":"kafka"},{"key":"messaging.source.name","value":"t"},{"key":"messaging.kafka.consumer.group","value":"g"}]}]}]}`))
	r := run(t, "", nil, "graph", "--file", p)
	if r.code != 0 || !strings.Contains(r.out, "topic:t\tconsumer\tconsume") {
		t.Fatalf("graph: exit %d %s %s", r.code, r.out, r.err)
	}
	for _, line := range strings.Split(r.out, "\n") {
		if strings.Contains(line, "\t-") {
			t.Errorf("a negative latency: %q", line)
		}
	}
	if r := run(t, "", nil, "report", "--broken", "--file", p); !strings.Contains(r.out, "clock-skew") {
		t.Errorf("the skew is not reported:\n%s", r.out)
	}
}
