package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/trace"
)

// A result is a segment's partial ready to be written, and what it counts
// in the metrics once written: all of it, or (again: the segment was
// published before, base is what it held then) what it gained.
type result struct {
	// rec is the result's record in the results topic, more the rest of
	// its parts, if it takes several.
	rec  *kgo.Record
	more []*kgo.Record
	// seg is the segment's record in the segments topic (nil: none).
	seg   *kgo.Record
	part  *engine.Partial
	base  *engine.Partial
	again bool
	// pairs are its records of the pairs topic; local what its own
	// traces count, localBase what they counted before (again).
	pairs            []*kgo.Record
	local, localBase *engine.Partial
	traces           int
	// settled: published again, how many of the segment's late records
	// it holds.
	settled int
}

// An outcome is what publishing one partition writes: its results, and
// the offset to commit with them (none when commit is not past start).
type outcome struct {
	p             int32
	a             *assembler
	start, commit int64
	results       []result
	// republished are the segments published again, by first offset,
	// with how many of their late records they now hold.
	republished map[int64]int
}

// errAborted says a transaction aborted: the group rebalanced meanwhile;
// errWriteAborted that it was aborted because a write failed.
var (
	errAborted      = errors.New("the transaction aborted (the group rebalanced)")
	errWriteAborted = errors.New("the transaction aborted (a write failed)")
)

