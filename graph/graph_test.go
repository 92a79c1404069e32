package graph_test

import (
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/trace"
)

func load(t testing.TB, name string) []trace.Trace {
	t.Helper()
	var set trace.Set
	if _, err := file.ReadFile("../fixtures/"+name+".json", nil, &set, &trace.Resources{}); err != nil {
		t.Fatal(err)
	}
	return set.Traces()
}

func describe(g *graph.Graph) []string {
	var out []string
	for _, e := range g.Edges {
		s := fmt.Sprintf("%s -> %s %s/%s", e.From.Key, e.To.Key, e.Kind, e.Relation)
		if e.Group != "" {
			s += " [" + e.Group + "]"
		}
		out = append(out, fmt.Sprintf("%s x%d err%d", s, e.Count, e.Errors))
	}
	return out
}

func check(t *testing.T, g *graph.Graph, want ...string) {
	t.Helper()
	got := describe(g)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("edges:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, e := range g.Edges {
		if e.From == e.To {
			t.Errorf("self-loop on %s", e.From.Key)
		}
	}
}

func TestRPCChain(t *testing.T) {
	g := graph.Build(load(t, "rpc-chain"))
	check(t, g,
		"service:checkout -> service:payments call/parent x1 err1",
		"service:frontend -> service:checkout call/parent x2 err0",
		"unknown:frontend -> service:frontend call/span x2 err0",
	)
	e := g.EdgesFrom("service:frontend")[0]
	// Call latency is the client span's duration: 7ms and 3ms.
	if e.P50 != 3*time.Millisecond || e.P99 != 7*time.Millisecond {
		t.Errorf("latency p50 %v p99 %v", e.P50, e.P99)
	}
	checkout := g.Node("service:checkout")
	if strings.Join(checkout.Instances, ",") != "node-a,node-b" || checkout.Spans != 4 {
		t.Errorf("checkout node %+v", checkout)
	}
	if g.Traces != 2 || g.Spans != 9 {
		t.Errorf("counts %d %d", g.Traces, g.Spans)
	}
}

func TestDatabaseAndPeer(t *testing.T) {
	g := graph.Build(load(t, "db-peer"))
	check(t, g,
		"service:inventory -> database:postgresql/stock peer/span x2 err0",
		"service:inventory -> peer:legacy-erp peer/span x1 err1",
		"unknown:inventory -> service:inventory call/span x2 err0",
	)
	if n := g.Node("database:postgresql/stock"); n == nil || n.Kind != graph.KindDatabase || !n.Kind.Virtual() {
		t.Errorf("database node %+v", n)
	}
}

func TestBrokenHopIsStitched(t *testing.T) {
	g := graph.Build(load(t, "broken-hop"))
	check(t, g,
		"service:orders -> topic:notify produce/parent x1 err0",
		"service:orders -> topic:orders produce/parent x1 err0",
		"topic:notify -> service:mailer consume/stitched [mailer] x1 err0",
		"topic:orders -> service:analytics consume/link [analytics] x1 err0",
		"topic:orders -> service:audit consume/parent [audit] x1 err0",
		"topic:orders -> service:fulfilment consume/stitched [fulfilment] x1 err0",
		"unknown:orders -> service:orders call/span x1 err0",
	)
	if len(g.Stitches) != 2 {
		t.Fatalf("stitches %+v", g.Stitches)
	}
	byOffset, byID := g.Stitches[0], g.Stitches[1]
	if byOffset.Consumer.Service != "fulfilment" || byOffset.Producer.Service != "orders" || byOffset.Offset != 42 || byOffset.Partition != 0 {
		t.Errorf("offset stitch %+v", byOffset)
	}
	if byID.Consumer.Service != "mailer" || byID.MessageID != "msg-7" || byID.Offset != -1 {
		t.Errorf("message-id stitch %+v", byID)
	}
	// producer start 1764000000002000µs, consumer 1764000000010000µs.
	if e := g.EdgesFrom("topic:orders"); e[2].P50 != 8*time.Millisecond {
		t.Errorf("stitched latency %v", e[2].P50)
	}
	if p := g.Node("topic:orders").Partitions; len(p) != 1 || p[0] != 0 {
		t.Errorf("partitions %v", p)
	}
}

