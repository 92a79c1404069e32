package stream

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/trace"
)

// gather hands a poll of the spans topic (with ByTraceID, of the span
// topic) to its partitions' assemblers, and moves their record time on.
// Read by trace ID, every record's time moves it: an exporter's records
// can be read as soon as they are written. On the spans topic only the
// transactions' ends do: a re-keyed record is stamped when it was
// written, but read once its transaction ends, which may be after later
// transactions end; their records' times would complete its traces
// before its spans could be read.
func (m *member) gather(fs kgo.Fetches) {
	m.fetched.Store(m.fetchErrors(fs))
	now := time.Now()
	fs.EachRecord(func(r *kgo.Record) {
		var frags []engine.TracePiece
		if !r.Attrs.IsControl() { // a transaction's end: only its offset counts
			var err error
			if frags, err = m.gathered(r); err != nil {
				m.poison(r, err)
				frags = nil
			}
		}
		m.mu.Lock()
		a := m.assemblers[r.Partition]
		if a == nil && !m.owned[r.Partition] { // taken back since the poll
			m.mu.Unlock()
			return
		}
		if m.cfg.ByTraceID {
			m.metrics.spansIn.Add(float64(pieceSpans(frags)))
		}
		if a == nil { // rewound: start here
			a = newAssembler(r.Offset)
			m.assemblers[r.Partition] = a
		}
		if at := r.Timestamp; at.UnixMilli() > 0 && (m.cfg.ByTraceID || r.Attrs.IsControl()) {
			if at.After(now) { // a producer's clock ahead
				at = now
			}
			a.tick(at)
		}
		restoring := a.restoring()
		late := a.add(r.Offset, frags, now)
		if restoring && !a.restoring() {
			m.log.Printf("partition %d of %s restored", r.Partition, m.spans)
		}
		if late > 0 {
			m.metrics.late.Add(float64(late))
		}
		var markErr error
		if mark, ok := m.rekeyMark(r); ok {
			markErr = a.cover.mark(r.Offset, mark)
		}
		m.mu.Unlock()
		if markErr != nil {
			m.poison(r, markErr)
		}
	})
}

// askEnds notes, read by trace ID, where the partitions held end now:
// the spans written to them before now lie before (coverage). Kafka not
// answering leaves it to the next tick.
func (m *member) askEnds(ctx context.Context, timeout time.Duration) {
	at := time.Now().UnixNano()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m.mu.Lock()
	cl := m.sess.Client()
	m.mu.Unlock()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, m.spans)
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ends.Each(func(o kadm.ListedOffset) {
		if a := m.assemblers[o.Partition]; a != nil && o.Err == nil {
			a.cover.reach(o.Offset, at)
		}
	})
}

// covered is up to when (Unix ns; 0: unknown) partition p has published
// what the span topic was given, once o (nil: nothing) is.
func (m *member) covered(p int32, o *outcome) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.assemblers[p]
	if a == nil {
		return 0
	}
	commit := a.committed
	if o != nil && o.a == a {
		commit = max(commit, o.commit, o.start)
	}
	return a.cover.upTo(commit)
}

// completeIdle completes the traces idle for the idle time.
func (m *member) completeIdle(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pending := 0
	for _, a := range m.assemblers {
		a.complete(now.Add(-m.cfg.TraceIdle), m.cfg.TraceIdle)
		pending += a.pending()
	}
	m.metrics.pending.Set(float64(pending))
}

// publishAll publishes every partition held, and lists those it could
// not (publish).
func (m *member) publishAll(ctx context.Context) (left []int32, err error) {
	return m.publish(ctx, m.held())
}

// foldSpans is how many spans of complete traces a partition gathers
// before they are analysed ahead of the window: each analysis has a
// fixed cost in time and memory, so it waits for a batch worth it.
const foldSpans = 20000

// fold analyses partition p's complete traces that may be published into
// the partial of the segment being gathered — all of them with force,
// else once they hold foldSpans spans — so that only open traces and a
// batch of complete ones are held as spans: memory follows the trace-idle
// time, not the window.
func (m *member) fold(ctx context.Context, p int32, force bool) error {
	m.mu.Lock()
	a := m.assemblers[p]
	if a == nil || (!force && a.doneSpans < foldSpans) {
		m.mu.Unlock()
		return nil
	}
	most := max(1, publishTraces-a.gatheredTraces()) // the segment's record lists them
	traces, commit := a.cutAtMost(time.Now().Add(-m.cfg.TraceMaxAge), most)
	m.mu.Unlock()
	spans, cutOpen := 0, 0
	for _, t := range traces {
		spans += t.spans
		if t.cutOpen {
			cutOpen++
			if !m.cutOpenSaid.Swap(true) {
				m.log.Printf("trace %s of %s/%d had spans coming for longer than --trace-max-age (%s): analysed as it was, its later spans as a trace of their own "+
					"(counted in ktrace_stream_traces_cut_total; logged once)", t.id, m.spans, p, m.cfg.TraceMaxAge)
			}
		}
	}
	m.metrics.cutOpen.Add(float64(cutOpen))
	part, valid, err := m.analyse(ctx, p, traces, true)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.assemblers[p] != a { // rewound or revoked meanwhile
		return nil
	}
	switch {
	case part == nil:
	case a.folded == nil:
		a.folded = part
	default:
		if err := a.folded.Merge(part); err != nil {
			return err
		}
	}
	a.foldedTo, a.foldedTraces, a.foldedSpans = max(a.foldedTo, commit), a.foldedTraces+valid, a.foldedSpans+spans
	return nil
}

