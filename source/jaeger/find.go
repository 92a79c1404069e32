package jaeger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ktrace-dev/ktrace/source"
	"github.com/ktrace-dev/ktrace/trace"
)

// Query selects traces. Start and End are required.
type Query struct {
	// Services to search; empty means every service. Every service is
	// asked for at once (an empty service name, which Jaeger's memory and
	// Badger stores take as "any") when no Operation or Tags are set, so
	// each trace comes back once; a backend that refuses that, or answers
	// it with nothing, is asked service by service (Services returns them),
	// and a trace then comes back once per service it touches.
	Services []string
	// ByService asks service by service even when every service is
	// searched. On a Badger store an all-services call scans every span
	// the store holds, whatever the window, while a call for one service
	// reads that service's index for the window only: for a window much
	// shorter than the store's history, asking each service is far
	// cheaper, though a trace comes back once per service it touches.
	ByService bool
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
	// PerService is set when services were asked for one at a time.
	PerService bool
}

type window struct {
	service    string
	start, end time.Time
}

// sink receives the traces a search reads; calls are serialised.
type sink interface {
	add(t trace.Trace) error
	len() (traces, spans int)
}

// setSink merges every copy of a trace into a set.
type setSink struct{ set *trace.Set }

func (s setSink) add(t trace.Trace) error  { return s.set.Add(t) }
func (s setSink) len() (traces, spans int) { return s.set.Len(), s.set.SpanCount() }

// eachSink hands each trace on once and keeps only its ID.
type eachSink struct {
	seen          map[trace.TraceID]struct{}
	traces, spans int
	each          func(*trace.Trace) error
}

func (s *eachSink) add(t trace.Trace) error {
	if _, ok := s.seen[t.ID]; ok {
		return nil // read again from another window or service: the same trace
	}
	s.seen[t.ID] = struct{}{}
	s.traces++
	s.spans += len(t.Spans)
	return s.each(&t)
}
func (s *eachSink) len() (traces, spans int) { return s.traces, s.spans }

// Find fetches every trace that matches q into set, calling progress (if
// not nil) after each call with the running totals; progress calls are
// serialised. It returns the final totals.
func (c *Client) Find(ctx context.Context, q Query, set *trace.Set, progress func(Stats)) (Stats, error) {
	return c.search(ctx, q, setSink{set}, progress)
}

// FindEach is Find that hands each trace to each as it arrives instead of
// keeping it: memory stays flat however many traces match. A trace is
// handed on the first time it is read (a trace read again, from another
// window or service, is dropped, where Find would merge the copies). Calls
// to each are serialised; an error from it stops the search.
func (c *Client) FindEach(ctx context.Context, q Query, each func(*trace.Trace) error, progress func(Stats)) (Stats, error) {
	return c.search(ctx, q, &eachSink{seen: map[trace.TraceID]struct{}{}, each: each}, progress)
}

func (c *Client) search(ctx context.Context, q Query, set sink, progress func(Stats)) (Stats, error) {
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
		if !q.ByService && q.Operation == "" && len(q.Tags) == 0 {
			st, err := c.find(ctx, q, []string{""}, set, progress)
			if err == nil && st.Traces > 0 {
				return st, nil
			}
			if err != nil && (st.Calls > 0 || !refused(err)) {
				return st, err // a failure, not a refusal of the empty name
			}
			// Refused, or nothing: ask service by service (nothing may be
			// the truth, or a backend that took "" as a name).
		}
		var err error
		if services, err = c.Services(ctx); err != nil {
			return Stats{}, err
		}
		if len(services) == 0 {
			return Stats{}, nil // Jaeger holds no traces at all
		}
	}
	st, err := c.find(ctx, q, services, set, progress)
	st.PerService = true
	return st, err
}

// refused reports whether err is a backend's refusal of a query without a
// service name (as opposed to a failure to reach it).
func refused(err error) bool {
	var be *BackendError
	if !errors.As(err, &be) {
		return false
	}
	switch status.Code(be.Err) {
	case codes.InvalidArgument, codes.Internal, codes.Unimplemented, codes.FailedPrecondition:
		return true
	}
	return false
}

