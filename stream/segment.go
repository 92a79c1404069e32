package stream

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/trace"
)

// gather hands a poll of the spans topic (with ByTraceID, of the span
// topic) to its partitions' assemblers.
func (m *member) gather(fs kgo.Fetches) {
	m.fetched.Store(m.fetchErrors(fs))
	now := time.Now()
	fs.EachRecord(func(r *kgo.Record) {
		var frags []trace.Trace
		if !r.Attrs.IsControl() { // a transaction's end: only its offset counts
			var err error
			if frags, err = decode(r.Value, m.gatherEncoding(), &m.res, &m.strs); err != nil {
				m.poison(r, err)
				frags = nil
			}
		}
		if m.cfg.ByTraceID {
			m.metrics.spansIn.Add(float64(countSpans(frags)))
		}
		m.mu.Lock()
		a := m.assemblers[r.Partition]
		if a == nil { // not assigned through the callback (yet): start here
			a = newAssembler(r.Offset)
			m.assemblers[r.Partition] = a
		}
		restoring := a.restoring()
		late := a.add(r.Offset, frags, now)
		if restoring && !a.restoring() {
			m.log.Printf("partition %d of %s restored", r.Partition, m.spans)
		}
		if late > 0 {
			m.metrics.late.Add(float64(late))
		}
		m.mu.Unlock()
	})
}

// gatherEncoding is the encoding of the topic gathered: the spans topic's,
// or with ByTraceID the span topic's.
func (m *member) gatherEncoding() string {
	if m.cfg.ByTraceID {
		return m.cfg.Encoding
	}
	return EncodingProto
}

// commit commits the spans topic's partition p up to offset.
func (m *member) commit(ctx context.Context, p int32, offset int64) error {
	var failed error
	m.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{m.spans: {p: {Epoch: -1, Offset: offset}}},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			failed = err
			if resp != nil {
				for _, t := range resp.Topics {
					for _, tp := range t.Partitions {
						if err := kerr.ErrorForCode(tp.ErrorCode); err != nil {
							failed = err
						}
					}
				}
			}
		})
	return failed
}

// completeIdle completes the traces idle for the idle time.
func (m *member) completeIdle(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pending := 0
	for _, a := range m.assemblers {
		a.complete(now.Add(-m.cfg.TraceIdle))
		pending += a.pending()
	}
	m.metrics.pending.Set(float64(pending))
}