// analyse decodes and checks the traces gathered on partition p, and
// analyses those valid into a partial (nil: none), with report counting
// and logging those left out (not when they are analysed again). It
// returns the partial and how many traces it holds. The traces are
// decoded and analysed foldSpans spans at a time, their partials merged:
// a member that catches up on a backlog completes many traces at once,
// and decoded spans take several times the bytes they came in.
func (m *member) analyse(ctx context.Context, p int32, gathered []*partial, report bool) (*engine.Partial, int, error) {
	var whole *engine.Partial
	valid := 0
	for len(gathered) > 0 {
		n, spans := 0, 0
		for n < len(gathered) && (n == 0 || spans+gathered[n].spans <= foldSpans) {
			spans += gathered[n].spans
			n++
		}
		part, k, err := m.analyseChunk(ctx, p, gathered[:n], report)
		if err != nil {
			return nil, 0, err
		}
		gathered, valid = gathered[n:], valid+k
		switch {
		case part == nil:
		case whole == nil:
			whole = part
		default:
			if err := whole.Merge(part); err != nil {
				return nil, 0, err
			}
		}
	}
	return whole, valid, nil
}

// analyseChunk is analyse for traces decoded at once.
func (m *member) analyseChunk(ctx context.Context, p int32, gathered []*partial, report bool) (*engine.Partial, int, error) {
	valid := make([]trace.Trace, 0, len(gathered))
	all := m.decodeAll(gathered)
	for i, g := range gathered {
		var t trace.Trace
		var err error
		if all != nil {
			t = all[i]
		} else {
			t, err = m.decodeTrace(g)
		}
		if err == nil {
			err = trace.Validate(&t)
		}
		if err != nil {
			if report {
				m.metrics.invalid.Inc()
				m.log.Printf("leaving out trace %s (records %d to %d of %s/%d): %v", g.id, g.first, g.last, m.spans, p, err)
			}
			continue
		}
		valid = append(valid, t)
	}
	if len(valid) == 0 {
		return nil, 0, nil
	}
	part, err := engine.Collect(ctx, engine.Slice(valid), engine.Options{SkewTolerance: m.cfg.SkewTolerance, Workers: 1})
	return part, len(valid), err
}

// decodeAll decodes the traces gathered at once, as many as they are, in
// their order (nil: they do not decode so, and are decoded one by one,
// each with its own error): one decoding's fixed costs for them all.
func (m *member) decodeAll(gathered []*partial) []trace.Trace {
	msgs := make([][]byte, len(gathered))
	for i, g := range gathered {
		msgs[i] = g.data
	}
	ts, ok := m.otlp.Decode(msgs, &m.res, &m.strs) // valid until the next decoding: analyse lets them go
	if !ok || len(ts) != len(gathered) {
		return nil
	}
	for i, g := range gathered {
		if ts[i].ID != g.id {
			return nil
		}
		ts[i].Spans = distinct(ts[i].Spans)
	}
	return ts
}

// decodeTrace decodes a trace gathered: its spans, each once (a record
// written twice upstream brings its spans twice).
func (m *member) decodeTrace(g *partial) (trace.Trace, error) {
	ts, err := decode(g.data, EncodingProto, m.decoding())
	if err != nil {
		return trace.Trace{}, err
	}
	if len(ts) != 1 || ts[0].ID != g.id {
		return trace.Trace{}, fmt.Errorf("its records hold %d traces, not trace %s alone", len(ts), g.id)
	}
	t := ts[0]
	t.Spans = distinct(t.Spans)
	return t, nil
}