func TestRecordedKafkaRun(t *testing.T) {
	g := graph.Build(load(t, "kafka-e2e"))
	check(t, g,
		"service:orders-api -> topic:orders produce/parent x6 err0",
		"service:shipping -> topic:shipments produce/parent x6 err0",
		"service:web-client -> service:orders-api call/parent x6 err0",
		"topic:orders -> service:billing consume/parent [billing] x6 err0",
		"topic:orders -> service:shipping consume/stitched [shipping] x6 err0",
	)
}

func sp(id trace.TraceID, sid, parent trace.SpanID, svc string, kind trace.Kind, a ...string) trace.Span {
	s := trace.Span{TraceID: id, SpanID: sid, Kind: kind, Resource: &trace.Resource{Service: svc}, Start: time.Unix(0, int64(sid)*1000)}
	if parent != 0 {
		s.Refs = []trace.Ref{{Type: trace.RefParent, TraceID: id, SpanID: parent}}
	}
	for i := 0; i < len(a); i += 2 {
		s.Attributes = append(s.Attributes, trace.Attribute{Key: a[i], Value: a[i+1]})
	}
	return s
}

func TestSameServiceIsNotAnEdge(t *testing.T) {
	id := trace.TraceID{Low: 1}
	tr := trace.Trace{ID: id, Spans: []trace.Span{
		sp(id, 1, 0, "a", trace.KindInternal),
		sp(id, 2, 1, "a", trace.KindClient),
		sp(id, 3, 2, "a", trace.KindServer),
		// A nested publish under a publish of the same record counts once.
		sp(id, 4, 3, "a", trace.KindProducer, "messaging.destination.name", "t"),
		sp(id, 5, 4, "a", trace.KindProducer, "messaging.destination.name", "t"),
		// receive → process in one consumer counts once.
		sp(id, 6, 5, "b", trace.KindConsumer, "messaging.destination.name", "t"),
		sp(id, 7, 6, "b", trace.KindConsumer, "messaging.destination.name", "t", "messaging.operation", "process"),
	}}
	g := graph.Build([]trace.Trace{tr})
	check(t, g,
		"service:a -> topic:t produce/parent x1 err0",
		"topic:t -> service:b consume/parent x1 err0",
	)
	d, edges := g.Directed(), 0
	for nodes := d.Nodes(); nodes.Next(); {
		edges += d.From(nodes.Node().ID()).Len()
	}
	if edges != 2 {
		t.Errorf("gonum view has %d edges", edges)
	}
}

// A consumer whose producer is not in the data (sampled out) is an edge
// found from the span alone, never a stitch.
func TestUnmatchedConsumer(t *testing.T) {
	id := trace.TraceID{Low: 9}
	g := graph.Build([]trace.Trace{{ID: id, Spans: []trace.Span{
		sp(id, 1, 0, "c", trace.KindConsumer, "messaging.destination.name", "t", "messaging.kafka.offset", "3", "messaging.destination.partition.id", "0"),
	}}})
	check(t, g, "topic:t -> service:c consume/span x1 err0")
	if len(g.Stitches) != 0 {
		t.Error("stitched to nothing")
	}
}

func TestSynthetic(t *testing.T) {
	ts := synth.Generate(synth.Config{Traces: 200, SpansPerTrace: 12, BrokenShare: 0.5, MessagingOnly: true, Seed: 1})
	g := graph.Build(ts)
	var stitched, parent int
	for _, e := range g.Edges {
		switch {
		case e.Kind == graph.EdgeConsume && e.Relation == graph.RelStitched:
			stitched += e.Count
		case e.Kind == graph.EdgeConsume && e.Relation == graph.RelParent:
			parent += e.Count
		case e.Kind == graph.EdgeConsume:
			t.Errorf("unexpected consume edge %+v", e)
		}
	}
	// 200 traces × 5 hops each.
	if stitched+parent != 1000 || stitched != len(g.Stitches) || stitched < 400 || stitched > 600 {
		t.Errorf("stitched %d parent %d stitches %d", stitched, parent, len(g.Stitches))
	}
}

func TestEmptyGraph(t *testing.T) {
	g := graph.Build(nil)
	if len(g.Nodes) != 0 || len(g.Edges) != 0 || g.Directed().Nodes().Len() != 0 {
		t.Error("empty input gave a non-empty graph")
	}
}

