package cli

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/renderer/html"
)

// hostileNames are names anyone who can send spans may choose: each tries
// to break out of one output format or another.
var hostileNames = []string{
	"x\n```\n<img src=x onerror=alert(document.domain)>\n\n# Injected heading\n```mermaid",
	"<script>alert(1)</script>",
	"[x](javascript:alert(1))",
	"`backtick` ``two``",
	"a|b|c",
	"esc\x1b[31mred\x1b[0m\x1b]0;title\x07",
	"bel\x07",
	"nul\x00byte",
	"tab\tin\tname",
	"new\nline\r\n",
	"quote\"d'single'",
	`back\slash\N\G\l`,
	"orders/v1",
	"orders v1",
	"ORDERS_V1",
	"...",
	".hidden",
	"../../etc/passwd",
	"bidi\u202eevil\u2066x\u200b",
	"#quot;entity#35; &amp; &lt;b&gt;",
	"*bold* _em_ ~~strike~~",
	"![img](http://x/y.png)",
	"https://evil.example/phish www.evil.example a@evil.example",
	"$x^2$ {{tmpl}} %s %n",
	"CON",
	"line\u2028sep\u0085c1",
	"bad utf8 \xff\xfe",
	"-flag",
}

// hostileTraces writes a Jaeger JSON file in which every hostile name is a
// producing service, a topic, a consuming service, a consumer group and an
// operation, and every consumer lost its context (so every report has
// findings naming them).
func hostileTracesFile(t testing.TB) string {
	t.Helper()
	tag := func(k string, v any) map[string]any {
		typ := "string"
		if _, ok := v.(int); ok {
			typ = "int64"
		}
		return map[string]any{"key": k, "type": typ, "value": v}
	}
	n := len(hostileNames)
	var data []any
	for i := range hostileNames {
		name := func(k int) string { return hostileNames[(i+k)%n] }
		start := 1795637299000000 + int64(i)*1000
		for j, side := range []string{"producer", "consumer"} {
			tid := fmt.Sprintf("%016x%016x", i+1, j+1)
			tags := []any{tag("span.kind", side), tag("messaging.system", "kafka"), tag("messaging.kafka.message.offset", i)}
			service := name(0)
			if side == "producer" {
				tags = append(tags, tag("messaging.destination.name", name(1)), tag("messaging.kafka.destination.partition", 0))
			} else {
				service = name(2)
				tags = append(tags, tag("messaging.source.name", name(1)), tag("messaging.kafka.source.partition", 0),
					tag("messaging.kafka.consumer.group", name(3)))
			}
			data = append(data, map[string]any{
				"traceID": tid,
				"spans": []any{map[string]any{"traceID": tid, "spanID": fmt.Sprintf("%016x", 2*i+j+1), "operationName": name(4),
					"references": []any{}, "startTime": start + int64(j)*500, "duration": 100 + i, "tags": tags, "logs": []any{}, "processID": "p1"}},
				"processes": map[string]any{"p1": map[string]any{"serviceName": service, "tags": []any{}}},
			})
		}
	}
	b, err := json.Marshal(map[string]any{"data": data})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "hostile.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var fence = regexp.MustCompile("(?s)```mermaid\n.*?\n```")

var controlChars = regexp.MustCompile("[\x00-\x08\x0b-\x1f\x7f]|\u0085|\u2028|\u202e|\u2066|\u200b")

// runIO runs ktrace with stdout a terminal or not, colour off.
func runIO(t testing.TB, tty bool, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	io := &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errb, OutTTY: tty, NoColor: true, Getenv: func(k string) string { return env[k] }}
	code := Main(args, io)
	return result{out.String(), errb.String(), code}
}

