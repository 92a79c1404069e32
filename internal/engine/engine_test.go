package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/trace"
)

// TestLatenciesOnManyCPUs: with more than 100,000 latency samples the
// engine gathers the walk's samples on a goroutine of its own while the
// pending consumers are stitched, and ranks them on every CPU; the graph,
// percentiles and all, is still the reference's.
func TestLatenciesOnManyCPUs(t *testing.T) {
	cfg := synth.Standard(200_000)
	cfg.LinkShare = 0.3
	ts := synth.Generate(cfg)
	procs := runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0)))
	defer runtime.GOMAXPROCS(procs)
	agree(t, ts, 0, nil, plan{workers: 1}, plan{workers: 2}, plan{workers: 2, parts: 2, encode: true})
}

// TestUnsharedAgree: the engine knows names it has seen by their address
// when the reader shares them (trace.Strings), and by their bytes
// otherwise, also past the number of addresses it remembers; the graph is
// the reference's either way.
func TestUnsharedAgree(t *testing.T) {
	ts := synth.Generate(synth.Config{Traces: 3000, SpansPerTrace: 12, Services: 8, Topics: 5, BrokenShare: 0.2, Seed: 9})
	synth.Unshare(ts)
	agree(t, ts, 0, nil, plan{workers: 1}, plan{workers: 2})
}

// TestManyEdgesAgree: a set of nearly a thousand edges, so the engine's
// edge table grows on the way.
func TestManyEdgesAgree(t *testing.T) {
	ts := synth.Generate(synth.Standard(20000))
	if n := len(graph.Build(ts).Edges); n < 600 {
		t.Fatalf("%d edges: the set should have more than 512 (the table starts with 1024 slots, half full at most)", n)
	}
	agree(t, ts, 0, nil, plan{workers: 1}, plan{workers: 3, parts: 2})
}

// TestJoinAcrossRuns: the producers are matched with the pending consumers
// by several goroutines, each over a run of them; a record written many
// times is still stitched to its latest producer, and a consumer's first
// link wins over a later one even when the later link's producer comes
// first.
func TestJoinAcrossRuns(t *testing.T) {
	procs := runtime.GOMAXPROCS(4)
	defer runtime.GOMAXPROCS(procs)
	rec := trace.Attributes{{Key: "messaging.system", Value: "kafka"}, {Key: "messaging.destination.name", Value: "t"},
		{Key: "messaging.kafka.destination.partition", Value: "0"}, {Key: "messaging.kafka.offset", Value: "7"}}
	span := func(i int, svc string, kind trace.Kind) trace.Span {
		return trace.Span{TraceID: trace.TraceID{Low: uint64(i)}, SpanID: trace.SpanID(i), Kind: kind, Attributes: rec,
			Resource: &trace.Resource{Service: svc}, Start: time.Unix(0, int64(i)*1000)}
	}
	var ts []trace.Trace
	const n = 9000 // several runs of producers
	for i := 1; i <= n; i++ {
		s := span(i, fmt.Sprintf("w%d", i%3), trace.KindProducer)
		if i == n/2 {
			s.Start = s.Start.Add(time.Hour)
		}
		ts = append(ts, trace.Trace{ID: s.TraceID, Spans: []trace.Span{s}})
	}
	stitched := span(n+1, "reader", trace.KindConsumer)
	stitched.Start = stitched.Start.Add(2 * time.Hour)
	linked := span(n+2, "linker", trace.KindConsumer)
	linked.Attributes = rec[:2]
	linked.Refs = []trace.Ref{
		{Type: trace.RefLink, TraceID: trace.TraceID{Low: n - 1}, SpanID: n - 1},
		{Type: trace.RefLink, TraceID: trace.TraceID{Low: 2}, SpanID: 2},
	}
	ts = append(ts, trace.Trace{ID: stitched.TraceID, Spans: []trace.Span{stitched}}, trace.Trace{ID: linked.TraceID, Spans: []trace.Span{linked}})
	agree(t, ts, 0, nil, plan{workers: 1}, plan{workers: 3}, plan{workers: 2, parts: 3, encode: true, order: 2})
}

// TestRunStops: an error from the traces, or a context that ends, stops
// the run with that error and no result.
func TestRunStops(t *testing.T) {
	ts := synth.Generate(synth.Standard(5000))
	bad := errors.New("disk on fire")
	failing := func(yield func(*trace.Trace, error) bool) {
		for i := range ts {
			if i == len(ts)/2 {
				yield(nil, bad)
				return
			}
			if !yield(&ts[i], nil) {
				return
			}
		}
	}
	if g, _, err := engine.Run(context.Background(), failing, engine.Options{}); !errors.Is(err, bad) || g != nil {
		t.Fatalf("failing source: graph %v, error %v; want none and %v", g, err, bad)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if g, _, err := engine.Run(ctx, engine.Slice(ts), engine.Options{}); !errors.Is(err, context.Canceled) || g != nil {
		t.Fatalf("ended context: graph %v, error %v", g, err)
	}
}

// TestPartialBytes: bytes that are not a partial, or a partial of a later
// format version, or one cut short or changed, are refused with an error,
// never a panic; partials of different skew tolerances do not merge.
func TestPartialBytes(t *testing.T) {
	ts := synth.Generate(synth.Config{Traces: 50, BrokenShare: 0.3, LinkShare: 0.3, Seed: 3})
	p, err := engine.Collect(context.Background(), engine.Slice(ts), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	later := append([]byte(nil), data...)
	later[len("ktrace-partial\n")]++
	for name, b := range map[string][]byte{"empty": nil, "other": []byte("hello"), "later version": later,
		"cut short": data[:len(data)/2], "header only": data[:len("ktrace-partial\n")+1]} {
		if err := new(engine.Partial).UnmarshalBinary(b); !errors.Is(err, engine.ErrPartial) {
			t.Errorf("%s: error %v, want ErrPartial", name, err)
		}
	}
	// Every byte changed in turn: an error or a partial, never a panic.
	for i := len("ktrace-partial\n") + 1; i < len(data); i += 7 {
		b := append([]byte(nil), data...)
		b[i] ^= 0xA5
		var q engine.Partial
		if q.UnmarshalBinary(b) == nil {
			q.Finish()
		}
	}
	o, err := engine.Collect(context.Background(), engine.Slice(nil), engine.Options{SkewTolerance: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Merge(o); !errors.Is(err, engine.ErrMismatch) {
		t.Fatalf("merging partials of different tolerances: %v", err)
	}
}

// BenchmarkRun1M builds the graph and finds the breaks of a synthetic
// 1,000,000-span set (KTRACE_BENCH_SPANS changes the size) and reports
// spans/s and bytes per span (allocated during the run, and still live
// afterwards).
func BenchmarkRun1M(b *testing.B) {
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
	var rep analyze.Report
	for i := 0; i < b.N; i++ {
		b.StopTimer() // a forced collection scans the whole input: not the run's cost
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		b.StartTimer()
		var err error
		if g, rep, err = engine.Run(context.Background(), engine.Slice(ts), engine.Options{}); err != nil {
			b.Fatal(err)
		}
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
	runtime.KeepAlive(rep)
	runtime.KeepAlive(ts)
}
