package stream

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
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
// judges the hop once both halves had Config.PairWait to be published
// and every partition gathered says it published what the span topic
// was given by then (coveredHeader): its /metrics count the stitches
// that traces of different members complete.
func PairsTopic(group string) string { return "ktrace." + group + ".pairs" }

// PairsGroup is the consumer group whose members judge the pairs topic.
func PairsGroup(group string) string { return "ktrace." + group + ".pairs" }

// pairsRetention is how long the pairs topic keeps a part: it is judged
// once its pairing wait has passed (Config.PairWait), and read as context for
// parts judged after it.
const pairsRetention = time.Hour

// contextWaits is how many pairing waits before the parts judged the
// parts they are judged against may have been published, for parts that
// do not say when their spans started: a producer's trace completes
// before its consumer's, and is published up to a window and the
// trace-idle time before it — or longer, when its partition moved between
// members in between (a rebalance, a member restarted). Parts that say
// are judged against those whose spans started within a wait of theirs,
// however far apart they were published. A part judged is let go once
// its spans started two waits before the earliest span still to judge
// (or still to be published: before what every partition gathered said
// it published), or contextWaits after it was judged, whichever comes
// first — by then the parts published before it was judged, which it
// may pair with, are judged too. A member holds about two waits of the
// pairing data of the partitions of the pairs topic it holds, about four
// at most (judged a wait after they came); while a member lags, up to
// holdWaits+contextWaits.
const contextWaits = 3

// holdWaits is how many pairing waits a part is held for at most, when
// the partitions gathered have not all said they published what the span
// topic was given by then (a member lags behind it, or its partition has
// no member): it is judged then all the same, so that a backlog does not
// hold the parts of all partitions, and the member's memory, for as long
// as it lasts. Restoring a partition, a rebalance, a broker restart take
// well under it.
const holdWaits = 8

// A heldPart is a part of the pairs topic a member holds: to judge, or
// (judged) as context for the parts judged after it.
type heldPart struct {
	// offset is that of its record, next that after its last piece's
	// (cut), while join gathers its pieces, under key.
	offset, next int64
	join         *joining
	key          string
	at           time.Time
	data         []byte // empty: its pieces did not make the part written
	judged       bool
	// judgedAt is when it was judged here (or, judged before it came to
	// this member, when it was read back).
	judgedAt time.Time
	// from and to are when its spans started (Unix ns); timed false:
	// the record did not say.
	from, to int64
	timed    bool
}

// near says whether h's spans may pair with spans that started from
// from to to, slack around: a producer starts before its consumer, by
// the consumer's lag.
func (h heldPart) near(from, to int64, slack time.Duration) bool {
	return !h.timed || h.to >= from-slack.Nanoseconds() && h.from <= to+slack.Nanoseconds()
}

// pairs is what a member holds of the pairs topic's partitions.
type pairs struct {
	mu sync.Mutex
	// held by partition, in offset order; ready says the partition's
	// context (parts judged before it came) has been read.
	held  map[int32][]heldPart
	ready map[int32]bool
	// said is, by partition and partition gathered, up to when the
	// members gathering it said they published what the span topic was
	// given (the latest they said).
	said map[int32]map[int32]time.Time
	// last is when each partition was last judged: at most every half
	// wait, so that a part is read as context a few times, not at every
	// poll.
	last map[int32]time.Time
}

// marks are the records that say, on every partition of the pairs topic,
// that partition p of the topic gathered published what the span topic
// was given up to upTo (Unix ns; 0: nothing is known, no marks). A part
// is judged only once every partition gathered has said so up to about
// when it was published (judge). They are written after the parts of
// their transaction, so that a member that reads one has read the parts
// before it on that partition.
func (m *member) marks(p int32, upTo int64) []*kgo.Record {
	if upTo <= 0 {
		return nil
	}
	recs := make([]*kgo.Record, m.pairKeys)
	for k := range recs {
		recs[k] = &kgo.Record{Topic: PairsTopic(m.cfg.Group), Partition: int32(k), Key: markKey(p), Value: []byte{},
			Headers: []kgo.RecordHeader{coveredAt(upTo)}}
	}
	return recs
}

// coveredHeader names the header of a mark that says up to when (Unix
// ns) its partition gathered published what the span topic was given.
const coveredHeader = "ktrace-covered"

func coveredAt(upTo int64) kgo.RecordHeader {
	return kgo.RecordHeader{Key: coveredHeader, Value: strconv.AppendInt(nil, upTo, 10)}
}

