package stream

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

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
				Headers: []kgo.RecordHeader{{Key: startsHeader, Value: fmt.Appendf(nil, "%d:%d", part.From, part.To)}}}, m.valueMax)...)
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
