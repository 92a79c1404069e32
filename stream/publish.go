package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ktrace-dev/ktrace/internal/engine"
)

// A result is a segment's partial ready to be written, and what it counts
// in the metrics once written: all of it, or (again: the segment was
// published before, base is what it held then) what it gained.
type result struct {
	rec    *kgo.Record
	part   *engine.Partial
	base   *engine.Partial
	again  bool
	traces int
}

// An outcome is what publishing one partition writes: its results, and
// the offset to commit with them (none when commit is not past start).
type outcome struct {
	p             int32
	a             *assembler
	start, commit int64
	results       []result
	republished   []int64 // the segments published again, by first offset
}

// errAborted says a transaction aborted: the group rebalanced meanwhile.
var errAborted = errors.New("the transaction aborted (the group rebalanced)")

// publish publishes the segments of partitions parts being gathered,
// with the segments their late spans came for, in one transaction with
// the commit of the offsets after them: results and offsets are written
// together or not at all. The work is done before the transaction
// begins, so that it stays short. A transaction that aborts reads every
// partition again from its committed offset (the session rewinds them
// all); the error of one that cannot end is returned (the member starts
// its gathering again).
func (m *member) publish(ctx context.Context, parts []int32) error {
	var outs []*outcome
	for _, p := range parts {
		o, err := m.prepare(ctx, p)
		if err != nil {
			m.log.Printf("analysing partition %d: %v (its segment will be read again)", p, err)
			m.rewind(p, m.segmentStart(p))
			continue
		}
		if o != nil {
			outs = append(outs, o)
		}
	}
	if len(outs) == 0 {
		return nil
	}
	switch err := m.transact(ctx, outs); {
	case errors.Is(err, errAborted):
		m.log.Printf("publishing: %v; every partition is read again from its committed offset", err)
		m.readAgain()
		return nil
	case err != nil:
		return err
	}
	for _, o := range outs {
		m.published(o)
	}
	return nil
}

// prepare folds partition p's complete traces and makes its results: the
// segment being gathered, and the segments late spans came for, each
// analysed again with them from its records read again. nil: nothing to
// write.
func (m *member) prepare(ctx context.Context, p int32) (*outcome, error) {
	if err := m.fold(ctx, p, true); err != nil {
		return nil, err
	}
	m.mu.Lock()
	a := m.assemblers[p]
	if a == nil {
		m.mu.Unlock()
		return nil, nil
	}
	o := &outcome{p: p, a: a, start: a.committed, commit: a.foldedTo}
	part, traces := a.folded, a.foldedTraces
	dirty := a.dirty()
	m.mu.Unlock()
	for _, seg := range dirty {
		r, err := m.reanalyse(ctx, p, a, seg)
		if err != nil {
			return nil, fmt.Errorf("reading the segment at %d again for its late spans: %w", seg, err)
		}
		o.republished = append(o.republished, seg)
		if seg == o.start { // the one being gathered: counted whole, in place of the folded partial
			r.again, r.base, part = false, nil, nil
		}
		if r.part != nil {
			o.results = append(o.results, r)
		}
	}
	if part != nil {
		r, err := m.result(p, o.start, part)
		if err != nil {
			return nil, err
		}
		r.traces = traces
		o.results = append(o.results, r)
	}
	if len(o.results) == 0 && o.commit <= o.start {
		return nil, nil
	}
	return o, nil
}

// result makes the record of a segment's partial, keyed by the partition
// and the offset the segment starts at.
func (m *member) result(p int32, start int64, part *engine.Partial) (result, error) {
	data, err := part.MarshalBinary()
	if err != nil {
		return result{}, err
	}
	rec := &kgo.Record{Topic: ResultsTopic(m.cfg.Group), Key: []byte(fmt.Sprintf("p%05d/%020d", p, start)), Value: data}
	return result{rec: rec, part: part}, nil
}

// transact writes the outcomes' results and commits their offsets in one
// transaction.
func (m *member) transact(ctx context.Context, outs []*outcome) error {
	offsets := map[int32]int64{}
	for _, o := range outs {
		if o.commit > o.start {
			offsets[o.p] = o.commit
		}
	}
	if err := m.sess.Begin(); err != nil {
		return fmt.Errorf("beginning a transaction: %w", err)
	}
	var recs []*kgo.Record
	for _, o := range outs {
		for _, r := range o.results {
			recs = append(recs, r.rec)
		}
	}
	try := kgo.TryCommit
	if err := m.sess.Client().ProduceSync(ctx, recs...).FirstErr(); err != nil {
		m.log.Printf("writing results: %v (the transaction aborts)", err)
		try = kgo.TryAbort
	}
	// The session would commit how far each partition was polled; the
	// segments end before that, at the offsets worked out here.
	ctx = kgo.PreTxnCommitFnContext(ctx, func(req *kmsg.TxnOffsetCommitRequest) error {
		topic := kmsg.NewTxnOffsetCommitRequestTopic()
		topic.Topic = m.spans
		for _, t := range req.Topics {
			if t.Topic == m.spans {
				topic.TopicID = t.TopicID
			}
		}
		for p, off := range offsets {
			tp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			tp.Partition, tp.Offset, tp.LeaderEpoch, tp.Metadata = p, off, -1, &req.MemberID
			topic.Partitions = append(topic.Partitions, tp)
		}
		req.Topics = nil
		if len(topic.Partitions) > 0 {
			req.Topics = append(req.Topics, topic)
		}
		return nil
	})
	committed, err := m.sess.End(ctx, try)
	switch {
	case err != nil:
		return fmt.Errorf("ending a transaction: %w", err)
	case !committed:
		return errAborted
	}
	return nil
}

// published moves partition o.p on past what o wrote, and counts it in
// the metrics. The partials are spent.
func (m *member) published(o *outcome) {
	m.mu.Lock()
	if m.assemblers[o.p] == o.a {
		a := o.a
		a.committed, a.folded, a.foldedTraces, a.foldedSpans = max(o.commit, o.start), nil, 0, 0
		for _, seg := range o.republished {
			if s := a.segments[seg]; s != nil {
				s.dirty = false
			}
		}
	}
	m.mu.Unlock()
	for _, r := range o.results {
		if r.again {
			m.metrics.observeChange(r.base, r.part)
			continue
		}
		m.metrics.observe(r.part)
		_, rep := r.part.Finish()
		m.metrics.observeBreaks(rep)
		m.metrics.traces.Add(float64(r.traces))
	}
}

// readAgain drops what every partition gathered since its last
// published segment, keeping what it remembers of the segments published:
// after an abort the session reads them all again from their committed
// offsets.
func (m *member) readAgain() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for p, a := range m.assemblers {
		m.assemblers[p] = a.again(a.committed)
	}
}

// reanalyse analyses partition p's segment at start again — its records
// read again from the topic, with the late spans that came for its
// traces — into a result under the segment's key, so that a reader's last
// value of the key holds them. Its base is the segment as it was
// published.
func (m *member) reanalyse(ctx context.Context, p int32, a *assembler, start int64) (result, error) {
	m.mu.Lock()
	s := a.segments[start]
	first, last, late := s.first, s.last, s.late
	m.mu.Unlock()
	recs, err := m.reread(ctx, p, first, last)
	if err != nil {
		return result{}, err
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
			return result{}, err
		}
	}
	if parts[1] == nil {
		return result{}, nil
	}
	r, err := m.result(p, start, parts[1])
	r.base, r.again, r.traces = parts[0], true, n
	return r, err
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
