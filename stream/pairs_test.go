package stream

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/trace"
)

// TestPairsLetGo: judged parts are let go once no part still to judge,
// nor still to be published (spans written since what every partition
// gathered said it published), can pair with them by their spans' times,
// and, whatever those times say, three waits after they were judged;
// parts still to judge are kept.
func TestPairsLetGo(t *testing.T) {
	now := time.Now()
	wait := time.Minute
	old := func(judgedAt time.Time) bool { return now.Sub(judgedAt) > contextWaits*wait }
	span := now.UnixNano()
	part := func(offset int64, from int64, judgedAt time.Time) heldPart {
		return heldPart{offset: offset, at: now.Add(-wait), from: from, to: from, timed: true, judged: !judgedAt.IsZero(), judgedAt: judgedAt, data: []byte{1}}
	}
	still := time.Time{}
	cases := []struct {
		name    string
		held    []heldPart
		judge   []int64
		covered time.Time
		kept    []int64
	}{
		{"spans that never move on, judged long ago", []heldPart{
			part(0, span, now.Add(-10*wait)),
			part(1, span, now.Add(-10*wait)),
			part(2, span, still),
		}, nil, now, []int64{2}},
		{"spans long before the earliest still to judge", []heldPart{
			part(0, span-int64(3*wait), still),
			part(1, span, still),
			part(2, span, still),
		}, []int64{0, 1}, now, []int64{1, 2}},
		{"spans long before the latest, none still to judge", []heldPart{
			part(0, span-int64(3*wait), still),
			part(1, span, still),
		}, []int64{0, 1}, now, []int64{1}},
		{"spans not long before what the partitions have not all published", []heldPart{
			part(0, span-int64(3*wait), still),
			part(1, span, still),
		}, []int64{0, 1}, now.Add(-2 * wait), []int64{0, 1}},
		{"no partition said what it published", []heldPart{
			part(0, span-int64(30*wait), still),
			part(1, span, still),
		}, []int64{0, 1}, time.Time{}, []int64{0, 1}},
		{"a part still to judge is kept however old", []heldPart{
			part(0, span, now.Add(-10*wait)),
			part(1, span, still),
		}, nil, now, []int64{1}},
	}
	for _, c := range cases {
		pr := &pairs{held: map[int32][]heldPart{0: c.held}}
		pr.judged(0, c.judge, now, 2*wait, c.covered, old)
		var kept []int64
		for _, h := range pr.held[0] {
			kept = append(kept, h.offset)
		}
		if !slices.Equal(kept, c.kept) {
			t.Errorf("%s: kept %v, want %v", c.name, kept, c.kept)
		}
	}
}

// TestPairsSaidSince: a part is judged once every partition gathered has
// said it published what it had; partitions added to the topic gathered
// since the member started count once they say so.
func TestPairsSaidSince(t *testing.T) {
	t0 := time.Now()
	pr := &pairs{said: map[int32]map[int32]time.Time{7: {0: t0.Add(2 * time.Second), 1: t0.Add(time.Second)}}}
	if got := pr.saidSince(7, 2); !got.Equal(t0.Add(time.Second)) {
		t.Errorf("both partitions said: %v, want the earlier, %v", got, t0.Add(time.Second))
	}
	if got := pr.saidSince(7, 3); !got.IsZero() {
		t.Errorf("one of three partitions silent: %v, want none", got)
	}
	pr.said[7][3] = t0
	if got := pr.saidSince(7, 2); !got.IsZero() {
		t.Errorf("partition 3, added since, said, and partition 2 did not: %v, want none", got)
	}
	pr.said[7][2] = t0.Add(3 * time.Second)
	if got := pr.saidSince(7, 2); !got.Equal(t0) {
		t.Errorf("all four said: %v, want the earliest, %v", got, t0)
	}
	if got := pr.saidSince(6, 2); !got.IsZero() {
		t.Errorf("a partition no one said anything on: %v, want none", got)
	}
}

