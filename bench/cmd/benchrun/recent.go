package main

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/source/jaeger"
	"github.com/ktrace-dev/ktrace/trace"
)

// recentWindow returns the window that holds the newest traces of ts, as
// many as fit in limit: every trace with a span starting in [start, end] is
// one of them. Badger's GetDependencies reads at most 100 traces, so over
// such a window it reads all the data, and ktrace and Jaeger answer from the
// same traces.
func recentWindow(ts []trace.Trace, limit int) (start, end time.Time, traces int) {
	type at struct {
		start time.Time
		trace int
	}
	var all []at
	for i := range ts {
		for j := range ts[i].Spans {
			all = append(all, at{ts[i].Spans[j].Start, i})
		}
	}
	slices.SortFunc(all, func(a, b at) int { return b.start.Compare(a.start) })
	end = all[0].start.Add(time.Second)
	start = all[len(all)-1].start
	in := map[int]bool{}
	for _, a := range all {
		if !in[a.trace] && len(in) == limit {
			// a starts a trace too many: the window begins after it
			// (Badger keeps microseconds).
			start = a.start.Truncate(time.Microsecond).Add(time.Microsecond)
			break
		}
		in[a.trace] = true
	}
	clear(in)
	for _, a := range all {
		if !a.start.Truncate(time.Microsecond).Before(start) {
			in[a.trace] = true
		}
	}
	return start, end, len(in)
}

// recentRuns compares Badger's GetDependencies with ktrace's graph over the
// window of the newest traces (at most 100, which GetDependencies reads in
// full), on a store that holds the whole set: what a user asking for the
// last minutes' graph of a store with a long history sees.
func recentRuns(ctx context.Context, c *jaeger.Client, ts []trace.Trace) {
	start, end, want := recentWindow(ts, 100)
	var deps []jaeger.Dependency
	dd := best(func() {
		var err error
		deps, err = c.Dependencies(ctx, start, end)
		check(err)
	})
	jaegerPairs := uint64(0)
	for _, d := range deps {
		jaegerPairs += d.CallCount
	}
	q := jaeger.Query{Start: start, End: end, PageSize: 1000, Concurrency: 4}
	dAll, gAll, stAll, _ := jaegerGraph(ctx, c, q)
	q.ByService = true
	dPer, gPer, stPer, pairs := jaegerGraph(ctx, c, q)
	same := "the same traces"
	if gPer.Traces != want || gAll.Traces != want || uint64(pairs) != jaegerPairs {
		same = fmt.Sprintf("NOT the same traces: ktrace %d/%d traces (window holds %d), %d cross-service pairs against Jaeger's %d",
			gAll.Traces, gPer.Traces, want, pairs, jaegerPairs)
	}
	record("Jaeger GetDependencies (badger), newest traces", dd.Round(time.Millisecond).String(),
		fmt.Sprintf("window of the newest %d traces (%s) in a store of %d traces: GetDependencies reads them all; %d pairs counted", want,
			end.Sub(start).Round(time.Millisecond), len(ts), jaegerPairs))
	record("ktrace graph --jaeger (badger), newest traces, all services at once", dAll.Round(time.Millisecond).String(),
		fmt.Sprintf("%.2f× GetDependencies' time: %d calls, each a scan of the whole store, like GetDependencies' own", dAll.Seconds()/dd.Seconds(), stAll.Calls))
	record("ktrace graph --jaeger --by-service (badger), newest traces", dPer.Round(time.Millisecond).String(),
		fmt.Sprintf("%.2f× GetDependencies' time (target < 1): %d calls reading the window's index; %d traces, %d spans read, %s; %d edges (Jaeger: %d service pairs)",
			dPer.Seconds()/dd.Seconds(), stPer.Calls, gPer.Traces, stPer.Spans, same, len(gPer.Edges), len(deps)))
}

// jaegerGraph is ktrace's graph of what q finds in Jaeger, best of three:
// its time, the graph, the search's stats and the cross-service parent
// pairs in the traces read (what GetDependencies counts).
func jaegerGraph(ctx context.Context, c *jaeger.Client, q jaeger.Query) (time.Duration, *graph.Graph, jaeger.Stats, int) {
	var g *graph.Graph
	var st jaeger.Stats
	pairs := 0
	d := best(func() {
		pairs = 0
		var err error
		g, _, err = engine.Run(ctx, jaegerTraces(ctx, c, q, &st, func(t *trace.Trace) { pairs += parentPairs(t) }), engine.Options{})
		check(err)
	})
	return d, g, st, pairs
}

// errStopped ends a search whose reader stopped.
var errStopped = errors.New("stopped")

// jaegerTraces yields what c.FindEach finds for q, calling each (if not
// nil) with every trace and setting *st (if not nil) to the search's stats.
func jaegerTraces(ctx context.Context, c *jaeger.Client, q jaeger.Query, st *jaeger.Stats, each func(*trace.Trace)) iter.Seq2[*trace.Trace, error] {
	return func(yield func(*trace.Trace, error) bool) {
		s, err := c.FindEach(ctx, q, func(t *trace.Trace) error {
			if each != nil {
				each(t)
			}
			if !yield(t, nil) {
				return errStopped
			}
			return nil
		}, nil)
		if st != nil {
			*st = s
		}
		if err != nil && !errors.Is(err, errStopped) {
			yield(nil, err)
		}
	}
}

// parentPairs counts t's spans whose parent, in the trace, is of another
// service: what Jaeger's GetDependencies counts.
func parentPairs(t *trace.Trace) int {
	service := map[trace.SpanID]string{}
	for i := range t.Spans {
		service[t.Spans[i].SpanID] = t.Spans[i].Service()
	}
	n := 0
	for i := range t.Spans {
		if pid, ok := t.Spans[i].Parent(); ok {
			if svc, ok := service[pid]; ok && svc != t.Spans[i].Service() {
				n++
			}
		}
	}
	return n
}
