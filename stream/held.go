// The pairs topic's parts a member holds, and when Kafka did not answer.

package stream

import (
	"bytes"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

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
