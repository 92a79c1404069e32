package jaeger

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"

	"github.com/ktrace-dev/ktrace/trace"
)

// Query selects traces. Start and End are required.
type Query struct {
	// Services to search; empty means every service Services returns.
	Services []string
	// Operation, Tags: optional FindTraces filters.
	Operation string
	Tags      map[string]string
	// Start and End bound the traces' start times.
	Start, End time.Time
	// PageSize is FindTraces' search depth per call; a call that returns this
	// many traces is taken as cut short and its window is split. Zero means 500.
	PageSize int
	// Limit stops after this many distinct traces; zero means no limit.
	Limit int
	// Concurrency bounds calls in flight. Zero means 4.
	Concurrency int
	// MinWindow is the narrowest window Find splits to. Zero means 1ms.
	MinWindow time.Duration
	// Discard reads and decodes every span but keeps none: a bare drain of
	// the same windows, for benchmarks. Stats then count traces per window
	// (a trace found from two services counts twice) and spans.
	Discard bool
}

// Stats describes a Find.
type Stats struct {
	Traces, Spans int
	// Calls is the number of FindTraces calls made.
	Calls int
	// Truncated counts windows that still came back full at MinWindow: the
	// result may lack traces from them.
	Truncated int
	// LimitReached is set when Limit stopped the search early.
	LimitReached bool
}

type window struct {
	service    string
	start, end time.Time
}

// Find fetches every trace that matches q into set, calling progress (if
// not nil) after each call with the running totals; progress calls are
// serialised. It returns the final totals.
func (c *Client) Find(ctx context.Context, q Query, set *trace.Set, progress func(Stats)) (Stats, error) {
	if q.Start.IsZero() || q.End.IsZero() || !q.End.After(q.Start) {
		return Stats{}, fmt.Errorf("invalid time window %s .. %s", q.Start.Format(time.RFC3339), q.End.Format(time.RFC3339))
	}
	if q.PageSize <= 0 {
		q.PageSize = 500
	}
	if q.Concurrency <= 0 {
		q.Concurrency = 4
	}
	if q.MinWindow <= 0 {
		q.MinWindow = time.Millisecond
	}
	services := q.Services
	if len(services) == 0 {
		var err error
		if services, err = c.Services(ctx); err != nil {
			return Stats{}, err
		}
		if len(services) == 0 {
			return Stats{}, nil // Jaeger holds no traces at all
		}
	}

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		st    Stats
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, q.Concurrency)
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil && !st.LimitReached { // after the limit, cancelled calls are expected
			first = err
		}
		mu.Unlock()
		cancel()
	}
	var run func(w window)
	run = func(w window) {
		defer wg.Done()
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		got, nspans, err := c.findWindow(ctx, q, w)
		<-sem
		if err != nil {
			fail(err)
			return
		}
		full := len(got) >= q.PageSize
		mid := w.start.Add(w.end.Sub(w.start) / 2)
		split := full && w.end.Sub(w.start) > q.MinWindow && mid.After(w.start)
		mu.Lock()
		st.Calls++
		if split {
			mu.Unlock()
			wg.Add(2)
			go run(window{w.service, w.start, mid})
			go run(window{w.service, mid, w.end})
			return
		}
		if full {
			st.Truncated++
		}
		if q.Discard {
			st.Traces += len(got)
			st.Spans += nspans
			mu.Unlock()
			return
		}
		for id, spans := range got {
			if q.Limit > 0 && set.Len() >= q.Limit {
				st.LimitReached = true
				break
			}
			t := trace.Trace{ID: id, Spans: spans}
			err := trace.Validate(&t)
			if err == nil {
				err = set.Add(t)
			}
			if err != nil {
				mu.Unlock()
				fail(fmt.Errorf("jaeger at %s: %w", c.cfg.Addr, err))
				return
			}
		}
		st.Traces, st.Spans = set.Len(), set.SpanCount()
		if progress != nil {
			progress(st)
		}
		limit := st.LimitReached
		mu.Unlock()
		if limit {
			cancel()
		}
	}
	for _, s := range services {
		wg.Add(1)
		go run(window{s, q.Start, q.End})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if first != nil {
		return st, first
	}
	if err := parent.Err(); err != nil { // interrupted: never return a silently partial result
		return st, &BackendError{Addr: c.cfg.Addr, Cause: "interrupted", Err: err}
	}
	return st, nil
}

// findWindow makes one FindTraces call and groups the spans by trace.
func (c *Client) findWindow(ctx context.Context, q Query, w window) (map[trace.TraceID][]trace.Span, int, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	stream, err := c.api.FindTraces(ctx, &api_v2.FindTracesRequest{Query: &api_v2.TraceQueryParameters{
		ServiceName:   w.service,
		OperationName: q.Operation,
		Tags:          q.Tags,
		StartTimeMin:  w.start,
		StartTimeMax:  w.end,
		SearchDepth:   int32(q.PageSize),
	}})
	if err != nil {
		return nil, 0, c.wrap(err)
	}
	got := map[trace.TraceID][]trace.Span{}
	if q.Discard {
		n := 0
		for {
			chunk, err := stream.Recv()
			if err == io.EOF {
				return got, n, nil
			}
			if err != nil {
				return nil, 0, c.wrap(err)
			}
			for i := range chunk.Spans {
				got[fromModelID(chunk.Spans[i].TraceID)] = nil
			}
			n += len(chunk.Spans)
		}
	}
	var res trace.Resources
	if err := c.drain(stream, &res, got); err != nil {
		return nil, 0, err
	}
	return got, 0, nil
}
