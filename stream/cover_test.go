package stream

import (
	"maps"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/source/file"
)

// TestCoverage: a partition gathered covers a time once the segments it
// published end at or past the offset that time was reached at; later
// times only, earlier steps said again replace later ones, and a
// partition read again keeps its steps.
func TestCoverage(t *testing.T) {
	var c coverage
	if got := c.upTo(1000); got != 0 {
		t.Fatalf("no steps: up to %d, want 0", got)
	}
	c.reach(10, 100)
	c.reach(20, 200)
	c.reach(30, 150) // an earlier time: nothing new
	c.reach(40, 400)
	for _, tc := range []struct{ commit, want int64 }{{9, 0}, {10, 100}, {19, 100}, {25, 200}, {40, 400}} {
		var d coverage
		d.steps = append(d.steps, c.steps...)
		if got := d.upTo(tc.commit); got != tc.want {
			t.Errorf("published up to offset %d: covers %d, want %d", tc.commit, got, tc.want)
		}
	}
	c.reach(15, 500) // a later time, reached earlier in the partition
	if got := c.steps; len(got) != 2 || got[1] != (coverStep{15, 500}) {
		t.Errorf("steps %v, want the step at 10, then 15 up to 500", got)
	}
	again := c.again()
	if got := again.upTo(15); got != 500 {
		t.Errorf("read again: covers %d at offset 15, want 500", got)
	}
	if got := c.upTo(12); got != 100 || len(c.steps) != 2 {
		t.Errorf("up to %d with %d steps, want 100 with the steps from it on", got, len(c.steps))
	}
}

// TestCoverageMarks: re-keyed, a partition gathered covers a time once
// marks said every partition of the span topic was re-keyed up to it; a
// mark that cannot be read is an error and changes nothing.
func TestCoverageMarks(t *testing.T) {
	var c coverage
	mark := func(off int64, n int, upTo map[int32]int64) {
		t.Helper()
		if err := c.mark(off, rekeyedValue(n, upTo)); err != nil {
			t.Fatal(err)
		}
	}
	mark(5, 3, map[int32]int64{0: 100, 1: 300})
	if len(c.steps) != 0 {
		t.Fatalf("partition 2 of 3 not yet marked: steps %v, want none", c.steps)
	}
	mark(9, 3, map[int32]int64{2: 200})
	if got := c.upTo(10); got != 100 {
		t.Errorf("every partition marked (100, 300, 200): covers %d after the mark, want 100", got)
	}
	if got := c.upTo(9); got != 0 {
		t.Errorf("covers %d before the mark, want 0", got)
	}
	mark(12, 4, map[int32]int64{0: 250})
	if got := c.upTo(13); got != 100 {
		t.Errorf("a fourth partition, not yet marked: covers %d, want still 100", got)
	}
	mark(14, 4, map[int32]int64{3: 900})
	if got := c.upTo(15); got != 200 {
		t.Errorf("covers %d, want the earliest of 250, 300, 200, 900", got)
	}
	for _, bad := range []string{"", "x", "2;0=1;5=1", "2;0", "2;0=a", "-1"} {
		if err := c.mark(20, []byte(bad)); err == nil {
			t.Errorf("mark %q read", bad)
		}
	}
	n, upTo, err := parseRekeyed(rekeyedValue(6, map[int32]int64{5: 7, 0: 1}))
	if err != nil || n != 6 || !maps.Equal(upTo, map[int32]int64{0: 1, 5: 7}) {
		t.Errorf("a mark read back: %d %v %v", n, upTo, err)
	}
}

// TestRekeyMarks: the re-keying says a partition was re-keyed up to when
// it was asked where it ended, once its committed offset reaches there
// (an empty partition at once); only what moved on is news.
func TestRekeyMarks(t *testing.T) {
	r := rekeyMarks{said: map[int32]int64{}, sources: 3}
	r.ends = []endsAt{{at: 100, ends: map[int32]int64{0: 50, 1: -1}}, {at: 200, ends: map[int32]int64{0: 80, 1: -1}}}
	committed := map[int32]kgo.EpochOffset{0: {Offset: 60}}
	upTo, moved := r.reached(committed)
	if !moved || !maps.Equal(upTo, map[int32]int64{0: 100, 1: 200}) {
		t.Fatalf("reached %v (moved %v), want partition 0 up to 100, the empty 1 up to 200", upTo, moved)
	}
	if len(r.ends) != 1 {
		t.Errorf("%d answers kept, want the one not yet reached", len(r.ends))
	}
	r.said = upTo
	if _, moved := r.reached(committed); moved {
		t.Error("nothing new, yet moved")
	}
	committed[0] = kgo.EpochOffset{Offset: 80}
	if upTo, moved := r.reached(committed); !moved || upTo[0] != 200 {
		t.Errorf("reached %v (moved %v), want partition 0 up to 200", upTo, moved)
	}
}

// TestRekeyMarkHeader: re-keyed, a record of the spans topic with the
// re-keying's header is a mark and holds no spans; read by trace ID, the
// same header on a span record is the sender's, and its spans count.
func TestRekeyMarkHeader(t *testing.T) {
	ts := synth.Generate(synth.Config{Traces: 1, SpansPerTrace: 4, Seed: 1})
	data, err := file.MarshalOTLPProto(ts)
	if err != nil {
		t.Fatal(err)
	}
	r := &kgo.Record{Key: []byte(ts[0].ID.String()), Value: data,
		Headers: []kgo.RecordHeader{{Key: rekeyedHeader, Value: rekeyedValue(1, map[int32]int64{0: 1})}}}
	for _, keyed := range []bool{false, true} {
		m := &member{cfg: Config{ByTraceID: keyed, Encoding: EncodingProto}}
		pieces, err := m.gathered(r)
		if _, mark := m.rekeyMark(r); err != nil || mark == keyed || (pieceSpans(pieces) == 4) != keyed {
			t.Errorf("by trace ID %v: a mark %v, %d spans, %v", keyed, mark, pieceSpans(pieces), err)
		}
	}
}
