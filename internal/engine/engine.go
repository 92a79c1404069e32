package engine

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/source"
	"github.com/ktrace-dev/ktrace/trace"
)

// Options tune a run.
type Options struct {
	// SkewTolerance is analyze.Options' SkewTolerance.
	SkewTolerance time.Duration
	// Incomplete, when set, is asked of each trace as it is read: an
	// incomplete trace (still arriving) is added to the graph, left out of
	// the breaks and listed in the report, as analyze.Options' Incomplete
	// says.
	Incomplete func(*trace.Trace) bool
	// Workers is how many goroutines analyse the traces; zero or less
	// means one per CPU.
	Workers int
}

// Run reads traces and returns the graph graph.Build and the report
// analyze.Breaks give of them. The traces must pass trace.Validate and be
// distinct by ID; Run does not keep them, but a yielded trace must not
// change until Run returns. It stops at the first error traces yields, or
// when ctx ends, and returns that error with no result.
func Run(ctx context.Context, traces source.Traces, o Options) (*graph.Graph, analyze.Report, error) {
	p, err := Collect(ctx, traces, o)
	if err != nil {
		return nil, analyze.Report{}, err
	}
	g, rep := p.Finish()
	return g, rep, nil
}

// Partial is what the engine knows of one set of traces before it is
// finished: merged with the partials of other, disjoint sets — built in
// this process or another, and carried as bytes (MarshalBinary) — it
// finishes to what one run over the union gives. Consumers whose producer
// was not in their trace, the producers they could pair with, root
// producers and the spans links may point at travel in it, so a hop whose
// two ends were seen by different partials is still stitched. Latency
// samples travel whole up to graph.ExactSamples an edge, rounded past it,
// as graph.Percentiles rounds its percentiles.
type Partial struct {
	a *analyzer
}

// Collect reads traces, as Run does, into a partial.
func Collect(ctx context.Context, traces source.Traces, o Options) (*Partial, error) {
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	// Traces go to the workers in batches, each worker folding them into
	// an analyzer of its own; the analyzers are merged at the end. The
	// rules do not depend on the order of the traces, so any worker may
	// take any batch. When every worker is busy, the reading goroutine
	// folds the batch itself, into an analyzer of its own: a CPU is never
	// left to a goroutine that only waits.
	type item struct {
		t          *trace.Trace
		incomplete bool
	}
	var batches chan []item // nil on one worker: the reader folds every batch
	if workers > 1 {
		batches = make(chan []item, workers)
	}
	// Folded batches come back to be filled again.
	free := make(chan []item, 2*workers)
	recycle := func(b []item) {
		select {
		case free <- b[:0]:
		default:
		}
	}
	as := make([]*analyzer, workers)
	var wg sync.WaitGroup
	for w := range workers - 1 {
		as[w] = newAnalyzer(o.SkewTolerance)
		wg.Go(func() {
			for b := range batches {
				for _, it := range b {
					as[w].Add(it.t, it.incomplete)
				}
				recycle(b)
			}
		})
	}
	own := newAnalyzer(o.SkewTolerance)
	as[workers-1] = own
	send := func(b []item) {
		select {
		case batches <- b:
		default:
			for _, it := range b {
				own.Add(it.t, it.incomplete)
			}
			recycle(b)
		}
	}
	var err error
	var batch []item
	spans := 0
	const batchSpans = 8192
	for t, terr := range traces {
		if terr != nil {
			err = terr
			break
		}
		batch = append(batch, item{t, o.Incomplete != nil && o.Incomplete(t)})
		if spans += len(t.Spans); spans >= batchSpans || len(batch) == 256 {
			if err = ctx.Err(); err != nil {
				break
			}
			send(batch)
			spans = 0
			select {
			case batch = <-free:
			default:
				batch = nil
			}
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	if len(batch) > 0 && err == nil {
		send(batch)
	}
	if batches != nil {
		close(batches)
	}
	wg.Wait()
	if err != nil {
		return nil, err
	}
	for _, a := range as[:workers-1] {
		own.Merge(a)
	}
	return &Partial{a: own}, nil
}

// ErrMismatch is returned by Merge for partials made with different
// options.
var ErrMismatch = errors.New("partials made with different skew tolerances")

// Merge folds o, a partial of other traces, into p. o is spent afterwards.
func (p *Partial) Merge(o *Partial) error {
	if p.a.tol != o.a.tol {
		return ErrMismatch
	}
	p.a.Merge(o.a)
	o.a = nil
	return nil
}

// Finish returns the graph and the report. The partial is spent
// afterwards.
func (p *Partial) Finish() (*graph.Graph, analyze.Report) {
	g, rep := p.a.Finish()
	p.a = nil
	return g, rep
}

// Slice yields the traces of a slice, for Run.
func Slice(traces []trace.Trace) source.Traces {
	return func(yield func(*trace.Trace, error) bool) {
		for i := range traces {
			if !yield(&traces[i], nil) {
				return
			}
		}
	}
}