// TestPairsCovered: a mark says up to when its partition gathered
// published what the span topic was given, the latest said counting; a
// part is held, and says nothing.
func TestPairsCovered(t *testing.T) {
	t0 := time.Now()
	pr := &pairs{held: map[int32][]heldPart{}, said: map[int32]map[int32]time.Time{}}
	pr.add(&kgo.Record{Partition: 1, Key: segmentKey(4, 100), Value: []byte("part"), Timestamp: t0}, false)
	if _, said := pr.said[1][4]; said || len(pr.held[1]) != 1 {
		t.Fatalf("a part: said %v, %d parts held; want not said, one held", pr.said[1], len(pr.held[1]))
	}
	pr.add(&kgo.Record{Partition: 1, Key: markKey(4), Value: []byte{}, Timestamp: t0.Add(time.Hour),
		Headers: []kgo.RecordHeader{coveredAt(t0.UnixNano())}}, false)
	pr.add(&kgo.Record{Partition: 1, Key: markKey(4), Value: []byte{}, Timestamp: t0.Add(time.Hour),
		Headers: []kgo.RecordHeader{coveredAt(t0.Add(-time.Second).UnixNano())}}, false)
	if got := pr.said[1][4]; !got.Equal(t0) {
		t.Fatalf("partition 4 said up to %v, then up to a second before: %v, want %v", t0, got, t0)
	}
	if len(pr.held[1]) != 1 {
		t.Errorf("%d parts held, want 1 (a mark is not a part)", len(pr.held[1]))
	}
	pr.add(&kgo.Record{Partition: 1, Key: markKey(4), Value: []byte{}, Headers: []kgo.RecordHeader{{Key: coveredHeader, Value: []byte("soon")}}}, false)
	if got := pr.said[1][4]; !got.Equal(t0) {
		t.Errorf("a mark that cannot be read moved partition 4 to %v", got)
	}
}

// TestLearnBounded: what a member learns of the whole set's graph stops
// growing at its bound (names inside the traces could grow it without
// end), keeps what it had, and says so once.
func TestLearnBounded(t *testing.T) {
	var logs bytes.Buffer
	m := &member{log: log.New(&logs, "", 0), maxKnown: 3}
	facts := func(from, to int) *engine.Partial {
		var ts []trace.Trace
		for i := from; i < to; i++ {
			id := trace.TraceID{Low: uint64(i + 1)}
			ts = append(ts, trace.Trace{ID: id, Spans: []trace.Span{
				{TraceID: id, SpanID: 1, Kind: trace.KindClient, Resource: &trace.Resource{Service: fmt.Sprintf("client-%d", i)}, Start: time.Unix(1, 0), Duration: time.Millisecond},
				{TraceID: id, SpanID: 2, Kind: trace.KindServer, Resource: &trace.Resource{Service: fmt.Sprintf("server-%d", i)}, Start: time.Unix(1, 0), Duration: time.Millisecond,
					Refs: []trace.Ref{{Type: trace.RefParent, TraceID: id, SpanID: 1}}},
			}})
		}
		p, err := engine.Collect(context.Background(), engine.Slice(ts), engine.Options{Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		_, _, f := p.Settle()
		return f
	}
	m.learn(facts(0, 2))
	if _, e := m.knownFacts().Size(); e != 2 || m.knownFull {
		t.Fatalf("below the bound: %d edges known (full: %v), want 2", e, m.knownFull)
	}
	m.learn(facts(2, 4)) // reaches it: kept, and no more after
	m.learn(facts(4, 9))
	if _, e := m.knownFacts().Size(); e != 4 || !m.knownFull {
		t.Fatalf("past the bound: %d edges known (full: %v), want the 4 learnt when it was reached", e, m.knownFull)
	}
	if n := strings.Count(logs.String(), "learns no new ones"); n != 1 {
		t.Errorf("said %d times, want once: %q", n, logs.String())
	}
}
