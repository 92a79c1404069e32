package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ktrace-dev/ktrace/internal/cli"
	"github.com/ktrace-dev/ktrace/internal/testenv"
	"github.com/ktrace-dev/ktrace/render"
	"github.com/ktrace-dev/ktrace/source/jaeger"
	"github.com/ktrace-dev/ktrace/trace"
)

var record = flag.Bool("record", false, "re-record fixtures/kafka-e2e.json from the run")

// ktrace runs the CLI in-process and returns stdout, stderr and the exit code.
func ktrace(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := cli.Main(args, &cli.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errb, Getenv: os.Getenv})
	return out.String(), errb.String(), code
}

type edge struct{ From, To, Kind, Relation, Group string }

func edgesOf(g render.GraphJSON) []edge {
	var out []edge
	for _, e := range g.Edges {
		out = append(out, edge{e.From, e.To, e.Kind, e.Relation, e.Group})
	}
	return out
}

// waitForGraph polls ktrace graph until the span count stops changing and
// the graph has the expected number of edges, or fails after a minute.
func waitForGraph(t *testing.T, args ...string) render.GraphJSON {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last render.GraphJSON
	stable := 0
	for time.Now().Before(deadline) {
		out, errs, code := ktrace(append([]string{"graph", "-o", "json"}, args...)...)
		if code != 0 {
			t.Fatalf("ktrace graph exited %d: %s", code, errs)
		}
		var g render.GraphJSON
		if err := json.Unmarshal([]byte(out), &g); err != nil {
			t.Fatalf("ktrace graph -o json: %v\n%s", err, out)
		}
		if g.Spans > 0 && g.Spans == last.Spans {
			stable++
		} else {
			stable = 0
		}
		last = g
		if stable >= 2 {
			return g
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("traces did not settle in Jaeger; last graph: %+v", last)
	return last
}

const orders = 6

func TestGraphFromJaeger(t *testing.T) {
	j := testenv.Jaeger(t)
	runTopology(t, j.OTLPAddr(), orders)

	g := waitForGraph(t, "--jaeger", j.QueryAddr(), "--lookback", "10m")

	var keys []string
	for _, n := range g.Nodes {
		keys = append(keys, n.Kind+" "+n.Key)
	}
	wantNodes := []string{
		"service service:billing", "service service:orders-api", "service service:shipping",
		"service service:web-client", "topic topic:orders", "topic topic:shipments",
	}
	if !reflect.DeepEqual(keys, wantNodes) {
		t.Errorf("nodes:\n got %v\nwant %v", keys, wantNodes)
	}
	want := []edge{
		{"service:orders-api", "topic:orders", "produce", "parent", ""},
		{"service:shipping", "topic:shipments", "produce", "parent", ""},
		{"service:web-client", "service:orders-api", "call", "parent", ""},
		{"topic:orders", "service:billing", "consume", "parent", "billing"},
		{"topic:orders", "service:shipping", "consume", "stitched", "shipping"},
	}
	if got := edgesOf(g); !reflect.DeepEqual(got, want) {
		t.Errorf("edges:\n got %+v\nwant %+v", got, want)
	}
	for _, e := range g.Edges {
		if e.From == e.To {
			t.Errorf("self-loop %s", e.From)
		}
		if e.Count != orders {
			t.Errorf("edge %s -> %s (%s): count %d, want %d", e.From, e.To, e.Relation, e.Count, orders)
		}
	}
	if len(g.Stitches) != orders {
		t.Fatalf("stitches: got %d, want %d", len(g.Stitches), orders)
	}
	for _, s := range g.Stitches {
		if s.Producer.Service != "orders-api" || s.Consumer.Service != "shipping" || s.Topic != "orders" || s.Offset < 0 {
			t.Errorf("stitch %+v: want orders-api -> orders -> shipping with an offset", s)
		}
		if s.Producer.TraceID == s.Consumer.TraceID {
			t.Errorf("stitch %+v joins spans of one trace; the shipping hop should have lost its context", s)
		}
	}
	for _, n := range g.Nodes {
		if n.Kind == "service" && (len(n.Instances) != 1 || n.Instances[0] != strings.TrimPrefix(n.Key, "service:")+"-1") {
			t.Errorf("%s instances = %v", n.Key, n.Instances)
		}
	}

	// Jaeger's memory store takes an empty service name as "any": ktrace
	// reads every trace once, and gets the graph it gets service by service.
	sameGraphEitherWay(t, j.QueryAddr(), g)

	// GetTrace returns one whole trace: the producer side of a stitched hop.
	jc, err := jaeger.Dial(jaeger.Config{Addr: j.QueryAddr()})
	if err != nil {
		t.Fatal(err)
	}
	defer jc.Close()
	pid, err := trace.ParseTraceID(g.Stitches[0].Producer.TraceID)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := jc.Trace(context.Background(), pid)
	if err != nil {
		t.Fatal(err)
	}
	services := map[string]bool{}
	for i := range tr.Spans {
		services[tr.Spans[i].Service()] = true
	}
	if len(tr.Spans) != 4 || !services["web-client"] || !services["orders-api"] || !services["billing"] || services["shipping"] {
		t.Errorf("GetTrace %s: %d spans from %v; want web-client, orders-api, billing and not shipping", pid, len(tr.Spans), services)
	}

	// The report names the lost hop; the spec-less CI gate fails on it.
	out, errs, code := ktrace("report", "--broken", "--jaeger", j.QueryAddr(), "--settle", "300ms", "-o", "json")
	var rep render.ReportJSON
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Findings) != 1 ||
		rep.Findings[0].Rule != "lost-hop" || rep.Findings[0].Where != "orders-api → orders → shipping" || rep.Findings[0].Traces != orders {
		t.Errorf("report --broken: exit %d %s\n%s", code, errs, out)
	}
	if out, errs, code := ktrace("check", "--jaeger", j.QueryAddr(), "--poll", "200ms", "--wait", "30s"); code != 1 || !strings.Contains(out, "orders → shipping") {
		t.Errorf("check: exit %d %s\n%s", code, errs, out)
	}

	// The same window of Jaeger twice: no topology change.
	now := time.Now().UTC()
	window := now.Add(-10*time.Minute).Format(time.RFC3339) + ".." + now.Add(time.Minute).Format(time.RFC3339)
	if out, errs, code := ktrace("diff", "--jaeger", j.QueryAddr(), window, window, "--fail-on-change"); code != 0 || out != "no changes\n" {
		t.Errorf("diff of one window with itself: exit %d %s\n%s", code, errs, out)
	}
	// An empty earlier window against the run: every node and edge is new.
	before := now.Add(-time.Hour).Format(time.RFC3339) + ".." + now.Add(-50*time.Minute).Format(time.RFC3339)
	if out, _, code := ktrace("diff", "--jaeger", j.QueryAddr(), before, window); code != 0 || !strings.Contains(out, "edge-added\ttopic:orders -> service:shipping (consume, shipping)\tstitched") {
		t.Errorf("diff of an empty window with the run: exit %d\n%s", code, out)
	}

	// The services command lists what Jaeger knows, through GetServices and GetOperations.
	out, errs, code = ktrace("services", "--jaeger", j.QueryAddr())
	if code != 0 {
		t.Fatalf("services exited %d: %s", code, errs)
	}
	for _, s := range []string{"billing", "orders-api", "shipping", "web-client"} {
		if !strings.Contains(out, s+"\t") {
			t.Errorf("services output lacks %s:\n%s", s, out)
		}
	}

	// A snapshot pulled from Jaeger gives the same graph offline.
	snap := filepath.Join(t.TempDir(), "e2e.ktrace")
	if _, errs, code := ktrace("pull", "--jaeger", j.QueryAddr(), "--lookback", "10m", snap); code != 0 {
		t.Fatalf("pull exited %d: %s", code, errs)
	}
	out, errs, code = ktrace("graph", "-o", "json", "--file", snap)
	if code != 0 {
		t.Fatalf("graph --file snapshot exited %d: %s", code, errs)
	}
	var fromSnap render.GraphJSON
	if err := json.Unmarshal([]byte(out), &fromSnap); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(edgesOf(fromSnap), want) || fromSnap.Spans != g.Spans {
		t.Errorf("snapshot graph differs: %d spans vs %d; edges %+v", fromSnap.Spans, g.Spans, edgesOf(fromSnap))
	}

	// Jaeger's HTTP API gives the JSON the UI downloads; ktrace reads it too.
	raw := jaegerHTTPTraces(t, j.UIURL())
	path := filepath.Join(t.TempDir(), "jaeger.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code = ktrace("graph", "-o", "json", "--file", path)
	if code != 0 {
		t.Fatalf("graph --file jaeger.json exited %d: %s", code, errs)
	}
	var fromHTTP render.GraphJSON
	if err := json.Unmarshal([]byte(out), &fromHTTP); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(edgesOf(fromHTTP), want) {
		t.Errorf("graph from Jaeger HTTP JSON: %+v", edgesOf(fromHTTP))
	}
	if *record {
		if err := os.WriteFile("../../fixtures/kafka-e2e.json", raw, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("recorded fixtures/kafka-e2e.json")
	}
}

// jaegerHTTPTraces fetches every service's traces from Jaeger's HTTP API and
// merges them into one {"data":[…]} document, each trace once, sorted by ID.
func jaegerHTTPTraces(t *testing.T, base string) []byte {
	t.Helper()
	get := func(url string, v any) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %s", url, resp.Status, b)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	var services struct{ Data []string }
	get(base+"/api/services", &services)
	byID := map[string]json.RawMessage{}
	for _, s := range services.Data {
		var res struct{ Data []json.RawMessage }
		get(fmt.Sprintf("%s/api/traces?service=%s&lookback=1h&limit=1000", base, s), &res)
		for _, tr := range res.Data {
			var head struct{ TraceID string }
			if err := json.Unmarshal(tr, &head); err != nil {
				t.Fatal(err)
			}
			byID[head.TraceID] = tr
		}
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b bytes.Buffer
	b.WriteString("{\"data\":[\n")
	for i, id := range ids {
		if i > 0 {
			b.WriteString(",\n")
		}
		var ind bytes.Buffer
		json.Indent(&ind, byID[id], "", " ")
		b.Write(ind.Bytes())
	}
	b.WriteString("\n]}\n")
	return b.Bytes()
}

// With nothing in Jaeger, check cannot conclude: exit 3, not a violation.
func TestCheckInconclusiveOnEmptyJaeger(t *testing.T) {
	j := testenv.Jaeger(t)
	out, errs, code := ktrace("check", "--jaeger", j.QueryAddr(), "--poll", "200ms", "--wait", "1s")
	if code != 3 {
		t.Errorf("exit %d, want 3 (inconclusive)\n%s\n%s", code, out, errs)
	}
}

// A trace that gains spans between the two reads of report --broken is
// incomplete, not broken.
func TestReportMarksArrivingTracesIncomplete(t *testing.T) {
	j := testenv.Jaeger(t)
	tp := provider(t, j.OTLPAddr(), "early")
	ctx, root := tp.Tracer("e").Start(context.Background(), "root")
	root.End()
	tp.ForceFlush(context.Background())
	time.Sleep(time.Second) // let Jaeger store it

	done := make(chan struct{})
	var out, errs string
	var code int
	go func() {
		out, errs, code = ktrace("report", "--broken", "--jaeger", j.QueryAddr(), "--settle", "3s", "-o", "json")
		close(done)
	}()
	time.Sleep(time.Second)
	late := provider(t, j.OTLPAddr(), "late")
	_, child := late.Tracer("l").Start(ctx, "child")
	child.End()
	late.Shutdown(context.Background())
	<-done
	var rep render.ReportJSON
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("exit %d %s\n%s", code, errs, out)
	}
	if len(rep.Incomplete) != 1 || rep.Incomplete[0] != root.SpanContext().TraceID().String() || len(rep.Findings) != 0 {
		t.Errorf("report %+v", rep)
	}
	tp.Shutdown(context.Background())
}

// sameGraphEitherWay checks that ktrace asked every service at once and
// that asking service by service (--service for each) gives the same graph.
func sameGraphEitherWay(t *testing.T, addr string, g render.GraphJSON) {
	t.Helper()
	_, errs, code := ktrace("graph", "-o", "json", "--jaeger", addr, "--lookback", "10m")
	if code != 0 || !strings.Contains(errs, "all services at once") {
		t.Errorf("ktrace graph exited %d and did not ask for all services at once:\n%s", code, errs)
	}
	args := []string{"graph", "-o", "json", "--jaeger", addr, "--lookback", "10m"}
	for _, n := range g.Nodes {
		if n.Kind == "service" {
			args = append(args, "--service", strings.TrimPrefix(n.Key, "service:"))
		}
	}
	out, errs, code := ktrace(args...)
	if code != 0 || !strings.Contains(errs, "service by service") {
		t.Fatalf("ktrace graph --service ... exited %d:\n%s", code, errs)
	}
	sameGraph(t, "--service for each", out, g)
	// --by-service lists the services itself.
	out, errs, code = ktrace("graph", "-o", "json", "--jaeger", addr, "--lookback", "10m", "--by-service")
	if code != 0 || !strings.Contains(errs, "service by service") {
		t.Fatalf("ktrace graph --by-service exited %d:\n%s", code, errs)
	}
	sameGraph(t, "--by-service", out, g)
}

// sameGraph holds the graph JSON out equal in traces, spans and edges to g.
func sameGraph(t *testing.T, how, out string, g render.GraphJSON) {
	t.Helper()
	var per render.GraphJSON
	if err := json.Unmarshal([]byte(out), &per); err != nil {
		t.Fatal(err)
	}
	if per.Spans != g.Spans || per.Traces != g.Traces || !reflect.DeepEqual(edgesOf(per), edgesOf(g)) {
		t.Errorf("service by service (%s): %d traces, %d spans, edges %+v\nall at once: %d traces, %d spans, edges %+v",
			how, per.Traces, per.Spans, edgesOf(per), g.Traces, g.Spans, edgesOf(g))
	}
}

// TestGraphFromJaegerBadger: the same topology through Jaeger's Badger
// store, which also takes an empty service name as "any".
func TestGraphFromJaegerBadger(t *testing.T) {
	j := testenv.JaegerBadger(t)
	runTopology(t, j.OTLPAddr(), orders)
	g := waitForGraph(t, "--jaeger", j.QueryAddr(), "--lookback", "10m")
	if len(g.Edges) != 5 || len(g.Stitches) != orders {
		t.Errorf("Badger: %d edges, %d stitches; want 5 and %d", len(g.Edges), len(g.Stitches), orders)
	}
	sameGraphEitherWay(t, j.QueryAddr(), g)
}
