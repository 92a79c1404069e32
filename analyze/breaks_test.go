package analyze_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/trace"
)

type spec struct {
	id, parent trace.SpanID
	svc        string
	kind       trace.Kind
	ms         int
	attrs      []string
	links      []trace.Ref
}

func mk(tid trace.TraceID, specs ...spec) trace.Trace {
	t := trace.Trace{ID: tid}
	for _, s := range specs {
		sp := trace.Span{TraceID: tid, SpanID: s.id, Kind: s.kind, Operation: "op", Start: time.UnixMilli(int64(s.ms)),
			Resource: &trace.Resource{Service: s.svc}}
		if s.parent != 0 {
			sp.Refs = append(sp.Refs, trace.Ref{Type: trace.RefParent, TraceID: tid, SpanID: s.parent})
		}
		sp.Refs = append(sp.Refs, s.links...)
		for i := 0; i < len(s.attrs); i += 2 {
			sp.Attributes = append(sp.Attributes, trace.Attribute{Key: s.attrs[i], Value: s.attrs[i+1]})
		}
		t.Spans = append(t.Spans, sp)
	}
	return t
}

func topic(name string, kv ...string) []string {
	return append([]string{"messaging.system", "kafka", "messaging.destination.name", name}, kv...)
}

// run finds the breaks with the reference, Breaks, and panics if the
// engine the commands use disagrees: every rule test holds both.
func run(traces ...trace.Trace) analyze.Report {
	want := analyze.Breaks(traces, graph.Build(traces), analyze.Options{SkewTolerance: time.Millisecond})
	_, got, err := engine.Run(context.Background(), engine.Slice(traces), engine.Options{SkewTolerance: time.Millisecond})
	if err != nil || !reflect.DeepEqual(got, want) {
		panic(fmt.Sprintf("the engine and Breaks disagree (%v):\n engine %+v\n ref    %+v", err, got.Findings, want.Findings))
	}
	return want
}

func only(t *testing.T, r analyze.Report, rule analyze.Rule, where string, traces int) analyze.Finding {
	t.Helper()
	if len(r.Findings) != 1 {
		t.Fatalf("want one finding, got %+v", r.Findings)
	}
	f := r.Findings[0]
	if f.Rule != rule || !strings.Contains(f.Where, where) || f.Traces != traces || len(f.Examples) == 0 {
		t.Fatalf("finding %+v, want %s %q in %d traces", f, rule, where, traces)
	}
	return f
}

func none(t *testing.T, r analyze.Report) {
	t.Helper()
	if len(r.Findings) != 0 {
		t.Fatalf("want no findings, got %+v", r.Findings)
	}
}

var (
	t1 = trace.TraceID{Low: 1}
	t2 = trace.TraceID{Low: 2}
	t3 = trace.TraceID{Low: 3}
)

func TestOrphan(t *testing.T) {
	r := run(mk(t1, spec{id: 1, svc: "a", kind: trace.KindServer}, spec{id: 2, parent: 99, svc: "b", kind: trace.KindServer, ms: 1}))
	// Span 2's parent is missing: an orphan (and so the trace has one root only).
	only(t, r, analyze.RuleOrphan, "b: parent span not in the trace", 1)
}

func TestMultipleRoots(t *testing.T) {
	r := run(mk(t1, spec{id: 1, svc: "a", kind: trace.KindInternal}, spec{id: 2, svc: "b", kind: trace.KindInternal}))
	only(t, r, analyze.RuleMultipleRoots, "roots in a, b", 1)
}

func TestMidGraphRootServer(t *testing.T) {
	r := run(
		mk(t1, spec{id: 1, svc: "web", kind: trace.KindClient}, spec{id: 2, parent: 1, svc: "api", kind: trace.KindServer, ms: 1}),
		mk(t2, spec{id: 3, svc: "api", kind: trace.KindServer}), // api called by web elsewhere, yet a root here
	)
	only(t, r, analyze.RuleMidGraphRoot, "api: server span", 1)
	// A service nobody instrumented calls is an entry point, not a break.
	none(t, run(mk(t1, spec{id: 1, svc: "api", kind: trace.KindServer})))
}

func TestMidGraphRootConsumer(t *testing.T) {
	r := run(
		mk(t1, spec{id: 1, svc: "p", kind: trace.KindProducer, attrs: topic("orders")}),
		// No partition/offset to stitch with, no link: a root in mid-graph.
		mk(t2, spec{id: 2, svc: "c", kind: trace.KindConsumer, ms: 5, attrs: topic("orders")}),
	)
	only(t, r, analyze.RuleMidGraphRoot, "orders → c", 1)
}