// coveredOf reads a record's coveredHeader (ok false: none, or not
// readable).
func coveredOf(r *kgo.Record) (time.Time, bool) {
	for _, h := range r.Headers {
		if h.Key == coveredHeader {
			t, err := strconv.ParseInt(string(h.Value), 10, 64)
			return time.Unix(0, t), err == nil && t > 0
		}
	}
	return time.Time{}, false
}

// markKey is the key of partition p's marks; the keys of its parts start
// with it (segmentKey).
func markKey(p int32) []byte { return fmt.Appendf(nil, "p%05d", p) }

// gatheredOf is the partition of the topic gathered that a record of the
// pairs topic came from.
func gatheredOf(key []byte) (int32, bool) {
	if len(key) < 6 || key[0] != 'p' {
		return 0, false
	}
	p, err := strconv.Atoi(string(key[1:6]))
	return int32(p), err == nil
}

// pairParts writes the pairing parts of a segment's partial as records
// of the pairs topic, keyed like the segment's result.
func (m *member) pairParts(key []byte, parts []engine.PairingPart) []*kgo.Record {
	var recs []*kgo.Record
	for k, part := range parts {
		if part.Data != nil {
			recs = append(recs, cut(&kgo.Record{Topic: PairsTopic(m.cfg.Group), Partition: int32(k), Key: key, Value: part.Data,
				Headers: []kgo.RecordHeader{{Key: startsHeader, Value: fmt.Appendf(nil, "%d:%d", part.From, part.To)}}})...)
		}
	}
	return recs
}

// startsHeader names the header of a part's record that says when its
// earliest and latest spans started (Unix nanoseconds, "FROM:TO").
const startsHeader = "ktrace-starts"

// startsOf reads a part record's startsHeader (ok false: none, or not
// readable).
func startsOf(r *kgo.Record) (from, to int64, ok bool) {
	for _, h := range r.Headers {
		if h.Key == startsHeader {
			a, b, found := strings.Cut(string(h.Value), ":")
			if !found {
				return 0, 0, false
			}
			from, err1 := strconv.ParseInt(a, 10, 64)
			to, err2 := strconv.ParseInt(b, 10, 64)
			return from, to, err1 == nil && err2 == nil && from <= to
		}
	}
	return 0, 0, false
}

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

// outages are the times Kafka did not answer the member.
type outages struct {
	since time.Time // of the one going on (zero: none)
	past  [][2]time.Time
}

// note says whether Kafka answers at now.
func (o *outages) note(down bool, now time.Time) {
	switch {
	case down && o.since.IsZero():
		o.since = now
	case !down && !o.since.IsZero():
		o.past = append(o.past, [2]time.Time{o.since, now})
		o.since = time.Time{}
		if len(o.past) > 100 {
			o.past = o.past[1:]
		}
	}
}

// between is how long Kafka answered from a to b.
func (o *outages) between(a, b time.Time) time.Duration {
	d := b.Sub(a)
	overlap := func(from, to time.Time) {
		if from.Before(a) {
			from = a
		}
		if to.After(b) {
			to = b
		}
		if to.After(from) {
			d -= to.Sub(from)
		}
	}
	for _, o := range o.past {
		overlap(o[0], o[1])
	}
	if !o.since.IsZero() {
		overlap(o.since, b)
	}
	return d
}

// add holds a record of the pairs topic (called with mu held): a part, or
// a mark, which says up to when its partition gathered published what the
// span topic was given.
func (pr *pairs) add(r *kgo.Record, judged bool) {
	if g, ok := gatheredOf(r.Key); ok {
		if upTo, ok := coveredOf(r); ok {
			said := pr.said[r.Partition]
			if said == nil {
				said = map[int32]time.Time{}
				pr.said[r.Partition] = said
			}
			if upTo.After(said[g]) {
				said[g] = upTo
			}
		}
	}
	if of, ok := pieceOf(string(r.Key)); ok {
		pr.addPiece(r, of)
		return
	}
	if len(r.Value) > 0 {
		// A copy: the value is a slice of the whole fetched batch.
		h := heldPart{offset: r.Offset, next: r.Offset + 1, at: r.Timestamp, data: bytes.Clone(r.Value), judged: judged}
		if judged {
			h.judgedAt = time.Now()
		}
		h.from, h.to, h.timed = startsOf(r)
		if j, err := joinOf(r); j != nil && err == nil {
			h.join, h.key, h.data = j, string(r.Key), nil
		}
		pr.held[r.Partition] = append(pr.held[r.Partition], h)
	}
}