// BenchmarkBuild1M builds the graph of a synthetic 1,000,000-span set and
// reports spans/s and bytes per span (allocated during the build, and still
// live afterwards).
func BenchmarkBuild1M(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("KTRACE_BENCH_SPANS"); s != "" {
		fmt.Sscan(s, &n)
	}
	ts := synth.Generate(synth.Standard(n))
	spans := 0
	for i := range ts {
		spans += len(ts[i].Spans)
	}
	b.ResetTimer()
	var ms0, ms1 runtime.MemStats
	var g *graph.Graph
	for i := 0; i < b.N; i++ {
		b.StopTimer() // a forced collection scans the whole input: not the build's cost
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		b.StartTimer()
		g = graph.Build(ts)
		runtime.ReadMemStats(&ms1)
	}
	b.StopTimer()
	runtime.GC()
	var ms2 runtime.MemStats
	runtime.ReadMemStats(&ms2)
	b.ReportMetric(float64(spans)*float64(b.N)/b.Elapsed().Seconds(), "spans/s")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(spans), "alloc-B/span")
	b.ReportMetric(float64(int64(ms2.HeapAlloc)-int64(ms0.HeapAlloc))/float64(spans), "retained-B/span")
	runtime.KeepAlive(g)
	runtime.KeepAlive(ts)
}

// A stream processor whose output produce span starts a new trace is
// stitched to the input it consumed with the same key; a service that
// consumes nothing with that key is an origin.
func TestPassThroughStitch(t *testing.T) {
	in, out, src := trace.TraceID{Low: 1}, trace.TraceID{Low: 2}, trace.TraceID{Low: 3}
	g := graph.Build([]trace.Trace{
		{ID: in, Spans: []trace.Span{
			sp(in, 1, 0, "source", trace.KindProducer, "messaging.destination.name", "a", "messaging.kafka.message.key", "42"),
			sp(in, 2, 1, "join", trace.KindConsumer, "messaging.destination.name", "a", "messaging.kafka.message.key", "42"),
		}},
		{ID: out, Spans: []trace.Span{
			sp(out, 5, 0, "join", trace.KindProducer, "messaging.destination.name", "b", "messaging.kafka.message.key", "42"),
		}},
		{ID: src, Spans: []trace.Span{
			sp(src, 6, 0, "join", trace.KindProducer, "messaging.destination.name", "b", "messaging.kafka.message.key", "7"),
		}},
	})
	check(t, g,
		"service:join -> topic:b produce/span x1 err0",
		"service:join -> topic:b produce/stitched x1 err0",
		"service:source -> topic:a produce/span x1 err0",
		"topic:a -> service:join consume/parent x1 err0",
	)
	if len(g.Stitches) != 1 {
		t.Fatalf("stitches %+v", g.Stitches)
	}
	s := g.Stitches[0]
	if s.Kind != graph.StitchPassThrough || s.Producer.SpanID != 5 || s.Consumer.SpanID != 2 || s.Topic != "a" || s.OutTopic != "b" || s.Key != "42" {
		t.Errorf("stitch %+v", s)
	}
}

func TestLinkedProduce(t *testing.T) {
	a, b := trace.TraceID{Low: 1}, trace.TraceID{Low: 2}
	p := sp(b, 2, 0, "join", trace.KindProducer, "messaging.destination.name", "out")
	p.Refs = []trace.Ref{{Type: trace.RefLink, TraceID: a, SpanID: 1}}
	g := graph.Build([]trace.Trace{
		{ID: a, Spans: []trace.Span{sp(a, 1, 0, "join", trace.KindConsumer, "messaging.destination.name", "in")}},
		{ID: b, Spans: []trace.Span{p}},
	})
	check(t, g,
		"service:join -> topic:out produce/link x1 err0",
		"topic:in -> service:join consume/span x1 err0",
	)
}

func loadFixture(t *testing.T, name string) []trace.Trace {
	t.Helper()
	var set trace.Set
	if _, err := file.ReadFile("../fixtures/"+name+".ktrace", nil, &set, &trace.Resources{}); err != nil {
		t.Fatal(err)
	}
	return set.Traces()
}

