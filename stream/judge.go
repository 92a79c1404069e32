// Judging the pairs topic: its parts read, judged once their wait has
// passed, their offsets committed, and what they add counted.

package stream

import (
	"context"
	"fmt"
	"time"

	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// judging reads the pairs topic in group PairsGroup until ctx ends: each
// part, once its pairing wait has passed, is judged against the parts
// around it, its offset committed, and what it adds counted.
func (m *member) judging(ctx context.Context) error {
	pr := &pairs{held: map[int32][]heldPart{}, ready: map[int32]bool{}, last: map[int32]time.Time{}, said: map[int32]map[int32]time.Time{}}
	cl, err := kgo.NewClient(m.cfg.Kafka.Opts(
		kgo.ConsumerGroup(PairsGroup(m.cfg.Group)),
		kgo.ConsumeTopics(PairsTopic(m.cfg.Group)),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(10*time.Second),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AdjustFetchOffsetsFn(func(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
			for _, ps := range offsets {
				for p, o := range ps {
					go m.pairContext(ctx, pr, p, o.EpochOffset().Offset)
				}
			}
			return offsets, nil
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, gone map[string][]int32) { pr.drop(gone) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, gone map[string][]int32) { pr.drop(gone) }),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	wait := m.cfg.PairWait
	tick := min(m.cfg.TraceIdle/2, time.Second)
	// Waits are counted in time Kafka answered: while it does not, the
	// members cannot publish the parts that would pair.
	var down outages
	checked := time.Now()
	for ctx.Err() == nil {
		if time.Since(checked) >= m.cfg.MetadataMaxAge {
			checked = time.Now()
			if err := m.checkPairKeys(ctx, cl); err != nil {
				return err
			}
		}
		pctx, cancel := context.WithTimeout(ctx, tick)
		fs := cl.PollFetches(pctx)
		cancel()
		if fs.IsClientClosed() {
			return nil
		}
		failed := !m.fetchErrors(fs) || !m.reachable.Load()
		now := time.Now()
		down.note(failed, now)
		pr.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) { pr.add(r, false) })
		pr.mu.Unlock()
		if !failed {
			m.judge(ctx, cl, pr, now, wait, &down)
		}
	}
	return nil
}

// pairContext reads partition p of the pairs topic from a pairing wait
// before its earliest part that may still be waited for up to committed,
// where the member starts judging: the parts its last owner judged, as
// context for the first parts judged here.
func (m *member) pairContext(ctx context.Context, pr *pairs, p int32, committed int64) {
	m.restoringPairs.Add(1)
	defer m.restoringPairs.Add(-1)
	var recs []*kgo.Record
	if committed > 0 {
		since := time.Now().Add(-(contextWaits + 1) * m.cfg.PairWait)
		var err error
		if recs, err = m.readPairs(ctx, p, since, committed); err != nil {
			m.log.Printf("reading the parts before offset %d of %s/%d: %v (its first parts are judged without them)",
				committed, PairsTopic(m.cfg.Group), p, err)
		} else {
			m.log.Printf("partition %d of %s: read back %d parts judged before offset %d", p, PairsTopic(m.cfg.Group), len(recs), committed)
		}
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	after := pr.held[p]
	pr.held[p] = nil
	for _, r := range recs {
		pr.add(r, true)
	}
	pr.held[p] = append(pr.held[p], after...)
	pr.ready[p] = true
}

// readPairs reads partition p of the pairs topic from the first record
// at or after since up to offset end (not included).
func (m *member) readPairs(ctx context.Context, p int32, since time.Time, end int64) ([]*kgo.Record, error) {
	topic := PairsTopic(m.cfg.Group)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(m.cfg.Kafka.Opts(kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	offsets, err := kadm.NewClient(cl).ListOffsetsAfterMilli(ctx, since.UnixMilli(), topic)
	if err == nil {
		err = offsets.Error()
	}
	if err != nil {
		return nil, err
	}
	start, ok := offsets.Lookup(topic, p)
	if !ok || start.Offset < 0 || start.Offset >= end {
		return nil, nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().At(start.Offset)}})
	var recs []*kgo.Record
	err = readTo(ctx, cl, topic, map[int32]int64{p: end}, func(r *kgo.Record) { recs = append(recs, r) }, func() {})
	return recs, err
}

// judge judges, on each partition ready, the parts whose pairing wait
// has passed by now, against every part held from a wait before them;
// commits the offset after them; and counts what they add. Parts judged
// over two waits ago are let go.
func (m *member) judge(ctx context.Context, cl *kgo.Client, pr *pairs, now time.Time, wait time.Duration, down *outages) {
	type batch struct {
		p               int32
		judged, context [][]byte
		offsets         []int64 // of judged
		next            int64
		earliest        time.Time
		from, to        int64 // of the judged parts' spans
		timed           bool
		overdue         int       // judged before their partitions said
		said            time.Time // up to when every partition gathered published
	}
	var batches []batch
	pr.mu.Lock()
	for p, held := range pr.held {
		if !pr.ready[p] || now.Sub(pr.last[p]) < wait/2 {
			continue
		}
		b := batch{p: p, next: -1}
		// A part is judged a wait after it came, once every partition
		// gathered has said it published what the span topic was given
		// up to the wait, less a trace-idle time and a window, after the
		// part came (by default, up to when it came: the spans of its
		// hops' other halves were written by then). A member that
		// lags, stopped, or took a partition over holds the judgement
		// back, not the other half of a hop — for holdWaits, no longer
		// (such parts are counted overdue). Waits are counted in time
		// Kafka answered.
		said := pr.saidSince(p, int(m.gatheredParts.Load()))
		b.said = said
		slack := wait - m.cfg.TraceIdle - m.cfg.Window
		taking := make([]bool, len(held))
		for i := range held {
			h := &held[i]
			if h.judged || h.join != nil || down.between(h.at, now) < wait {
				continue
			}
			covered := !said.IsZero() && down.between(h.at, said) >= slack
			if !covered && down.between(h.at, now) >= holdWaits*wait {
				b.overdue++
				covered = true
			}
			if covered {
				if len(b.judged) == 0 || h.at.Before(b.earliest) {
					b.earliest = h.at
				}
				if h.timed {
					if !b.timed || h.from < b.from {
						b.from = h.from
					}
					if !b.timed || h.to > b.to {
						b.to = h.to
					}
					b.timed = true
				}
				b.judged, b.offsets = append(b.judged, h.data), append(b.offsets, h.offset)
				taking[i] = true
			}
		}
		if len(b.judged) == 0 {
			continue
		}
		pr.last[p] = now
		// The offset to commit: the first part still to judge, or past
		// the last.
		for i, h := range held {
			if !taking[i] && !h.judged {
				b.next = h.offset
				break
			}
		}
		if b.next < 0 { // past the last, and the pieces of every part
			for _, h := range held {
				b.next = max(b.next, h.next)
			}
		}
		// The parts they are judged against: those whose spans started
		// near theirs, however far apart in time the parts were
		// published (a partition that moved publishes late).
		for i, h := range held {
			near := h.near(b.from, b.to, wait)
			if !b.timed {
				near = !h.at.Before(b.earliest) || down.between(h.at, b.earliest) <= contextWaits*wait
			}
			if !taking[i] && near && h.join == nil {
				b.context = append(b.context, h.data)
			}
		}
		batches = append(batches, b)
	}
	pr.mu.Unlock()
	for _, b := range batches {
		judged, context := m.readParts(b.p, b.judged), m.readParts(b.p, b.context)
		if err := commitPairs(ctx, cl, PairsTopic(m.cfg.Group), b.p, b.next); err != nil {
			if ctx.Err() != nil { // stopping: the next owner judges them
				return
			}
			m.log.Printf("committing %s/%d: %v (its parts are judged again)", PairsTopic(m.cfg.Group), b.p, err)
			continue
		}
		pr.judged(b.p, b.offsets, now, 2*wait, b.said, func(judgedAt time.Time) bool { return down.between(judgedAt, now) > contextWaits*wait })
		if b.overdue > 0 {
			m.metrics.overdue.Add(float64(b.overdue))
			if !m.overdueSaid.Swap(true) {
				m.log.Printf("%s/%d: %d parts judged before every partition gathered said it published what the span topic was given by then "+
					"(held %d pairing waits: a member lags that far behind; counted in ktrace_stream_pair_parts_overdue_total, logged once)",
					PairsTopic(m.cfg.Group), b.p, b.overdue, holdWaits)
			}
		}
		if len(judged) == 0 {
			continue
		}
		if facts := m.knownFacts(); facts != nil {
			context = append(context, facts)
		}
		edges, rep, facts, err := engine.Pair(judged, context)
		if err != nil {
			m.log.Printf("pairing %s/%d: %v", PairsTopic(m.cfg.Group), b.p, err)
			continue
		}
		m.learn(facts)
		m.metrics.observeEdges(edges)
		m.metrics.observeBreaks(rep)
		m.metrics.pairs.Add(float64(len(judged)))
	}
}

// readParts reads parts of the pairs topic's partition p; one that
// does not read is logged, counted and skipped.
func (m *member) readParts(p int32, data [][]byte) []*engine.Partial {
	out := make([]*engine.Partial, 0, len(data))
	for _, d := range data {
		part := &engine.Partial{}
		if len(d) == 0 {
			m.log.Printf("a part of %s/%d: %v (skipped)", PairsTopic(m.cfg.Group), p, errPieces)
			m.metrics.undecodable.Inc()
			continue
		}
		if err := part.UnmarshalBinary(d); err != nil {
			m.log.Printf("a part of %s/%d: %v (skipped)", PairsTopic(m.cfg.Group), p, err)
			m.metrics.undecodable.Inc()
			continue
		}
		out = append(out, part)
	}
	return out
}

// commitPairs commits offset next of partition p of the pairs topic for
// the group, synchronously.
func commitPairs(ctx context.Context, cl *kgo.Client, topic string, p int32, next int64) error {
	var failed error
	done := make(chan struct{})
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{topic: {p: {Epoch: -1, Offset: next}}},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			defer close(done)
			if err != nil {
				failed = err
				return
			}
			for _, t := range resp.Topics {
				for _, tp := range t.Partitions {
					if tp.ErrorCode != 0 {
						failed = fmt.Errorf("error code %d", tp.ErrorCode)
					}
				}
			}
		})
	<-done
	return failed
}