// publish publishes the segments of partitions parts being gathered,
// with the segments their late spans came for, in one transaction with
// the commit of the offsets after them: results and offsets are written
// together or not at all. The work is done before the transaction
// begins, so that it stays short. A transaction that aborts reads every
// partition again from its committed offset (the session rewinds them
// all); the error of one that cannot end is returned (the member starts
// its gathering again). left lists the partitions not published: those
// whose analysis failed (rewound to their segment's start, to be read
// again), or all of parts when the transaction did not commit.
func (m *member) publish(ctx context.Context, parts []int32) (left []int32, err error) {
	var outs []*outcome
	var marks []*kgo.Record
	for _, p := range parts {
		o, err := m.prepare(ctx, p)
		if err != nil {
			m.log.Printf("analysing partition %d: %v (its segment will be read again)", p, err)
			m.rewind(p, m.segmentStart(p))
			left = append(left, p)
			continue
		}
		if o != nil {
			outs = append(outs, o)
		}
		marks = append(marks, m.marks(p, m.covered(p, o))...)
	}
	if len(outs) == 0 && len(marks) == 0 {
		return left, nil
	}
	switch err := m.transact(ctx, outs, marks); {
	case errors.Is(err, errAborted), errors.Is(err, errWriteAborted):
		m.log.Printf("publishing: %v; every partition is read again from its committed offset", err)
		m.readAgain()
		return parts, nil
	case err != nil:
		return parts, err
	}
	for _, o := range outs {
		m.published(o)
	}
	return left, nil
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
	var current *kgo.Record
	if s := a.segments[o.start]; s != nil {
		current = m.segmentRecord(p, o.start, s)
	}
	m.mu.Unlock()
	for _, seg := range dirty {
		r, err := m.reanalyse(ctx, p, a, seg)
		if err != nil {
			return nil, fmt.Errorf("reading the segment at %d again for its late spans: %w", seg, err)
		}
		if o.republished == nil {
			o.republished = map[int64]int{}
		}
		o.republished[seg] = r.settled
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
		r.traces, r.seg = traces, current
		o.results = append(o.results, r)
	}
	if len(o.results) == 0 && o.commit <= o.start {
		return nil, nil
	}
	for i := range o.results {
		if err := m.pairing(&o.results[i]); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// result makes the records of a segment's partial, keyed by the partition
// and the offset the segment starts at: one, or several when it is larger
// than a record may be (a service that puts IDs or queries in its span
// names gives a result as many names as spans).
func (m *member) result(p int32, start int64, part *engine.Partial) (result, error) {
	data, err := part.MarshalBinary()
	if err != nil {
		return result{}, err
	}
	recs := cut(&kgo.Record{Topic: ResultsTopic(m.cfg.Group), Key: segmentKey(p, start), Value: data}, m.valueMax)
	return result{rec: recs[0], more: recs[1:], part: part}, nil
}

// segmentRecord is the record of partition p's segment s, starting at
// start, in the segments topic (called with mu held).
func (m *member) segmentRecord(p int32, start int64, s *segment) *kgo.Record {
	return &kgo.Record{Topic: SegmentsTopic(m.cfg.Group), Partition: p, Key: segmentKey(p, start), Value: s.marshal(start)}
}

// transact writes the outcomes' results and the marks, and commits the
// outcomes' offsets, in one transaction.
func (m *member) transact(ctx context.Context, outs []*outcome, marks []*kgo.Record) error {
	offsets := map[int32]int64{}
	for _, o := range outs {
		if o.commit > o.start {
			offsets[o.p] = o.commit
		}
	}
	// Once begun, a transaction is ended even when the member is being
	// stopped meanwhile: left open, it would hold the next one back. It
	// is given until ctx's deadline, if any, else 20 seconds (the
	// transaction's timeout), so that a member stopped while Kafka does
	// not answer still stops.
	bound := 20 * time.Second
	if d, ok := ctx.Deadline(); ok {
		bound = min(bound, time.Until(d))
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bound)
	defer cancel()
	if err := m.sess.Begin(); err != nil {
		return fmt.Errorf("beginning a transaction: %w", err)
	}
	var recs []*kgo.Record
	for _, o := range outs {
		for _, r := range o.results {
			recs = append(recs, r.rec)
			recs = append(recs, r.more...)
			if r.seg != nil {
				recs = append(recs, r.seg)
			}
			recs = append(recs, r.pairs...)
		}
	}
	recs = append(recs, marks...) // after the parts they cover (marks)
	try := kgo.TryCommit
	writeErr := produce(ctx, m.sess, recs)
	if writeErr != nil {
		m.log.Printf("writing results: %v (the transaction aborts)", writeErr)
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
	case !committed && writeErr != nil:
		return errWriteAborted
	case !committed:
		return errAborted
	}
	return nil
}

// produce writes recs in the open transaction of s, and waits until they
// are written or ctx ends, returning the first write's error: a
// transaction with a failed write must abort, as Kafka would commit the
// others and the offsets past it. (ProduceSync could wait for ever: a
// record sent to a broker that went away before it answered cannot be
// failed, as the broker may have written it.)
func produce(ctx context.Context, s *kgo.GroupTransactSession, recs []*kgo.Record) error {
	var mu sync.Mutex
	var first error
	for _, r := range recs {
		s.Produce(ctx, r, func(_ *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if first == nil {
				first = err
			}
		})
	}
	if err := s.Client().Flush(ctx); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return first
}

// published moves partition o.p on past what o wrote, and counts it in
// the metrics. The partials are spent.
func (m *member) published(o *outcome) {
	m.mu.Lock()
	if m.assemblers[o.p] == o.a {
		a := o.a
		a.committed, a.folded, a.foldedTraces, a.foldedSpans = max(o.commit, o.start), nil, 0, 0
		for seg, settled := range o.republished {
			if s := a.segments[seg]; s != nil {
				s.settled = settled
			}
		}
	}
	m.mu.Unlock()
	for _, r := range o.results {
		if r.again {
			m.observeChange(r.localBase, r.local)
			continue
		}
		m.observe(r.local)
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
// and those that brought late spans for its traces, read again from the
// topic — into a result under the segment's key, so that a reader's last
// value of the key holds them. Its base is the segment as it was
// published last.
func (m *member) reanalyse(ctx context.Context, p int32, a *assembler, start int64) (result, error) {
	m.mu.Lock()
	s := a.segments[start]
	first, last, lateAt, settled := s.first, s.last, s.lateAt, s.settled
	own := make(map[trace.TraceID]bool, len(s.traces))
	for _, id := range s.traces {
		own[id] = true
	}
	seg := m.segmentRecord(p, start, s)
	m.mu.Unlock()
	recs, err := m.reread(ctx, p, first, last)
	if err != nil {
		return result{}, err
	}
	// Two assemblies of the segment: as published last (with the late
	// spans settled), and with all its late spans. Records hold spans of
	// other segments' traces too (late ones of older segments, early ones
	// of newer): only the segment's own traces are taken.
	was, is := newAssembler(first), newAssembler(first)
	now := time.Now()
	mine := func(r *kgo.Record) []engine.TracePiece {
		frags, err := m.gathered(r)
		if err != nil {
			return nil // counted when first read
		}
		kept := frags[:0]
		for _, f := range frags {
			if own[f.ID] {
				kept = append(kept, f)
			}
		}
		return kept
	}
	for _, r := range recs {
		frags := mine(r)
		was.add(r.Offset, frags, now)
		is.add(r.Offset, frags, now)
	}
	settledTo := int64(-1) // late records up to it were published
	if settled > 0 {
		settledTo = lateAt[settled-1]
	}
	lateRecs, err := m.rereadAt(ctx, p, lateAt)
	if err != nil {
		return result{}, err
	}
	for _, r := range lateRecs {
		frags := mine(r)
		if r.Offset <= settledTo {
			was.add(r.Offset, frags, now)
		}
		is.add(r.Offset, frags, now)
	}
	var parts [2]*engine.Partial
	n := 0
	for i, asm := range []*assembler{was, is} {
		asm.complete(now.Add(time.Hour), 0)
		traces, _ := asm.cut(time.Time{})
		if parts[i], n, err = m.analyse(ctx, p, traces, false); err != nil {
			return result{}, err
		}
	}
	if parts[1] == nil {
		return result{settled: len(lateAt)}, nil
	}
	r, err := m.result(p, start, parts[1])
	r.base, r.again, r.traces, r.seg, r.settled = parts[0], true, n, seg, len(lateAt)
	return r, err
}

// rereadGap is how far apart two late records may be and still be read
// in one pass, the records between them skipped.
const rereadGap = 1000

// rereadAt reads the records at offsets (ascending) of partition p of the
// gathered topic again, a pass for each run of them.
func (m *member) rereadAt(ctx context.Context, p int32, offsets []int64) ([]*kgo.Record, error) {
	var out []*kgo.Record
	for i := 0; i < len(offsets); {
		j := i + 1
		for j < len(offsets) && offsets[j]-offsets[j-1] <= rereadGap {
			j++
		}
		recs, err := m.reread(ctx, p, offsets[i], offsets[j-1])
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if _, found := slices.BinarySearch(offsets[i:j], r.Offset); found {
				out = append(out, r)
			}
		}
		i = j
	}
	return out, nil
}

// reread reads partition p of the gathered topic again: its committed
// records from offset first to last, both of which must be there.
func (m *member) reread(ctx context.Context, p int32, first, last int64) ([]*kgo.Record, error) {
	cl, err := kgo.NewClient(m.cfg.Kafka.Opts(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{m.spans: {p: kgo.NewOffset().At(first)}}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), // gone: nothing to read, said below
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
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