// The recorded stack runs: the join's output is stitched with the default
// join and continues its input with the linked join.
func TestRecordedStackRuns(t *testing.T) {
	for fixture, want := range map[string]graph.Relation{"stargazers-lost": graph.RelStitched, "stargazers-links": graph.RelParent} {
		g := graph.Build(loadFixture(t, fixture))
		var join *graph.Edge
		for _, e := range g.EdgesFrom("service:stargazers-join") {
			join = e
		}
		if join == nil || join.To.Key != "topic:stargazers-results" || join.Relation != want || join.Count != 24 {
			t.Errorf("%s: join edge %+v, want %s x24", fixture, join, want)
		}
		for _, e := range g.EdgesFrom("service:stargazers-flatten") {
			if e.Relation != graph.RelParent {
				t.Errorf("%s: flatten edge %s", fixture, e.Relation)
			}
		}
	}
}

// summary is what a graph says, without its internal numbering.
func summary(g *graph.Graph) string {
	var b strings.Builder
	fmt.Fprintf(&b, "traces %d spans %d\n", g.Traces, g.Spans)
	for _, n := range g.Nodes {
		fmt.Fprintf(&b, "node %s %d %d %v %v %v\n", n.Key, n.Spans, n.Errors, n.Instances, n.Operations, n.Partitions)
	}
	for _, e := range g.Edges {
		fmt.Fprintf(&b, "edge %s %s %s %s %q %d %d %v %v %v %v\n", e.From.Key, e.To.Key, e.Kind, e.Relation, e.Group, e.Count, e.Errors, e.P50, e.P95, e.P99, e.ClientIDs)
	}
	for _, s := range g.Stitches {
		fmt.Fprintf(&b, "stitch %+v\n", s)
	}
	return b.String()
}

// TestLatenciesOnOneCPUAndMany: on several CPUs, a graph of more than
// 100,000 latency samples has the walk's samples gathered on a goroutine of
// their own while the pending consumers are stitched, and the stitched
// hops' samples added after; the graph, percentiles and all, is the one a
// single CPU makes.
func TestLatenciesOnOneCPUAndMany(t *testing.T) {
	cfg := synth.Standard(200_000)
	cfg.LinkShare = 0.3
	ts := synth.Generate(cfg)
	procs := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(procs)
	want := summary(graph.BuildWorkers(ts, 1))
	runtime.GOMAXPROCS(max(2, procs))
	for _, w := range []int{1, 2} {
		if got := summary(graph.BuildWorkers(ts, w)); got != want {
			t.Fatalf("%d builders on %d CPUs: the graph differs from one CPU's", w, runtime.GOMAXPROCS(0))
		}
	}
}