func TestLostHop(t *testing.T) {
	rec := []string{"messaging.destination.partition.id", "0", "messaging.kafka.offset", "7"}
	r := run(
		mk(t1, spec{id: 1, svc: "p", kind: trace.KindProducer, attrs: topic("orders", rec...)}),
		mk(t2, spec{id: 2, svc: "c", kind: trace.KindConsumer, ms: 5, attrs: topic("orders", append(rec, "messaging.consumer.group.name", "g")...)}),
	)
	f := only(t, r, analyze.RuleLostHop, "p → orders → c", 1)
	if f.Group != "g" || f.Examples[0] != t2 || f.From[0] != "p" {
		t.Errorf("finding %+v", f)
	}
}

func TestLostInsideProcessor(t *testing.T) {
	r := run(
		mk(t1, spec{id: 1, svc: "src", kind: trace.KindProducer, attrs: topic("in")},
			spec{id: 2, parent: 1, svc: "join", kind: trace.KindConsumer, ms: 1, attrs: topic("in")}),
		mk(t2, spec{id: 3, svc: "join", kind: trace.KindProducer, ms: 2, attrs: topic("out")}),
		mk(t3, spec{id: 4, svc: "join", kind: trace.KindProducer, ms: 3, attrs: topic("out")}),
	)
	f := only(t, r, analyze.RuleLostInside, "join: in → out", 2)
	if f.Occurrences != 2 || f.From[0] != "in" || f.Topic != "out" {
		t.Errorf("finding %+v", f)
	}
}

// A processor whose output continues its input (parent) or links to it is fine.
func TestContinuousProcessorIsNotABreak(t *testing.T) {
	none(t, run(
		mk(t1, spec{id: 1, svc: "src", kind: trace.KindProducer, attrs: topic("in")},
			spec{id: 2, parent: 1, svc: "join", kind: trace.KindConsumer, ms: 1, attrs: topic("in")},
			spec{id: 3, parent: 2, svc: "join", kind: trace.KindInternal, ms: 2},
			spec{id: 4, parent: 3, svc: "join", kind: trace.KindProducer, ms: 3, attrs: topic("out")}),
	))
	none(t, run(
		mk(t1, spec{id: 1, svc: "src", kind: trace.KindProducer, attrs: topic("in")},
			spec{id: 2, parent: 1, svc: "join", kind: trace.KindConsumer, ms: 1, attrs: topic("in")}),
		mk(t2, spec{id: 3, svc: "join", kind: trace.KindProducer, ms: 2, attrs: topic("out"),
			links: []trace.Ref{{Type: trace.RefLink, TraceID: t1, SpanID: 2}}}),
	))
	// A processor that also produces on behalf of HTTP requests is not flagged for those.
	none(t, run(
		mk(t1, spec{id: 1, svc: "src", kind: trace.KindProducer, attrs: topic("in")},
			spec{id: 2, parent: 1, svc: "svc", kind: trace.KindConsumer, ms: 1, attrs: topic("in")}),
		mk(t2, spec{id: 3, svc: "svc", kind: trace.KindServer, ms: 2},
			spec{id: 4, parent: 3, svc: "svc", kind: trace.KindProducer, ms: 3, attrs: topic("audit")}),
	))
}

// A consumer that links to its producer (in another trace or the same) is a
// healthy hop, not a break.
func TestLinkedHopsAreNotBreaks(t *testing.T) {
	none(t, run(
		mk(t1, spec{id: 1, svc: "p", kind: trace.KindProducer, attrs: topic("orders")}),
		mk(t2, spec{id: 2, svc: "c", kind: trace.KindConsumer, ms: 5, attrs: topic("orders"),
			links: []trace.Ref{{Type: trace.RefLink, TraceID: t1, SpanID: 1}}}),
	))
	// Same-trace async FOLLOWS_FROM: the consumer is its own root in the trace but links to the producer.
	none(t, run(
		mk(t1, spec{id: 1, svc: "p", kind: trace.KindProducer, attrs: topic("orders")},
			spec{id: 2, parent: 1, svc: "p", kind: trace.KindInternal, ms: 1},
			spec{id: 3, parent: 2, svc: "c", kind: trace.KindConsumer, ms: 5, attrs: topic("orders"),
				links: []trace.Ref{{Type: trace.RefLink, TraceID: t1, SpanID: 1}}}),
	))
}

// Sampling: a producer whose consumer is absent, or a consumer whose producer
// is absent and unknown to the graph, is not a break.
func TestSampledOutIsNotABreak(t *testing.T) {
	none(t, run(mk(t1, spec{id: 1, svc: "p", kind: trace.KindProducer, attrs: topic("orders", "messaging.kafka.offset", "1", "messaging.destination.partition.id", "0")})))
	none(t, run(mk(t1, spec{id: 2, svc: "c", kind: trace.KindConsumer, attrs: topic("orders", "messaging.kafka.offset", "1", "messaging.destination.partition.id", "0")})))
}

