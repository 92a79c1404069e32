package graph_test

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

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

// A stream processor whose output produce span starts a new trace is
// stitched to the input it consumed with the same key; one whose input is
// not in the data (no record with that key) is an unverified pass-through,
// not an origin; a service that consumes nothing is an origin.
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
		"service:join -> topic:b produce/stitched x1 err0",
		"service:join -> topic:b produce/unverified x1 err0",
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

// TestTopicPartitions: partitions seen repeatedly come out once each,
// sorted.
func TestTopicPartitions(t *testing.T) {
	var ts []trace.Trace
	for i, p := range []string{"3", "70", "3", "0", "63", "70", "64", "0", "1000"} {
		id := trace.TraceID{Low: uint64(i + 1)}
		ts = append(ts, trace.Trace{ID: id, Spans: []trace.Span{sp(id, 1, 0, "writer", trace.KindProducer,
			"messaging.system", "kafka", "messaging.destination.name", "t", "messaging.kafka.destination.partition", p)}})
	}
	got := graph.Build(ts).Node("topic:t").Partitions
	if want := []int32{0, 3, 63, 64, 70, 1000}; !slices.Equal(got, want) {
		t.Errorf("partitions %v, want %v", got, want)
	}
}

// TestLatestProducerWins: a record written several times is stitched to
// the producer that started last, wherever it is in the input; a
// consumer's first link wins over a later one.
func TestLatestProducerWins(t *testing.T) {
	rec := []string{"messaging.system", "kafka", "messaging.destination.name", "t",
		"messaging.kafka.destination.partition", "0", "messaging.kafka.offset", "7"}
	var ts []trace.Trace
	const n = 9
	for i := 1; i <= n; i++ {
		id := trace.TraceID{Low: uint64(i)}
		s := sp(id, trace.SpanID(i), 0, fmt.Sprintf("w%d", i%3), trace.KindProducer, rec...)
		if i == 4 {
			s.Start = s.Start.Add(time.Hour) // the latest, in the middle of the input
		}
		ts = append(ts, trace.Trace{ID: id, Spans: []trace.Span{s}})
	}
	cid := trace.TraceID{Low: n + 1}
	stitched := sp(cid, n+1, 0, "reader", trace.KindConsumer, rec...)
	stitched.Start = stitched.Start.Add(2 * time.Hour)
	lid := trace.TraceID{Low: n + 2}
	linked := sp(lid, n+2, 0, "linker", trace.KindConsumer, "messaging.system", "kafka", "messaging.destination.name", "t")
	linked.Refs = []trace.Ref{
		{Type: trace.RefLink, TraceID: trace.TraceID{Low: n - 1}, SpanID: n - 1}, // first link: a late producer
		{Type: trace.RefLink, TraceID: trace.TraceID{Low: 2}, SpanID: 2},         // second link: an early one
	}
	ts = append(ts, trace.Trace{ID: cid, Spans: []trace.Span{stitched}}, trace.Trace{ID: lid, Spans: []trace.Span{linked}})
	for _, order := range []string{"as written", "reversed"} {
		if order == "reversed" {
			slices.Reverse(ts)
		}
		g := graph.Build(ts)
		var hop *graph.Stitch
		for i := range g.Stitches {
			if g.Stitches[i].Consumer.SpanID == n+1 {
				hop = &g.Stitches[i]
			}
		}
		if hop == nil || hop.Producer.SpanID != 4 {
			t.Fatalf("%s: record stitched to %+v, want the latest producer (span 4)", order, hop)
		}
		var link *graph.Edge
		for _, e := range g.EdgesFrom("topic:t") {
			if e.To.Key == "service:linker" {
				link = e
			}
		}
		// The lag tells which link was taken.
		wantLag := time.Duration(n+2-(n-1)) * time.Microsecond
		if link == nil || link.Relation != graph.RelLink || link.P50 != wantLag {
			t.Fatalf("%s: linker edge %+v, want a link edge with lag %s (the first link's producer)", order, link, wantLag)
		}
	}
}

// TestUnverifiedConsumer: a consumer no producer pairs with is unverified
// when it links to a trace that is not in the data, or names a parent that
// is not in its trace; with no such reference it is counted from the span
// alone.
func TestUnverifiedConsumer(t *testing.T) {
	absent := trace.TraceID{Low: 99}
	var ts []trace.Trace
	for i, refs := range [][]trace.Ref{
		{{Type: trace.RefLink, TraceID: absent, SpanID: 5}},                   // a link out of the data
		{{Type: trace.RefParent, TraceID: trace.TraceID{Low: 2}, SpanID: 77}}, // a parent not in the trace
		nil, // nothing to check against
		{{Type: trace.RefLink, TraceID: trace.TraceID{Low: 1}, SpanID: 1}}, // a link into the data, not to a producer
	} {
		id := trace.TraceID{Low: uint64(i + 1)}
		s := sp(id, trace.SpanID(i+1), 0, fmt.Sprintf("c%d", i), trace.KindConsumer, "messaging.destination.name", "t")
		for _, r := range refs {
			r.TraceID = cmp.Or(r.TraceID, id)
			s.Refs = append(s.Refs, r)
		}
		ts = append(ts, trace.Trace{ID: id, Spans: []trace.Span{s}})
	}
	check(t, graph.Build(ts),
		"topic:t -> service:c0 consume/unverified x1 err0",
		"topic:t -> service:c1 consume/unverified x1 err0",
		"topic:t -> service:c2 consume/span x1 err0",
		"topic:t -> service:c3 consume/span x1 err0",
	)
}