func TestHostileNames(t *testing.T) {
	file := hostileTracesFile(t)
	src := []string{"--file", file}
	args := func(a ...string) []string { return append(a, src...) }

	// The graph holds the names as they were sent (JSON keeps them whole).
	r := runIO(t, false, nil, args("graph", "-o", "json")...)
	if r.code != 0 {
		t.Fatalf("graph -o json: exit %d %s", r.code, r.err)
	}
	var doc struct {
		Nodes []struct{ Name string }
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, n := range doc.Nodes {
		names[n.Name] = true
	}
	for _, h := range hostileNames {
		if !names[h] && !strings.Contains(h, "\xff") && utf8.ValidString(h) {
			t.Errorf("JSON lacks the name %q as sent", h)
		}
	}

	t.Run("TSV keeps its columns and no control character", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			cols int
		}{
			{args("graph"), 10}, {args("report", "--broken"), 5}, {args("spof"), 4}, {args("services"), 3},
		} {
			r := runIO(t, false, nil, c.args...)
			if r.code > 1 {
				t.Fatalf("%v: exit %d %s", c.args, r.code, r.err)
			}
			lines := strings.Split(strings.TrimSuffix(r.out, "\n"), "\n")
			if len(lines) < len(hostileNames)/2 {
				t.Errorf("%v: %d lines", c.args[0], len(lines))
			}
			for i, line := range lines {
				if got := strings.Count(line, "\t") + 1; got != c.cols && !(c.args[0] == "services" && got == 2) {
					t.Errorf("%v line %d has %d columns, want %d: %q", c.args[0], i, got, c.cols, line)
				}
				if controlChars.MatchString(line) {
					t.Errorf("%v line %d holds a control character: %q", c.args[0], i, line)
				}
			}
		}
	})

	t.Run("no control character reaches a terminal", func(t *testing.T) {
		for _, a := range [][]string{args("graph"), args("report", "--broken"), args("spof"), args("check"), args("diff", file)} {
			a := a
			if a[0] == "diff" {
				a = []string{"diff", file, "fixture:kafka-e2e"}
			}
			r := runIO(t, true, nil, a...)
			if r.code > 1 && r.code != ExitInconclusive {
				t.Fatalf("%v: exit %d %s", a, r.code, r.err)
			}
			if controlChars.MatchString(r.out) || strings.Contains(r.out, "\r") {
				t.Errorf("%v writes a control character to the terminal:\n%q", a, r.out)
			}
		}
	})

	md := goldmark.New(goldmark.WithExtensions(extension.GFM), goldmark.WithRendererOptions(html.WithUnsafe()))
	// renders checks Markdown with a real renderer that passes raw HTML
	// through: none may appear, nor a heading, link or image of the names.
	renders := func(t *testing.T, what string, src []byte, headings, links int) {
		t.Helper()
		var out bytes.Buffer
		if err := md.Convert(src, &out); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		h := out.String()
		// The only emphasis is the placeholder text of docs' keep blocks.
		if got, want := strings.Count(h, "<em>"), strings.Count(string(src), "<!-- ktrace:keep"); got != want {
			t.Errorf("%s renders %d emphases, want %d", what, got, want)
		}
		for _, bad := range []string{"<img", "<script", `href="javascript`, "<b>", "<del>", "<h1>Injected", "<math"} {
			if strings.Contains(h, bad) {
				t.Errorf("%s renders %s:\n%s", what, bad, h)
			}
		}
		if got := strings.Count(h, "<h"); got != headings {
			t.Errorf("%s renders %d headings, want %d:\n%s", what, got, headings, h)
		}
		if got := strings.Count(h, "<a "); got != links {
			t.Errorf("%s renders %d links, want %d", what, got, links)
		}
		if controlChars.MatchString(h) {
			t.Errorf("%s holds a control character", what)
		}
	}

	t.Run("Markdown renders no HTML, heading or link of a name", func(t *testing.T) {
		r := runIO(t, false, nil, args("report", "--broken", "-o", "markdown")...)
		renders(t, "report -o markdown", []byte(r.out), 1, 0)
		summary := filepath.Join(t.TempDir(), "summary.md")
		r = runIO(t, false, map[string]string{"GITHUB_STEP_SUMMARY": summary}, args("check", "--github")...)
		if r.code != ExitFindings {
			t.Fatalf("check --github: exit %d %s", r.code, r.err)
		}
		for _, line := range strings.Split(strings.TrimSpace(r.out), "\n") {
			if strings.HasPrefix(line, "::") && (strings.ContainsAny(line, "\r") || controlChars.MatchString(line)) {
				t.Errorf("annotation holds a control character: %q", line)
			}
		}
		b, _ := os.ReadFile(summary)
		renders(t, "the step summary", b, 1+strings.Count(string(b), "\n### "), 0)
	})

	t.Run("docs: every page and file name safe and its own", func(t *testing.T) {
		dir := t.TempDir()
		r := runIO(t, false, nil, args("docs", "--out", dir)...)
		if r.code != 0 {
			t.Fatalf("docs: exit %d %s", r.code, r.err)
		}
		pages := map[string]bool{}
		for _, kind := range []string{"services", "topics"} {
			entries, err := os.ReadDir(filepath.Join(dir, kind))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				name := e.Name()
				if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "-") || strings.ContainsAny(name, " /\\") {
					t.Errorf("unsafe file name %s/%q", kind, name)
				}
				if pages[strings.ToLower(kind+"/"+name)] {
					t.Errorf("two pages differ only in case: %s", name)
				}
				pages[strings.ToLower(kind+"/"+name)] = true
			}
		}
		if got := len(pages); got != 2*len(hostileNames)+0 && got < 2*len(hostileNames)-1 {
			t.Errorf("%d service and topic pages for %d names of each", got, len(hostileNames))
		}
		// Nothing escaped the output directory.
		filepath.WalkDir(filepath.Dir(dir), func(p string, d os.DirEntry, err error) error {
			if err == nil && !strings.HasPrefix(p, dir) && p != filepath.Dir(dir) {
				t.Errorf("docs wrote outside --out: %s", p)
			}
			return nil
		})
		index, _ := os.ReadFile(filepath.Join(dir, "index.md"))
		// The links are ktrace's own: "](" outside the Mermaid block.
		outside := fence.ReplaceAllString(string(index), "")
		renders(t, "index.md", index, strings.Count(outside, "\n#"), strings.Count(outside, "]("))
		for p := range pages {
			b, _ := os.ReadFile(filepath.Join(dir, p))
			renders(t, p, b, strings.Count(string(b), "\n#")+boolInt(strings.HasPrefix(string(b), "#")), strings.Count(string(b), "]("))
		}
		validateMermaid(t, filepath.Join(dir, "index.md"))
		if out, err := exec.Command("dot", "-Tsvg", "-o", os.DevNull, filepath.Join(dir, "graph.dot")).CombinedOutput(); err != nil {
			t.Errorf("dot rejects graph.dot: %v\n%s", err, out)
		}
		// ktrace's own SVG is well-formed XML whose only elements are
		// the drawing's: no name adds one.
		svg, _ := os.ReadFile(filepath.Join(dir, "graph.svg"))
		dec := xml.NewDecoder(bytes.NewReader(svg))
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("graph.svg is not well-formed: %v", err)
			}
			if el, ok := tok.(xml.StartElement); ok && !svgElements[el.Name.Local] {
				t.Errorf("graph.svg holds a <%s> element", el.Name.Local)
			}
			if cd, ok := tok.(xml.CharData); ok && controlChars.Match(cd) {
				t.Errorf("graph.svg holds a control character: %q", cd)
			}
		}
	})

	t.Run("Mermaid parses and dot renders", func(t *testing.T) {
		r := runIO(t, false, nil, args("graph", "-o", "mermaid")...)
		p := write(t, "graph.mmd", []byte(r.out))
		validateMermaid(t, p)
		r = runIO(t, false, nil, args("graph", "-o", "dot")...)
		cmd := exec.Command("dot", "-Tsvg")
		cmd.Stdin = strings.NewReader(r.out)
		svg, err := cmd.Output()
		if err != nil {
			t.Fatalf("dot: %v", err)
		}
		if bytes.Contains(svg, []byte("<script")) || bytes.Contains(svg, []byte("<img")) {
			t.Error("the SVG holds markup from a name")
		}
	})
}

// svgElements are the elements render.SVG draws with.
var svgElements = map[string]bool{"svg": true, "defs": true, "marker": true, "path": true, "rect": true, "g": true,
	"title": true, "polygon": true, "ellipse": true, "text": true}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// validateMermaid parses the diagrams in path with Mermaid's own parser
// (scripts/install-docs-tools installs it).
func validateMermaid(t *testing.T, path string) {
	t.Helper()
	nodePath := os.Getenv("KTRACE_NODE_PATH")
	if nodePath == "" {
		home, _ := os.UserHomeDir()
		nodePath = filepath.Join(home, ".cache", "ktrace", "asyncapi-parser-3.6.3", "node_modules")
	}
	if _, err := os.Stat(filepath.Join(nodePath, "mermaid")); err != nil {
		t.Fatalf("mermaid not installed in %s: run scripts/install-docs-tools", nodePath)
	}
	cmd := exec.Command("node", "../../scripts/validate-mermaid.cjs", path)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": valid") {
		t.Errorf("Mermaid parser on %s: %v\n%s", filepath.Base(path), err, out)
	}
}