func TestClockSkew(t *testing.T) {
	r := run(mk(t1, spec{id: 1, svc: "a", kind: trace.KindClient, ms: 100}, spec{id: 2, parent: 1, svc: "b", kind: trace.KindServer, ms: 50}))
	f := only(t, r, analyze.RuleClockSkew, "a → b: starts before its parent", 1)
	if f.MaxSkew != 50*time.Millisecond {
		t.Errorf("skew %v", f.MaxSkew)
	}
	// Within tolerance: nothing.
	none(t, run(mk(t1, spec{id: 1, svc: "a", kind: trace.KindClient, ms: 100}, spec{id: 2, parent: 1, svc: "b", kind: trace.KindServer, ms: 100})))
	// A stitched consumer that starts before its producer.
	rec := []string{"messaging.destination.partition.id", "0", "messaging.kafka.offset", "7"}
	r = run(
		mk(t1, spec{id: 1, svc: "p", kind: trace.KindProducer, ms: 100, attrs: topic("orders", rec...)}),
		mk(t2, spec{id: 2, svc: "c", kind: trace.KindConsumer, ms: 20, attrs: topic("orders", rec...)}),
	)
	var rules []string
	for _, f := range r.Findings {
		rules = append(rules, string(f.Rule))
	}
	if strings.Join(rules, ",") != "lost-hop,clock-skew" {
		t.Errorf("findings %v", rules)
	}
}

func TestIncompleteTracesAreNotBroken(t *testing.T) {
	tr := mk(t1, spec{id: 1, svc: "a", kind: trace.KindInternal}, spec{id: 2, svc: "b", kind: trace.KindInternal})
	r := analyze.Breaks([]trace.Trace{tr}, graph.Build([]trace.Trace{tr}), analyze.Options{Incomplete: map[trace.TraceID]bool{t1: true}})
	if len(r.Findings) != 0 || len(r.Incomplete) != 1 || r.Traces != 0 {
		t.Errorf("report %+v", r)
	}
}

func TestRecordedStackRuns(t *testing.T) {
	lost := load(t, "stargazers-lost")
	r := analyze.Breaks(lost, graph.Build(lost), analyze.Options{SkewTolerance: 10 * time.Millisecond})
	f := only(t, r, analyze.RuleLostInside, "stargazers-join: github-avro-stargazers-jackdaw, github-avro-stargazers-kafka → stargazers-results", 24)
	if f.Occurrences != 24 || f.Service != "stargazers-join" {
		t.Errorf("finding %+v", f)
	}
	links := load(t, "stargazers-links")
	none(t, analyze.Breaks(links, graph.Build(links), analyze.Options{SkewTolerance: 10 * time.Millisecond}))
}

// brokenSet is a synthetic set with every kind of break: lost hops,
// orphans (dropped spans), skew (shifted spans), multiple roots and
// processors that lose their input, some with links that explain it (to a
// consumer span) and some with links that do not (to a producer span).
func brokenSet() []trace.Trace {
	ts := synth.Generate(synth.Config{Traces: 6000, SpansPerTrace: 12, Services: 8, Topics: 4, BrokenShare: 0.2, Seed: 3})
	find := func(tr *trace.Trace, k trace.Kind) *trace.Span {
		for j := range tr.Spans {
			if s := &tr.Spans[j]; s.Kind == k && len(s.Refs) > 0 {
				return s
			}
		}
		return nil
	}
	for i := range ts {
		switch i % 7 {
		case 1: // drop a span from the middle: its children become orphans
			if n := len(ts[i].Spans); n > 3 {
				ts[i].Spans = append(ts[i].Spans[:n/2:n/2], ts[i].Spans[n/2+1:]...)
			}
		case 2: // a called service that starts long before its caller
			if s := find(&ts[i], trace.KindServer); s != nil {
				s.Start = s.Start.Add(-time.Duration(i%5+1) * time.Second)
			}
		case 3: // a span that lost its parent reference: a second root
			if n := len(ts[i].Spans); n > 3 {
				ts[i].Spans[n/2].Refs = nil
			}
		case 4, 5: // a produce span that lost its parent but links to the
			// previous trace's consumer span (4: continues its input) or
			// producer span (5: does not)
			p := find(&ts[i], trace.KindProducer)
			target := find(&ts[i-1], trace.KindConsumer)
			if i%7 == 5 {
				target = find(&ts[i-1], trace.KindProducer)
			}
			if p != nil && target != nil {
				p.Refs = []trace.Ref{{Type: trace.RefLink, TraceID: target.TraceID, SpanID: target.SpanID}}
			}
		}
	}
	return ts
}