// publishAll publishes every partition held.
func (m *member) publishAll(ctx context.Context) {
	for _, p := range m.held() {
		m.publish(ctx, p)
	}
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
	if a == nil || (!force && a.doneSpans() < foldSpans) {
		m.mu.Unlock()
		return nil
	}
	traces, commit := a.cut()
	m.mu.Unlock()
	spans := countSpans(traces)
	part, valid, err := m.analyse(ctx, traces, true)
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

// analyse packs and checks traces and analyses those valid into a
// partial (nil: none), with report counting and logging those left out
// (not when they are analysed again). It returns the partial and how many
// traces it holds. The traces' slice is reused.
func (m *member) analyse(ctx context.Context, traces []trace.Trace, report bool) (*engine.Partial, int, error) {
	valid := traces[:0]
	for i := range traces {
		traces[i].Pack()
		if err := trace.Validate(&traces[i]); err != nil {
			if report {
				m.metrics.invalid.Inc()
				m.log.Printf("leaving out trace %s: %v", traces[i].ID, err)
			}
			continue
		}
		valid = append(valid, traces[i])
	}
	if len(valid) == 0 {
		return nil, 0, nil
	}
	part, err := engine.Collect(ctx, engine.Slice(valid), engine.Options{SkewTolerance: m.cfg.SkewTolerance, Workers: 1})
	return part, len(valid), err
}

// publishSpans bounds the spans of a segment: one that has folded as
// many is published without waiting for the window, so that a partial
// stays well inside the largest record Kafka takes (resultMaxBytes; a
// partial costs some 10–20 bytes a span).
const publishSpans = 100_000

// resultMaxBytes is the largest result record, set on the results topic
// and the producer.
const resultMaxBytes = 16 << 20

// foldAll folds every partition held, and publishes those whose segment
// is full.
func (m *member) foldAll(ctx context.Context) {
	for _, p := range m.held() {
		if err := m.fold(ctx, p, false); err != nil {
			m.log.Printf("analysing partition %d: %v (its segment will be read again)", p, err)
			m.rewind(p, m.segmentStart(p))
			continue
		}
		m.mu.Lock()
		full := m.assemblers[p] != nil && m.assemblers[p].foldedSpans >= publishSpans
		m.mu.Unlock()
		if full {
			m.publish(ctx, p)
		}
	}
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

// publish folds partition p's complete traces, publishes the segment's
// partial, keyed by the partition and the offset the segment starts at,
// and commits the offset after it.
func (m *member) publish(ctx context.Context, p int32) {
	if err := m.fold(ctx, p, true); err != nil {
		m.log.Printf("analysing partition %d: %v (its segment will be read again)", p, err)
		m.rewind(p, m.segmentStart(p))
		return
	}
	m.mu.Lock()
	a := m.assemblers[p]
	if a == nil {
		m.mu.Unlock()
		return
	}
	part, traces, start, commit := a.folded, a.foldedTraces, a.committed, a.foldedTo
	dirty := a.dirty()
	m.mu.Unlock()
	// Segments late spans came for are analysed again with them and
	// published whole, the one being gathered among them.
	for _, seg := range dirty {
		n, err := m.republish(ctx, p, a, seg, seg == start)
		if err != nil {
			m.log.Printf("publishing partition %d's segment at %d again with its late spans: %v (its traces will be read again)", p, seg, err)
			m.rewind(p, start)
			return
		}
		if seg == start {
			part, traces = nil, n
		}
	}
	if part != nil {
		if err := m.publishPartial(ctx, p, start, part, traces); err != nil {
			m.log.Printf("publishing partition %d: %v (its traces will be read again)", p, err)
			m.rewind(p, start)
			return
		}
	}
	if commit > start {
		if err := m.commit(ctx, p, commit); err != nil {
			// Published and not committed: read again from the
			// segment's start, it is published again under the same
			// key, whole.
			m.log.Printf("committing partition %d: %v (its segment will be read and published again)", p, err)
			m.rewind(p, start)
			return
		}
	}
	m.mu.Lock()
	a.committed, a.folded, a.foldedTraces, a.foldedSpans = max(commit, start), nil, 0, 0
	m.mu.Unlock()
}

// rewind forgets partition p's traces and reads it again from offset.
func (m *member) rewind(p int32, offset int64) {
	m.mu.Lock()
	delete(m.assemblers, p)
	m.mu.Unlock()
	m.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{m.spans: {p: {Epoch: -1, Offset: offset}}})
}

// publishPartial writes a segment's partial and once it is written counts
// it in the metrics (a segment that fails is read and published again:
// counted once). The partial is spent.
func (m *member) publishPartial(ctx context.Context, p int32, start int64, part *engine.Partial, traces int) error {
	if err := m.writeResult(ctx, p, start, part); err != nil {
		return err
	}
	m.metrics.observe(part)
	_, rep := part.Finish()
	m.metrics.observeBreaks(rep)
	m.metrics.traces.Add(float64(traces))
	return nil
}

// writeResult writes a segment's partial to the results topic, keyed by
// the partition and the offset the segment starts at.
func (m *member) writeResult(ctx context.Context, p int32, start int64, part *engine.Partial) error {
	data, err := part.MarshalBinary()
	if err != nil {
		return err
	}
	rec := &kgo.Record{Topic: ResultsTopic(m.cfg.Group), Key: []byte(fmt.Sprintf("p%05d/%020d", p, start)), Value: data}
	return m.cl.ProduceSync(ctx, rec).FirstErr()
}

// republish analyses partition p's segment at start again — its records
// read again from the topic, with the late spans that came for its
// traces — and publishes it under its key, so that a reader's last value
// of the key holds them. current says it is the segment being gathered,
// not yet published. It returns how many traces the segment holds.
func (m *member) republish(ctx context.Context, p int32, a *assembler, start int64, current bool) (int, error) {
	m.mu.Lock()
	s := a.segments[start]
	first, last, late := s.first, s.last, s.late
	s.dirty = false
	m.mu.Unlock()
	recs, err := m.reread(ctx, p, first, last)
	if err != nil {
		return 0, err
	}
	// Two assemblies of the segment: as published before, and with its
	// late spans. Records in it may hold late spans of older segments'
	// traces: those are left to their own segments.
	was, is := newAssembler(first), newAssembler(first)
	now := time.Now()
	for _, r := range recs {
		frags, err := decode(r.Value, m.gatherEncoding(), &m.res, &m.strs)
		if err != nil {
			continue // counted when first read
		}
		own := frags[:0]
		m.mu.Lock()
		for _, f := range frags {
			if seg, ok := a.published[f.ID]; !ok || seg == start {
				own = append(own, f)
			}
		}
		m.mu.Unlock()
		was.add(r.Offset, own, now)
		is.add(r.Offset, own, now)
	}
	is.add(last, late, now)
	var parts [2]*engine.Partial
	n := 0
	for i, asm := range []*assembler{was, is} {
		asm.complete(now.Add(time.Hour))
		traces, _ := asm.cut()
		if parts[i], n, err = m.analyse(ctx, traces, false); err != nil {
			return 0, err
		}
	}
	switch {
	case parts[1] == nil:
		return 0, nil
	case current: // not published before: counted whole
		return n, m.publishPartial(ctx, p, start, parts[1], n)
	}
	if err := m.writeResult(ctx, p, start, parts[1]); err != nil {
		return 0, err
	}
	m.metrics.observeChange(parts[0], parts[1])
	return n, nil
}

// reread reads partition p of the gathered topic again: its committed
// records from offset first to last, both of which must be there.
func (m *member) reread(ctx context.Context, p int32, first, last int64) ([]*kgo.Record, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(m.cfg.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{m.spans: {p: kgo.NewOffset().At(first)}}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), // gone: nothing to read, said below
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("reading %s/%d from offset %d: %w", m.spans, p, first, err)
		}
		if err := fs.Err(); err != nil {
			return nil, fmt.Errorf("reading %s/%d from offset %d: %w", m.spans, p, first, err)
		}
		for _, r := range fs.Records() {
			if len(recs) == 0 && r.Offset != first {
				return nil, fmt.Errorf("reading %s/%d: offset %d is no longer on the topic", m.spans, p, first)
			}
			if r.Offset > last {
				return recs, nil
			}
			recs = append(recs, r)
			if r.Offset == last {
				return recs, nil
			}
		}
	}
}