// find searches the windows of each service (the empty name: every service).
func (c *Client) find(ctx context.Context, q Query, services []string, set sink, progress func(Stats)) (Stats, error) {

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		st    Stats
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, q.Concurrency)
		// A decoder per call in flight, kept from call to call, so that
		// the spans of every window share one copy of each name and of
		// each resource.
		decoders = make(chan *decoder, q.Concurrency)
	)
	for range q.Concurrency {
		decoders <- &decoder{}
	}
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
		d := <-decoders
		got, nspans, at, err := c.findWindow(ctx, q, w, d)
		decoders <- d
		<-sem
		if err != nil {
			fail(err)
			return
		}
		// A full window is cut (split) and its parts asked again.
		full := len(got) >= q.PageSize
		var parts []window
		if full {
			parts = split(w, at, q.MinWindow)
		}
		mu.Lock()
		st.Calls++
		if len(parts) > 1 {
			mu.Unlock()
			wg.Add(len(parts))
			for _, p := range parts {
				go run(p)
			}
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
			if n, _ := set.len(); q.Limit > 0 && n >= q.Limit {
				st.LimitReached = true
				break
			}
			t := trace.Trace{ID: id, Spans: spans}
			t.Pack()
			err := trace.Validate(&t)
			if err == nil {
				err = set.add(t)
			}
			if err != nil {
				mu.Unlock()
				fail(fmt.Errorf("jaeger at %s: %w", c.cfg.Addr, err))
				return
			}
		}
		st.Traces, st.Spans = set.len()
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

// findWindow makes one FindTraces call and groups the spans by trace. It
// also returns where in the window the traces it got are: the earliest and
// the latest of their start times (a trace's earliest span starting in the
// window), for splitting a full window.
func (c *Client) findWindow(ctx context.Context, q Query, w window, d *decoder) (map[trace.TraceID][]trace.Span, int, [2]time.Time, error) {
	var at [2]time.Time
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
		return nil, 0, at, c.wrap(err)
	}
	got := map[trace.TraceID][]trace.Span{}
	starts := map[trace.TraceID]time.Time{} // each trace's earliest start in the window
	note := func(id trace.TraceID, t time.Time) {
		if t.Before(w.start) || !t.Before(w.end) {
			return
		}
		if f, ok := starts[id]; !ok || t.Before(f) {
			starts[id] = t
		}
	}
	n := 0
	if q.Discard {
		for {
			chunk, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, 0, at, c.wrap(err)
			}
			for i := range chunk.Spans {
				id := fromModelID(chunk.Spans[i].TraceID)
				got[id] = nil
				note(id, chunk.Spans[i].StartTime)
			}
			n += len(chunk.Spans)
		}
	} else {
		if err := c.drain(stream, d, got, note); err != nil {
			return nil, 0, at, err
		}
	}
	first := true
	for _, t := range starts {
		if first || t.Before(at[0]) {
			at[0] = t
		}
		if first || t.After(at[1]) {
			at[1] = t
		}
		first = false
	}
	return got, n, at, nil
}

// split cuts a full window. Where the traces it returned sit in a stretch
// under a quarter of the window, the stretch is cut out, in two halves,
// with the rest of the window on either side as two more parts. A full
// page does not say where the other traces are, but with stores that
// return the newest or the oldest traces first they lie next to the
// stretch, the halves hold about half a page each (read once, not read
// whole and then halved), and an empty side costs a call that reads
// nothing. Halving the window instead spends a full call per halving step
// on the way down to traces that fill a small part of it. Otherwise the
// window is halved. It returns no parts when the window cannot be cut.
// (What a search costs is the traces it reads; TestFindReadsEachTraceFewTimes
// measures it.)
func split(w window, at [2]time.Time, minWindow time.Duration) []window {
	width := w.end.Sub(w.start)
	if width <= minWindow {
		return nil
	}
	if lo, hi := at[0], at[1].Add(1); !lo.IsZero() && hi.Sub(lo) <= width/4 {
		mid := lo.Add(hi.Sub(lo) / 2)
		var parts []window
		for _, p := range []window{{w.service, w.start, lo}, {w.service, lo, mid}, {w.service, mid, hi}, {w.service, hi, w.end}} {
			if p.end.After(p.start) {
				parts = append(parts, p)
			}
		}
		return parts
	}
	mid := w.start.Add(width / 2)
	if !mid.After(w.start) {
		return nil
	}
	return []window{{w.service, w.start, mid}, {w.service, mid, w.end}}
}

// errStopped ends a search whose consumer stopped iterating.
var errStopped = errors.New("stopped")

// Traces yields every trace that matches q, once each, as it arrives (as
// FindEach hands them on); an error ends the sequence as its last value.
// When the sequence ends, *st (if st is not nil) holds the search's stats.
// It is the iterator every source gives (see also file.Traces).
func (c *Client) Traces(ctx context.Context, q Query, progress func(Stats), st *Stats) source.Traces {
	return func(yield func(*trace.Trace, error) bool) {
		s, err := c.FindEach(ctx, q, func(t *trace.Trace) error {
			if !yield(t, nil) {
				return errStopped
			}
			return nil
		}, progress)
		if st != nil {
			*st = s
		}
		if err != nil && !errors.Is(err, errStopped) {
			yield(nil, err)
		}
	}
}