// TestBrokenSet: on a synthetic set with every kind of break, Breaks
// finds every rule, lost-inside among them (links that explain a produce
// span and links that do not).
func TestBrokenSet(t *testing.T) {
	ts := brokenSet()
	rep := analyze.Breaks(ts, graph.Build(ts), analyze.Options{SkewTolerance: time.Millisecond})
	rules := map[analyze.Rule]bool{}
	for _, f := range rep.Findings {
		rules[f.Rule] = true
	}
	if len(rules) != 6 {
		t.Fatalf("rules found: %v, want all six", rules)
	}
}

// A consumer that links to a producer whose trace is not in the data
// (sampled out) is not a break and not continued: it is unverifiable, and
// so is a processor's output whose only link points out of the data. A
// link into the data to something that is not a consumer is still lost.
func TestUnverifiable(t *testing.T) {
	absent := trace.TraceID{Low: 99}
	out := []trace.Ref{{Type: trace.RefLink, TraceID: absent, SpanID: 1}}
	r := run(
		mk(t1, spec{id: 1, svc: "c", kind: trace.KindConsumer, attrs: topic("orders", "messaging.consumer.group.name", "g"), links: out}),
		mk(t2, spec{id: 2, svc: "p", kind: trace.KindProducer, attrs: topic("orders")}), // the topic has producers
	)
	none(t, r)
	if len(r.Unverifiable) != 1 || r.Unverifiable[0].Rule != analyze.RuleUnverifiedHop || r.Unverifiable[0].Where != "orders → c: linked trace not in the data" ||
		r.Unverifiable[0].Group != "g" || r.Unverifiable[0].Traces != 1 {
		t.Fatalf("unverifiable %+v", r.Unverifiable)
	}
	// A processor: consumes orders, then writes totals from a new trace
	// that links out of the data (unverifiable) or to its own producer
	// span (lost).
	consume := mk(t1, spec{id: 1, svc: "p0", kind: trace.KindProducer, attrs: topic("orders")},
		spec{id: 2, parent: 1, svc: "agg", kind: trace.KindConsumer, ms: 1, attrs: topic("orders")})
	r = run(consume, mk(t2, spec{id: 3, svc: "agg", kind: trace.KindProducer, ms: 2, attrs: topic("totals"), links: out}))
	none(t, r)
	if len(r.Unverifiable) != 1 || r.Unverifiable[0].Rule != analyze.RuleUnverifiedOutput || r.Unverifiable[0].Where != "agg: orders → totals: linked trace not in the data" {
		t.Fatalf("unverifiable %+v", r.Unverifiable)
	}
	r = run(consume, mk(t2, spec{id: 3, svc: "agg", kind: trace.KindProducer, ms: 2, attrs: topic("totals"),
		links: []trace.Ref{{Type: trace.RefLink, TraceID: t1, SpanID: 1}}}))
	only(t, r, analyze.RuleLostInside, "agg: orders → totals", 1)
	if len(r.Unverifiable) != 0 {
		t.Fatalf("unverifiable %+v", r.Unverifiable)
	}
}

// TestSampledSets: on synthetic sets whose consumers link to their
// producers and whose traces are kept at a ratio, as head sampling keeps
// them, nothing is a break, and what lost its other end is unverifiable;
// the engine agrees (run). Without links, the lost hops are still found.
func TestSampledSets(t *testing.T) {
	for _, ratio := range []float64{0.3, 0.6} {
		linked := synth.Generate(synth.Config{Traces: 400, BrokenShare: 0.5, LinkShare: 1, MessagingOnly: true, SampleRatio: ratio, Seed: 6})
		r := run(linked...)
		none(t, r)
		if len(r.Unverifiable) == 0 {
			t.Fatalf("ratio %.1f: nothing unverifiable", ratio)
		}
		g := graph.Build(linked)
		all := analyze.CheckAll(g, 0.99, 1)
		if all.Verdict == analyze.Fail || all.Unverifiable == 0 {
			t.Fatalf("ratio %.1f: spec-less check %s (%s), %d unverifiable", ratio, all.Verdict, all.Reason, all.Unverifiable)
		}
		lost := synth.Generate(synth.Config{Traces: 400, BrokenShare: 0.5, MessagingOnly: true, SampleRatio: ratio, Seed: 6})
		if r := run(lost...); len(r.Findings) == 0 {
			t.Fatalf("ratio %.1f, broken hops without links: no finding", ratio)
		}
	}
}