// addPiece adds r, a piece after the first of the part under key of, to
// that part (called with mu held); a piece whose part is not held (read
// from past its first record) is let go.
func (pr *pairs) addPiece(r *kgo.Record, of string) {
	held := pr.held[r.Partition]
	for i := len(held) - 1; i >= 0; i-- {
		h := &held[i]
		if h.join == nil || h.key != of {
			continue
		}
		done, err := h.join.add(r.Value)
		h.next = r.Offset + 1
		if done {
			if err == nil {
				h.data = h.join.data
			}
			h.join = nil
		}
		return
	}
}

// saidSince is the earliest time up to which every one of n partitions
// gathered said, on partition p, it published what the span topic was
// given (zero: one has not). A
// partition gathered that said so and is beyond n (the topic gathered
// has grown since the member started) counts too, with those before it.
func (pr *pairs) saidSince(p int32, n int) time.Time {
	for g := range pr.said[p] {
		n = max(n, int(g)+1)
	}
	var earliest time.Time
	for g := range int32(n) {
		t, ok := pr.said[p][g]
		if !ok {
			return time.Time{}
		}
		if earliest.IsZero() || t.Before(earliest) {
			earliest = t
		}
	}
	return earliest
}

// judged marks the parts at offsets of partition p judged (at now), and
// lets go of the judged parts no part still to judge, or still to be
// published, can pair with: whose spans started keep before the earliest
// of those (or, none left, the latest span held; and before covered,
// since when the partitions gathered may still publish parts — zero:
// any time); and, whatever their spans' times say, those judged long
// ago (old). Span times are the senders' clocks: spans whose times do
// not move on (a stuck clock, data sent again) would otherwise be held
// for ever.
func (pr *pairs) judged(p int32, offsets []int64, now time.Time, keep time.Duration, covered time.Time, old func(judgedAt time.Time) bool) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	held := pr.held[p]
	var horizon int64
	waiting, any := false, false
	for i := range held {
		h := &held[i]
		if _, ok := slices.BinarySearch(offsets, h.offset); ok {
			h.judged, h.judgedAt = true, now
		}
		switch {
		case !h.timed:
		case !h.judged && (!waiting || h.from < horizon):
			horizon, waiting = h.from, true
		case !waiting && (!any || h.to > horizon):
			horizon = h.to
		}
		any = any || h.timed
	}
	// Unknown up to when the partitions published, any part may still
	// come: none is let go by its spans' times.
	byTimes := !covered.IsZero()
	horizon = min(horizon, covered.UnixNano())
	kept := held[:0]
	for _, h := range held {
		gone := h.judged && (byTimes && h.timed && h.to < horizon-keep.Nanoseconds() || old(h.judgedAt))
		if !gone {
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
			delete(pr.last, p)
			delete(pr.said, p)
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

// pairing cuts r's partial for the pairs topic: r.local is what its own
// traces count, r.pairs the parts that pair across traces (for a segment
// published again, without what went with it before; r.localBase is then
// what its own traces counted before).
func (m *member) pairing(r *result) error {
	var base *engine.Partial
	if r.again {
		base = r.base
	}
	local, parts, err := r.part.Pairing(m.pairKeys, base)
	if err != nil {
		return err
	}
	r.local = local
	if base != nil {
		if r.localBase, _, err = base.Pairing(m.pairKeys, nil); err != nil {
			return err
		}
	}
	r.pairs = m.pairParts(r.rec.Key, parts)
	return nil
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

// maxKnownEdges bounds what a member learns of the whole set's graph:
// its nodes and edges come from names inside the traces, and a service
// that puts an ID in a name would otherwise grow it, and the copy each
// segment's count merges (knownFacts), without end. Real graphs are far
// smaller.
const maxKnownEdges = 100_000

// learn adds facts to what the member knows of the whole set, until that
// holds maxKnownEdges edges: past them it learns no more (and says so
// once), and breaks that depend on the whole set are judged with what it
// knew then and each segment's own traces.
func (m *member) learn(facts *engine.Partial) {
	m.knownMu.Lock()
	defer m.knownMu.Unlock()
	switch {
	case m.knownFull:
		return
	case m.known == nil:
		m.known = facts
	default:
		if err := m.known.Merge(facts); err != nil {
			m.log.Printf("learning the set's edges: %v", err)
		}
		// A merged partial keeps what each part brought along (their
		// lists, their edges' logs): the facts alone, made again, stay
		// the size of the graph.
		m.known = m.known.Facts()
	}
	if _, edges := m.known.Size(); edges >= m.maxKnown {
		m.knownFull = true
		m.log.Printf("the set's graph has %d edges: past %d, this member learns no new ones (breaks that depend on the whole set are judged with what it knows now; the results are not affected)",
			edges, m.maxKnown)
	}
}