// assigned starts an assembler for each new partition of the spans topic,
// from the group's committed offset, restoring until it has read what the
// partition held when it came: the records of the traces its last owner
// left open.
func (m *member) assigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	parts := assigned[m.spans]
	if len(parts) == 0 {
		return
	}
	adm := kadm.NewClient(cl)
	committed, err := adm.FetchOffsetsForTopics(ctx, m.gatherGroup, m.spans)
	// The end a read-committed consumer reaches: the last stable offset.
	ends, endErr := adm.ListCommittedOffsets(ctx, m.spans)
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
		if endErr == nil {
			if o, ok := ends.Lookup(m.spans, p); ok && o.Err == nil && o.Offset > from {
				a.restoreTo = o.Offset
				m.log.Printf("partition %d of %s: restoring, offsets %d to %d", p, m.spans, from, o.Offset)
			}
		}
		m.assemblers[p] = a
	}
	m.metrics.partitions.Set(float64(len(m.assemblers)))
}

// revoked publishes and commits what the partitions taken away may
// publish, and forgets them; traces still open are read again by the new
// owner.
func (m *member) revoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	for _, p := range revoked[m.spans] {
		m.publish(ctx, p)
		m.mu.Lock()
		delete(m.assemblers, p)
		m.mu.Unlock()
	}
	m.mu.Lock()
	m.metrics.partitions.Set(float64(len(m.assemblers)))
	m.mu.Unlock()
}

// lost forgets the partitions lost without a chance to publish.
func (m *member) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range lost[m.spans] {
		delete(m.assemblers, p)
	}
}
