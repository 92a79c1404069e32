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
)

// PairsTopic is the group's topic of what pairs across traces: with each
// segment it publishes, a member writes the segment's consumers that lost
// their context, its producers, keyed consumers, root producers and
// linked produce spans (engine.Partial.Pairing), a part per pairing key
// on the partition of that key, in the transaction that publishes the
// segment. Whatever partitions the two halves of a hop came from, they
// meet on one partition of this topic, and the member that holds it
// judges the hop: its /metrics count the stitches that traces of
// different members complete.
func PairsTopic(group string) string { return "ktrace." + group + ".pairs" }

// PairsGroup is the consumer group whose members judge the pairs topic.
func PairsGroup(group string) string { return "ktrace." + group + ".pairs" }

// pairsRetention is how long the pairs topic keeps a part: it is judged
// once its pairing wait has passed (pairWait), and read as context for
// parts judged after it.
const pairsRetention = time.Hour

// pairWait is how long after a part was published a member waits for the
// parts it may pair with: two halves of a hop are paired when their
// segments are published within it of each other. A partition's segment
// is published every window, once its traces have been idle for the
// trace-idle time.
func (c *Config) pairWait() time.Duration { return 2*c.Window + c.TraceIdle }

// contextWaits is how many pairing waits before the parts judged the
// parts they are judged against may have been published: a member that
// lags, or Kafka that stops, moves halves apart.
const contextWaits = 3

// A heldPart is a part of the pairs topic a member holds: to judge, or
// (judged) as context for the parts judged after it.
type heldPart struct {
	offset int64
	at     time.Time
	data   []byte
	judged bool
}

// pairs is what a member holds of the pairs topic's partitions.
type pairs struct {
	mu sync.Mutex
	// held by partition, in offset order; ready says the partition's
	// context (parts judged before it came) has been read.
	held  map[int32][]heldPart
	ready map[int32]bool
}

// pairParts writes the pairing parts of a segment's partial as records
// of the pairs topic, keyed like the segment's result.
func (m *member) pairParts(key []byte, parts []*engine.Partial) ([]*kgo.Record, error) {
	var recs []*kgo.Record
	for k, part := range parts {
		if part == nil {
			continue
		}
		data, err := part.MarshalBinary()
		if err != nil {
			return nil, err
		}
		recs = append(recs, &kgo.Record{Topic: PairsTopic(m.cfg.Group), Partition: int32(k), Key: key, Value: data})
	}
	return recs, nil
}

// judging reads the pairs topic in group PairsGroup until ctx ends: each
// part, once its pairing wait has passed, is judged against the parts
// around it, its offset committed, and what it adds counted.
func (m *member) judging(ctx context.Context) error {
	pr := &pairs{held: map[int32][]heldPart{}, ready: map[int32]bool{}}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(m.cfg.Brokers...),
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
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	wait := m.cfg.pairWait()
	tick := min(m.cfg.TraceIdle/2, time.Second)
	// Parts are judged once Kafka has answered for a whole wait: while it
	// does not, the members cannot publish the parts that would pair.
	answering := time.Now()
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, tick)
		fs := cl.PollFetches(pctx)
		cancel()
		if fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				m.log.Printf("fetching %s/%d: %v", topic, p, err)
				answering = time.Now()
			}
		})
		if !m.reachable.Load() {
			answering = time.Now()
		}
		pr.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			pr.held[r.Partition] = append(pr.held[r.Partition], heldPart{offset: r.Offset, at: r.Timestamp, data: r.Value})
		})
		pr.mu.Unlock()
		if now := time.Now(); now.Sub(answering) >= wait {
			m.judge(ctx, cl, pr, now, wait)
		}
	}
	return nil
}

// judged marks the parts at offsets of partition p judged, and lets go of
// those judged before a time.
func (pr *pairs) judged(p int32, offsets []int64, before time.Time) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	kept := pr.held[p][:0]
	for _, h := range pr.held[p] {
		if _, ok := slices.BinarySearch(offsets, h.offset); ok {
			h.judged = true
		}
		if !h.judged || !h.at.Before(before) {
			kept = append(kept, h)
		}
	}
	pr.held[p] = kept
}

// drop forgets the partitions a member no longer holds.
func (pr *pairs) drop(gone map[string][]int32) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	for _, ps := range gone {
		for _, p := range ps {
			delete(pr.held, p)
			delete(pr.ready, p)
		}
	}
}