// TestBuildWorkersAgree: builders fed runs of traces and merged in order
// give the graph one builder gives, with parents, links, stitched hops and
// pass-through stitches all present.
func TestBuildWorkersAgree(t *testing.T) {
	ts := synth.Generate(synth.Config{Traces: 5000, SpansPerTrace: 12, Services: 8, Topics: 4, BrokenShare: 0.2, Seed: 5})
	// Give every other broken consumer a link to its producer.
	type rec struct {
		topic     string
		part, off int32
	}
	producers := map[rec]trace.Ref{}
	for i := range ts {
		for j := range ts[i].Spans {
			s := &ts[i].Spans[j]
			if m, ok := s.Messaging(); ok && m.IsProducer() {
				producers[rec{m.Destination, m.Partition, int32(m.Offset)}] = trace.Ref{Type: trace.RefLink, TraceID: s.TraceID, SpanID: s.SpanID}
			}
		}
	}
	linked := 0
	for i := range ts {
		for j := range ts[i].Spans {
			s := &ts[i].Spans[j]
			if m, ok := s.Messaging(); ok && m.IsConsumer() && len(s.Refs) == 0 {
				if linked++; linked%2 == 0 {
					s.Refs = append(s.Refs, producers[rec{m.Destination, m.Partition, int32(m.Offset)}])
				}
			}
		}
	}
	// A pass-through: a root producer keyed like a record its service consumed.
	last := &ts[len(ts)-1]
	for j := range last.Spans {
		s := &last.Spans[j]
		if m, ok := s.Messaging(); ok && m.IsConsumer() {
			s.Attributes = append(s.Attributes, trace.Attribute{Key: "messaging.kafka.message.key", Value: "k1"})
			out := trace.Span{TraceID: trace.TraceID{Low: 1}, SpanID: 1, Kind: trace.KindProducer, Operation: "out publish",
				Start: s.Start.Add(time.Millisecond), Resource: s.Resource, Attributes: trace.Attributes{
					{Key: "messaging.system", Value: "kafka"}, {Key: "messaging.destination.name", Value: "joined"},
					{Key: "messaging.kafka.message.key", Value: "k1"}}}
			ts = append(ts, trace.Trace{ID: out.TraceID, Spans: []trace.Span{out}})
			break
		}
	}
	// The reference: one builder, and one goroutine for the join at the
	// end as well (it shares the producers among GOMAXPROCS goroutines).
	procs := runtime.GOMAXPROCS(1)
	one := graph.BuildWorkers(ts, 1)
	runtime.GOMAXPROCS(max(4, procs))
	defer runtime.GOMAXPROCS(procs)
	want := summary(one)
	for _, r := range []graph.Relation{graph.RelParent, graph.RelLink, graph.RelStitched} {
		if !strings.Contains(want, " consume "+r.String()+" ") {
			t.Fatalf("no %s consume edge in the test graph:\n%s", r, want)
		}
	}
	if !strings.Contains(want, "Kind:pass-through") {
		t.Fatalf("no pass-through stitch in the test graph")
	}
	for _, w := range []int{1, 2, 3, 8} {
		if got := summary(graph.BuildWorkers(ts, w)); got != want {
			t.Fatalf("%d workers differ from one:\n%s\nwant:\n%s", w, got, want)
		}
	}
	// A merged builder merged again: the middle third takes the last,
	// then the first takes it (what it holds of others is renumbered twice).
	var bs [3]*graph.Builder
	for k := range bs {
		bs[k] = graph.NewBuilder()
		for i := k * len(ts) / 3; i < (k+1)*len(ts)/3; i++ {
			bs[k].Add(&ts[i])
		}
	}
	bs[1].Merge(bs[2])
	bs[0].Merge(bs[1])
	if got := summary(bs[0].Graph()); got != want {
		t.Fatalf("merges of merged builders differ from one builder:\n%s\nwant:\n%s", got, want)
	}
}

// TestTopicPartitions: partitions below 64 (kept in a bit set first) and
// above, seen repeatedly and across merged builders, come out once each,
// sorted.
func TestTopicPartitions(t *testing.T) {
	var ts []trace.Trace
	for i, p := range []string{"3", "70", "3", "0", "63", "70", "64", "0", "1000"} {
		id := trace.TraceID{Low: uint64(i + 1)}
		ts = append(ts, trace.Trace{ID: id, Spans: []trace.Span{sp(id, 1, 0, "writer", trace.KindProducer,
			"messaging.system", "kafka", "messaging.destination.name", "t", "messaging.kafka.destination.partition", p)}})
	}
	for _, w := range []int{1, 2, 4} {
		got := graph.BuildWorkers(ts, w).Node("topic:t").Partitions
		if want := []int32{0, 3, 63, 64, 70, 1000}; !slices.Equal(got, want) {
			t.Errorf("%d workers: partitions %v, want %v", w, got, want)
		}
	}
}

// TestSharedNamesAgree: the builder knows names it has seen by their
// address when the reader shares them (trace.Strings), and by their bytes
// otherwise; both give the same graph, also past the number of addresses it
// remembers.
func TestSharedNamesAgree(t *testing.T) {
	ts := synth.Generate(synth.Config{Traces: 3000, SpansPerTrace: 12, Services: 8, Topics: 5, BrokenShare: 0.2, Seed: 9})
	want := summary(graph.BuildWorkers(ts, 1))
	// Every span with its own copy of every string and its own resource,
	// as a reader that does not share them gives.
	synth.Unshare(ts)
	for _, w := range []int{1, 2} {
		g := graph.BuildWorkers(ts, w)
		if got := summary(g); got != want {
			t.Fatalf("%d workers, unshared strings: the graph differs:\n%s\nwant:\n%s", w, got, want)
		}
		// A hop stitch's names are its nodes' own strings, whatever
		// strings its spans held (the analyzer counts hops by them).
		same := func(s, key string) bool {
			n := g.Node(key)
			return n != nil && unsafe.StringData(s) == unsafe.StringData(n.Name) && len(s) == len(n.Name)
		}
		hops := 0
		for _, st := range g.Stitches {
			if st.Kind != graph.StitchHop {
				continue
			}
			hops++
			if !same(st.Producer.Service, "service:"+st.Producer.Service) || !same(st.Topic, "topic:"+st.Topic) ||
				!same(st.Consumer.Service, "service:"+st.Consumer.Service) {
				t.Fatalf("%d workers: hop stitch %s → %s → %s does not hold its nodes' names", w, st.Producer.Service, st.Topic, st.Consumer.Service)
			}
		}
		if hops == 0 {
			t.Fatalf("%d workers: no hop stitches", w)
		}
	}
}