// distinct drops the spans whose ID came before, keeping the order.
func distinct(spans []trace.Span) []trace.Span {
	if len(spans) > 64 {
		seen := make(map[trace.SpanID]bool, len(spans))
		out := spans[:0]
		for _, s := range spans {
			if !seen[s.SpanID] {
				seen[s.SpanID] = true
				out = append(out, s)
			}
		}
		return out
	}
	out := spans[:0]
next:
	for _, s := range spans {
		for _, o := range out {
			if o.SpanID == s.SpanID {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

// publishSpans bounds the spans of a segment: one that has folded as
// many is published without waiting for the window, so that its partial
// stays a few records (a partial costs some 10–80 bytes a span; one over
// valueMaxBytes is cut into pieces).
const publishSpans = 100_000

// publishTraces bounds the traces of a segment likewise: its record in the
// segments topic lists them (16 bytes each), and stays under Kafka's
// default largest record (about 1 MiB), which that topic has where an
// earlier member made it (before recordMaxBytes), however small the
// traces. A fold takes no more than the segment has room for (the rest
// wait for the next), and a full segment is published at once.
const publishTraces = 32_768

// foldAll folds every partition held, and publishes those whose segment
// is full.
func (m *member) foldAll(ctx context.Context) error {
	var full []int32
	for _, p := range m.held() {
		if err := m.fold(ctx, p, false); err != nil {
			m.log.Printf("analysing partition %d: %v (its segment will be read again)", p, err)
			m.rewind(p, m.segmentStart(p))
			continue
		}
		m.mu.Lock()
		if a := m.assemblers[p]; a != nil && a.full() {
			full = append(full, p)
		}
		m.mu.Unlock()
	}
	_, err := m.publish(ctx, full)
	return err
}

// held lists the partitions held.
func (m *member) held() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var parts []int32
	for p := range m.assemblers {
		parts = append(parts, p)
	}
	return parts
}

// segmentStart is where partition p's segment being gathered starts.
func (m *member) segmentStart(p int32) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.assemblers[p]; a != nil {
		return a.committed
	}
	return 0
}

// rewind forgets partition p's traces and reads it again from offset.
func (m *member) rewind(p int32, offset int64) {
	m.mu.Lock()
	delete(m.assemblers, p)
	m.mu.Unlock()
	m.sess.Client().SetOffsets(map[string]map[int32]kgo.EpochOffset{m.spans: {p: {Epoch: -1, Offset: offset}}})
}

// assigned starts an assembler for each new partition of the spans topic,
// from the group's committed offset, restoring until it has read what the
// partition held when it came: the records of the traces its last owner
// left open. What it knows of the segments published before comes from
// the segments topic (restoreSegments): spans coming late for their
// traces are merged into them.
func (m *member) assigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	parts := assigned[m.spans]
	if len(parts) == 0 {
		return
	}
	m.restoringSegments.Add(1)
	defer m.restoringSegments.Add(-1)
	adm := kadm.NewClient(cl)
	if slices.Max(parts) >= m.gatheredParts.Load() {
		m.grown(ctx, adm)
	}
	committed, err := adm.FetchOffsetsForTopics(ctx, m.gatherGroup, m.spans)
	// The end a read-committed consumer reaches: the last stable offset.
	ends, endErr := adm.ListCommittedOffsets(ctx, m.spans)
	known, knownErr := m.restoreSegments(ctx, adm, parts)
	if knownErr != nil {
		m.log.Printf("partitions %v: the segments published before are not known (%v): spans coming late for their traces are taken for traces of their own", parts, knownErr)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range parts {
		from := int64(0)
		if err == nil {
			if o, ok := committed.Lookup(m.spans, p); ok && o.At >= 0 {
				from = o.At
			}
		}
		a := newAssembler(from)
		a.know(known[p])
		if endErr == nil {
			if o, ok := ends.Lookup(m.spans, p); ok && o.Err == nil && o.Offset > from {
				a.restoreTo = o.Offset
				m.log.Printf("partition %d of %s: restoring, offsets %d to %d", p, m.spans, from, o.Offset)
			}
		}
		m.assemblers[p] = a
		m.owned[p] = true
	}
	m.metrics.partitions.Set(float64(len(m.assemblers)))
}

// grown follows the topic gathered when partitions were added to it: the
// segments topic grows to as many, and the pairs judged wait for the new
// partitions' word too. A failure is logged: the new partitions'
// segments cannot be written until a member starts again.
func (m *member) grown(ctx context.Context, adm *kadm.Client) {
	n, err := partitions(ctx, m.cfg.Kafka, adm, m.spans)
	if err == nil {
		err = m.followSegments(ctx, adm, n)
	}
	if err != nil {
		m.log.Printf("%s has grown: %v", m.spans, err)
		return
	}
	m.gatheredParts.Store(n)
}

// forget forgets the partitions taken away (revoked) or lost: their new
// owners read again what was not published. (Publishing here cannot be:
// a transaction cannot end inside the rebalance, and the session aborts
// the next one, which reads every partition again from its committed
// offset.)
func (m *member) forget(_ context.Context, _ *kgo.Client, gone map[string][]int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range gone[m.spans] {
		delete(m.assemblers, p)
		delete(m.owned, p)
	}
	m.metrics.partitions.Set(float64(len(m.assemblers)))
}