// pairContext reads partition p of the pairs topic from a pairing wait
// before its earliest part that may still be waited for up to committed,
// where the member starts judging: the parts its last owner judged, as
// context for the first parts judged here.
func (m *member) pairContext(ctx context.Context, pr *pairs, p int32, committed int64) {
	m.restoringPairs.Add(1)
	defer m.restoringPairs.Add(-1)
	var ctxParts []heldPart
	if committed > 0 {
		since := time.Now().Add(-(contextWaits + 1) * m.cfg.pairWait())
		recs, err := m.readPairs(ctx, p, since, committed)
		if err != nil {
			m.log.Printf("reading the pairs before offset %d of %s/%d: %v (its first parts are judged without them)",
				committed, PairsTopic(m.cfg.Group), p, err)
		}
		for _, r := range recs {
			ctxParts = append(ctxParts, heldPart{offset: r.Offset, at: r.Timestamp, data: r.Value, judged: true})
		}
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.held[p] = append(ctxParts, pr.held[p]...)
	pr.ready[p] = true
}

// readPairs reads partition p of the pairs topic from the first record
// at or after since up to offset end (not included).
func (m *member) readPairs(ctx context.Context, p int32, since time.Time, end int64) ([]*kgo.Record, error) {
	topic := PairsTopic(m.cfg.Group)
	cl, err := kgo.NewClient(kgo.SeedBrokers(m.cfg.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().AfterMilli(since.UnixMilli())}}),
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
			return recs, err
		}
		if err := fs.Err(); err != nil {
			return recs, err
		}
		done := false
		fs.EachPartition(func(f kgo.FetchTopicPartition) {
			for _, r := range f.Records {
				if r.Offset >= end {
					done = true
					return
				}
				recs = append(recs, r)
			}
			if f.HighWatermark <= end && len(f.Records) > 0 && f.Records[len(f.Records)-1].Offset >= f.HighWatermark-1 {
				done = true
			}
		})
		if done {
			return recs, nil
		}
	}
}

// judge judges, on each partition ready, the parts whose pairing wait
// has passed by now, against every part held from a wait before them;
// commits the offset after them; and counts what they add. Parts judged
// over two waits ago are let go.
func (m *member) judge(ctx context.Context, cl *kgo.Client, pr *pairs, now time.Time, wait time.Duration) {
	type batch struct {
		p               int32
		judged, context [][]byte
		offsets         []int64 // of judged
		next            int64
		earliest        time.Time
	}
	var batches []batch
	cut := now.Add(-wait)
	pr.mu.Lock()
	for p, held := range pr.held {
		if !pr.ready[p] {
			continue
		}
		b := batch{p: p, next: -1}
		taking := make([]bool, len(held))
		for i := range held {
			if h := &held[i]; !h.judged && h.at.Before(cut) {
				if len(b.judged) == 0 || h.at.Before(b.earliest) {
					b.earliest = h.at
				}
				b.judged, b.offsets = append(b.judged, h.data), append(b.offsets, h.offset)
				taking[i] = true
			}
		}
		if len(b.judged) == 0 {
			continue
		}
		// The offset to commit: the first part still to judge, or past
		// the last.
		for i, h := range held {
			if !taking[i] && !h.judged {
				b.next = h.offset
				break
			}
		}
		if b.next < 0 {
			b.next = held[len(held)-1].offset + 1
		}
		for i, h := range held {
			if !taking[i] && !h.at.Before(b.earliest.Add(-contextWaits*wait)) {
				b.context = append(b.context, h.data)
			}
		}
		batches = append(batches, b)
	}
	pr.mu.Unlock()
	for _, b := range batches {
		judged, err := m.readParts(b.p, b.judged)
		if err != nil {
			continue
		}
		context, err := m.readParts(b.p, b.context)
		if err != nil {
			continue
		}
		if err := commitPairs(ctx, cl, PairsTopic(m.cfg.Group), b.p, b.next); err != nil {
			m.log.Printf("committing %s/%d: %v (its parts are judged again)", PairsTopic(m.cfg.Group), b.p, err)
			continue
		}
		pr.judged(b.p, b.offsets, cut.Add(-(contextWaits+1)*wait))
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

// readParts reads parts of the pairs topic's partition p.
func (m *member) readParts(p int32, data [][]byte) ([]*engine.Partial, error) {
	out := make([]*engine.Partial, 0, len(data))
	for _, d := range data {
		part := &engine.Partial{}
		if err := part.UnmarshalBinary(d); err != nil {
			m.log.Printf("a part of %s/%d: %v (skipped)", PairsTopic(m.cfg.Group), p, err)
			m.metrics.undecodable.Inc()
			continue
		}
		out = append(out, part)
	}
	return out, nil
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

// pairing cuts r's partial for the pairs topic: r.local is what its own
// traces count, r.pairs the parts that pair across traces (for a segment
// published again, without what went with it before; r.localBase is then
// what its own traces counted before).
func (m *member) pairing(r *result) error {
	var base *engine.Partial
	if r.again {
		base = r.base
		local, _, err := base.Pairing(m.pairKeys, nil)
		if err != nil {
			return err
		}
		r.localBase = local
	}
	local, parts, err := r.part.Pairing(m.pairKeys, base)
	if err != nil {
		return err
	}
	r.local = local
	r.pairs, err = m.pairParts(r.rec.Key, parts)
	return err
}

// knownFacts is a copy of what the member knows of the whole set (nil:
// nothing yet).
func (m *member) knownFacts() *engine.Partial {
	m.knownMu.Lock()
	defer m.knownMu.Unlock()
	if m.known == nil {
		return nil
	}
	return m.known.Facts()
}

// learn adds facts to what the member knows of the whole set.
func (m *member) learn(facts *engine.Partial) {
	m.knownMu.Lock()
	defer m.knownMu.Unlock()
	if m.known == nil {
		m.known = facts
		return
	}
	if err := m.known.Merge(facts); err != nil {
		m.log.Printf("learning the set's edges: %v", err)
	}
}