// TestJoinAcrossRuns: the producers are matched with the pending consumers
// by several goroutines, each over a run of them; the answer is still the
// one a single pass gives. A record written many times is stitched to its
// last producer, and a consumer's first link wins over a later one even
// when the later link's producer comes first.
func TestJoinAcrossRuns(t *testing.T) {
	procs := runtime.GOMAXPROCS(4)
	defer runtime.GOMAXPROCS(procs)
	rec := []string{"messaging.system", "kafka", "messaging.destination.name", "t",
		"messaging.kafka.destination.partition", "0", "messaging.kafka.offset", "7"}
	var ts []trace.Trace
	const n = 9000 // several runs of producers
	for i := 1; i <= n; i++ {
		id := trace.TraceID{Low: uint64(i)}
		ts = append(ts, trace.Trace{ID: id, Spans: []trace.Span{sp(id, trace.SpanID(i), 0, fmt.Sprintf("w%d", i%3), trace.KindProducer, rec...)}})
	}
	cid := trace.TraceID{Low: n + 1}
	stitched := sp(cid, n+1, 0, "reader", trace.KindConsumer, rec...)
	lid := trace.TraceID{Low: n + 2}
	linked := sp(lid, n+2, 0, "linker", trace.KindConsumer, "messaging.system", "kafka", "messaging.destination.name", "t")
	linked.Refs = []trace.Ref{
		{Type: trace.RefLink, TraceID: trace.TraceID{Low: n - 1}, SpanID: n - 1}, // first link: a late producer
		{Type: trace.RefLink, TraceID: trace.TraceID{Low: 2}, SpanID: 2},         // second link: an early one
	}
	// The first link's producer is in its trace twice, the copy starting
	// later: the first of equal producers wins.
	again := ts[n-2].Spans[0]
	again.Start = again.Start.Add(time.Millisecond)
	ts[n-2].Spans = append(ts[n-2].Spans, again)
	ts = append(ts, trace.Trace{ID: cid, Spans: []trace.Span{stitched}}, trace.Trace{ID: lid, Spans: []trace.Span{linked}})
	for _, w := range []int{1, 3} {
		g := graph.BuildWorkers(ts, w)
		var hop *graph.Stitch
		for i := range g.Stitches {
			if g.Stitches[i].Consumer.SpanID == n+1 {
				hop = &g.Stitches[i]
			}
		}
		if hop == nil || hop.Producer.SpanID != n {
			t.Fatalf("%d builders: record stitched to %+v, want the last producer (span %d)", w, hop, n)
		}
		var link *graph.Edge
		for _, e := range g.EdgesFrom("topic:t") {
			if e.To.Key == "service:linker" {
				link = e
			}
		}
		// The first link's producer starts later than the second's: the
		// lag tells which one was taken.
		wantLag := time.Duration(n+2-(n-1)) * time.Microsecond
		if link == nil || link.Relation != graph.RelLink || link.P50 != wantLag {
			t.Fatalf("%d builders: linker edge %+v, want a link edge with lag %s (the first link's producer)", w, link, wantLag)
		}
	}
}

// TestStitchedByNumber: AddSpan numbers the consumers whose producer is not
// their parent, across a merge, and Stitched tells which of them the graph
// stitched as hops, as its Stitches do.
func TestStitchedByNumber(t *testing.T) {
	cfg := synth.Standard(20000)
	cfg.LinkShare = 0.3
	ts := synth.Generate(cfg)
	type key struct {
		tid trace.TraceID
		sid trace.SpanID
	}
	// feed adds ts to b span by span and returns its pending consumers by number.
	feed := func(b *graph.Builder, ts []trace.Trace) []key {
		var out []key
		var idx trace.Index
		for i := range ts {
			idx.Reset(ts[i].Spans)
			b.Begin(&ts[i], &idx)
			for j := range ts[i].Spans {
				if k := b.AddSpan(j); k >= 0 {
					if k != len(out) {
						t.Fatalf("pending consumer numbered %d, want %d", k, len(out))
					}
					out = append(out, key{ts[i].ID, ts[i].Spans[j].SpanID})
				}
			}
		}
		if b.Pending() != len(out) {
			t.Fatalf("Pending says %d, AddSpan numbered %d", b.Pending(), len(out))
		}
		return out
	}
	a, b := graph.NewBuilder(), graph.NewBuilder()
	numbered := append(feed(a, ts[:len(ts)/2]), feed(b, ts[len(ts)/2:])...) // b's after a's
	a.Merge(b)
	if a.Pending() != len(numbered) {
		t.Fatalf("%d pending consumers after the merge, want %d", a.Pending(), len(numbered))
	}
	g := a.Graph()
	hops := map[key]bool{}
	for _, st := range g.Stitches {
		if st.Kind == graph.StitchHop {
			hops[key{st.Consumer.TraceID, st.Consumer.SpanID}] = true
		}
	}
	stitched := 0
	for k, c := range numbered {
		if a.Stitched(k) != hops[c] {
			t.Fatalf("pending consumer %d: Stitched %v, but the graph's stitches say %v", k, a.Stitched(k), hops[c])
		}
		if hops[c] {
			stitched++
		}
	}
	if stitched == 0 || stitched == len(numbered) || len(hops) != stitched {
		t.Fatalf("%d of %d pending consumers stitched (%d hop stitches): the set does not tell", stitched, len(numbered), len(hops))
	}
	if a.Stitched(-1) || a.Stitched(len(numbered)) {
		t.Fatal("a number out of range is reported stitched")
	}
}

// TestBuildWorkersUneven: a large trace first makes its builder's run slow,
// so the others take parts of it (split.Balanced); the graph is still the
// one a single builder gives.
func TestBuildWorkersUneven(t *testing.T) {
	ts := append([]trace.Trace{synth.SingleTrace(30000, 5)}, synth.Generate(synth.Config{Traces: 6000, SpansPerTrace: 10, Services: 6, Topics: 3, BrokenShare: 0.2, Seed: 8})...)
	procs := runtime.GOMAXPROCS(1)
	want := summary(graph.BuildWorkers(ts, 1))
	runtime.GOMAXPROCS(max(4, procs))
	defer runtime.GOMAXPROCS(procs)
	for _, w := range []int{2, 4} {
		if got := summary(graph.BuildWorkers(ts, w)); got != want {
			t.Fatalf("%d workers differ from one", w)
		}
	}
}

// TestManyEdgesCounted: a set of nearly a thousand edges (the builder's
// edge table grows on the way) counts each call edge's spans as a plain
// count over the spans does, built by one builder and by several merged.
func TestManyEdgesCounted(t *testing.T) {
	ts := synth.Generate(synth.Standard(20000))
	type pair struct{ from, to string }
	want := map[pair]int{}
	for _, tr := range ts {
		at := map[trace.SpanID]*trace.Span{}
		for i := range tr.Spans {
			at[tr.Spans[i].SpanID] = &tr.Spans[i]
		}
		for i := range tr.Spans {
			s := &tr.Spans[i]
			pid, ok := s.Parent()
			if _, msg := s.Messaging(); !ok || msg {
				continue
			}
			if p := at[pid]; p != nil && p.Service() != s.Service() {
				want[pair{p.Service(), s.Service()}]++
			}
		}
	}
	for _, workers := range []int{1, 3} {
		g := graph.BuildWorkers(ts, workers)
		if len(g.Edges) < 600 {
			t.Fatalf("%d edges: the set should have more than 512 (the table starts with 1024 slots, half full at most)", len(g.Edges))
		}
		got := map[pair]int{}
		for _, e := range g.Edges {
			if e.Kind == graph.EdgeCall && e.Relation == graph.RelParent {
				got[pair{e.From.Name, e.To.Name}] = e.Count
			}
		}
		if !maps.Equal(got, want) {
			t.Fatalf("%d builders: %d call edges counted %v, want %d: %v", workers, len(got), got, len(want), want)
		}
	}
}
