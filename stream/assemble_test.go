package stream

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/trace"
)

// TestAssembleCut: records of interleaved traces come in; traces complete
// when idle; a cut publishes only traces every record before whose last is
// covered, and commits an offset from which a restart reads no published
// trace again and misses no unpublished one — on random interleavings,
// with spans written twice and spans that come after their trace was
// published (late: counted, kept with the segment the trace went into,
// whose remembered offsets cover every record of its traces).
func TestAssembleCut(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Unix(0, 0)
	for round := 0; round < 300; round++ {
		a := newAssembler(0)
		type rec struct {
			tid  trace.TraceID
			span trace.SpanID
		}
		var log []rec
		published := map[trace.TraceID]int{}
		publishedAt := map[trace.TraceID]int{} // the log's length when it was published: later records are late
		var commits []int64
		lateSpans := 0
		now := t0
		for step := 0; step < 60; step++ {
			now = now.Add(time.Duration(rng.IntN(3)) * time.Second)
			tid := trace.TraceID{Low: uint64(1 + rng.IntN(8) + step/10*8)}
			r := rec{tid, trace.SpanID(1 + rng.IntN(5))}
			log = append(log, r)
			lateSpans += a.add(int64(len(log)-1), []engine.TracePiece{{ID: r.tid, Spans: 1, Data: []byte{byte(r.span)}}}, now)
			if rng.IntN(4) == 0 {
				a.complete(now.Add(-2*time.Second), time.Hour)
				out, commit := a.cut(time.Time{})
				for _, tr := range out {
					published[tr.id]++
					publishedAt[tr.id] = len(log)
					// Every record of a published trace is before the commit.
					for off, r := range log {
						if r.tid == tr.id && int64(off) >= commit {
							t.Fatalf("round %d: trace %v published with record %d at or past the commit %d", round, tr.id, off, commit)
						}
					}
				}
				if n := len(commits); n > 0 && commit < commits[n-1] {
					t.Fatalf("round %d: commit went back from %d to %d", round, commits[n-1], commit)
				}
				commits = append(commits, commit)
				if rng.IntN(2) == 0 { // published: the next segment starts at the commit
					a.committed = commit
				}
				// Every trace with a record at or past the commit is unpublished.
				for off := commit; off < int64(len(log)); off++ {
					if at, ok := publishedAt[log[off].tid]; ok && off < int64(at) && !stillHeld(a, log[off].tid) {
						// it was published, and a restart from commit would read it again
						t.Fatalf("round %d: trace %v published, yet record %d past the commit %d", round, log[off].tid, off, commit)
					}
				}
			}
		}
		for id, n := range published {
			if n > 1 {
				t.Fatalf("round %d: trace %v published %d times", round, id, n)
			}
			start := a.published[id]
			seg := a.segments[start]
			if !slices.Contains(seg.traces, id) {
				t.Fatalf("round %d: trace %v is not among the traces of its segment at %d", round, id, start)
			}
			for off, r := range log {
				if r.tid == id && off < publishedAt[id] && (int64(off) < max(seg.first, start) || int64(off) > seg.last) {
					t.Fatalf("round %d: trace %v has record %d outside its segment at %d (%d to %d)", round, id, off, start, seg.first, seg.last)
				}
			}
		}
		kept, reopened := 0, 0
		for _, seg := range a.segments {
			kept += len(seg.lateAt) // a span a record
			if len(seg.lateAt) > 0 && !seg.dirty() {
				t.Fatalf("round %d: a segment with late spans is not marked to be published again", round)
			}
		}
		for off, r := range log {
			if at, ok := publishedAt[r.tid]; ok && off >= at {
				reopened++ // late for a published trace (written twice or not)
			}
		}
		if kept > lateSpans || kept != reopened {
			t.Fatalf("round %d: %d late spans kept with their segments, %d counted late, %d records came after their trace was published", round, kept, lateSpans, reopened)
		}
	}
}

// stillHeld reports whether the assembler holds trace id open again.
func stillHeld(a *assembler, id trace.TraceID) bool {
	if a.open[id] != nil {
		return true
	}
	for _, p := range a.done {
		if p.id == id {
			return true
		}
	}
	return false
}

// TestAssemblerAgain: read again from the end of its last published
// segment, an assembler still knows the spans that come for the traces
// of published segments as late, and takes those of the segment it was
// gathering, dropped, as new.
func TestAssemblerAgain(t *testing.T) {
	span := func(tid uint64, sid trace.SpanID) []engine.TracePiece {
		return []engine.TracePiece{{ID: trace.TraceID{Low: tid}, Spans: 1, Data: []byte{byte(sid)}}}
	}
	t0 := time.Unix(0, 0)
	a := newAssembler(0)
	a.add(0, span(1, 1), t0)
	a.add(1, span(1, 2), t0)
	a.complete(t0.Add(time.Second), time.Hour)
	if out, commit := a.cut(time.Time{}); len(out) != 1 || commit != 2 {
		t.Fatalf("cut %d traces up to %d", len(out), commit)
	}
	a.committed = 2 // published
	a.add(2, span(2, 1), t0)
	a.complete(t0.Add(time.Second), time.Hour)
	if out, _ := a.cut(time.Time{}); len(out) != 1 { // analysed into the segment at 2, not published
		t.Fatalf("cut %d traces", len(out))
	}
	b := a.again(2)
	if late := b.add(2, span(2, 1), t0); late != 0 {
		t.Errorf("a span of the dropped segment's trace counted late (%d)", late)
	}
	if late := b.add(3, span(1, 3), t0); late != 1 || !slices.Equal(b.segments[0].lateAt, []int64{3}) || !b.segments[0].dirty() {
		t.Errorf("a span of a published trace: %d late, its segment has late records at %v", late, b.segments[0].lateAt)
	}
	if b.next != 4 || b.committed != 2 || len(b.open) != 1 {
		t.Errorf("read again: next %d, committed %d, %d open", b.next, b.committed, len(b.open))
	}
}

// TestAssemblerKnows: a partition's next owner, given the segments its
// last owner published through their records, takes spans for their
// traces as late, in the segment each went into, and a segment at or past
// its committed offset (not published) as not known.
func TestAssemblerKnows(t *testing.T) {
	span := func(tid uint64, sid trace.SpanID) []engine.TracePiece {
		return []engine.TracePiece{{ID: trace.TraceID{Low: tid}, Spans: 1, Data: []byte{byte(sid)}}}
	}
	t0 := time.Unix(0, 0)
	a := newAssembler(0)
	for i, tid := range []uint64{1, 2, 1, 2} {
		a.add(int64(i), span(tid, trace.SpanID(i+1)), t0)
	}
	a.complete(t0.Add(time.Second), time.Hour)
	a.cut(time.Time{})
	a.committed = 4 // published: the segment at 0
	a.add(4, span(3, 1), t0)
	a.add(5, span(1, 9), t0) // late
	a.complete(t0.Add(time.Second), time.Hour)
	a.cut(time.Time{}) // trace 3 analysed into the segment at 4, not published
	records := map[int64]*segment{}
	for start, s := range a.segments {
		got, back, err := unmarshalSegment(s.marshal(start))
		if err != nil || got != start {
			t.Fatalf("segment at %d read back as at %d: %v", start, got, err)
		}
		records[start] = back
	}
	if s := records[0]; s.first != 0 || s.last != 3 || len(s.traces) != 2 || !slices.Equal(s.lateAt, []int64{5}) || s.dirty() {
		t.Fatalf("segment at 0 read back as %+v", *s)
	}
	b := newAssembler(4)
	b.know(records)
	if len(b.segments) != 1 || b.segments[0] == nil {
		t.Fatalf("the new owner knows segments %v, want the one at 0", b.segOrder)
	}
	if late := b.add(6, span(2, 7), t0); late != 1 || !slices.Equal(b.segments[0].lateAt, []int64{5, 6}) || !b.segments[0].dirty() {
		t.Errorf("a span of a trace published by the last owner: %d late, late records %v", late, b.segments[0].lateAt)
	}
	if late := b.add(7, span(3, 2), t0); late != 0 || b.open[trace.TraceID{Low: 3}] == nil {
		t.Errorf("a span of a trace not published: %d late", late)
	}
}

// TestSegmentRecord: a segment record reads back as written, and bytes
// that are not one give an error, never a panic.
func TestSegmentRecord(t *testing.T) {
	s := &segment{first: 10, last: 90, traces: []trace.TraceID{{High: 1, Low: 2}, {High: 3, Low: 4}}, lateAt: []int64{95, 120}}
	b := s.marshal(7)
	start, back, err := unmarshalSegment(b)
	if err != nil || start != 7 || back.first != 10 || back.last != 90 || !slices.Equal(back.traces, s.traces) || !slices.Equal(back.lateAt, s.lateAt) || back.settled != 2 {
		t.Fatalf("read back as %d %+v, %v", start, back, err)
	}
	for i := range b {
		if _, _, err := unmarshalSegment(b[:i]); err == nil {
			t.Errorf("the first %d bytes read as a segment", i)
		}
	}
	for _, bad := range [][]byte{nil, {2}, append(append([]byte{}, b...), 0), {1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}} {
		if _, _, err := unmarshalSegment(bad); err == nil {
			t.Errorf("%x read as a segment", bad)
		}
	}
}

// TestDistinct: a span whose ID came before is dropped, the order kept,
// for short traces and long ones.
func TestDistinct(t *testing.T) {
	for _, n := range []int{3, 200} {
		var spans []trace.Span
		for i := range n {
			spans = append(spans, trace.Span{SpanID: trace.SpanID(i + 1), Operation: "first"})
		}
		with := append(append([]trace.Span(nil), spans...), trace.Span{SpanID: 2, Operation: "again"}, trace.Span{SpanID: trace.SpanID(n + 1)})
		got := distinct(with)
		want := append(spans, trace.Span{SpanID: trace.SpanID(n + 1)})
		if len(got) != len(want) {
			t.Fatalf("%d spans: %d left, want %d", n, len(got), len(want))
		}
		for i := range want {
			if got[i].SpanID != want[i].SpanID || got[i].Operation != want[i].Operation {
				t.Fatalf("%d spans: span %d is %v %q, want %v %q", n, i, got[i].SpanID, got[i].Operation, want[i].SpanID, want[i].Operation)
			}
		}
	}
}

// TestDecodeTrace: a trace gathered decodes once complete, its spans
// once each though a record came twice; pieces that hold another trace
// than their key says (a record of the spans topic not written by the
// re-keying) are refused, not analysed under the key's trace.
func TestDecodeTrace(t *testing.T) {
	ts := synth.Generate(synth.Config{Traces: 2, SpansPerTrace: 6, Seed: 1})
	one, err := file.MarshalOTLPProto(ts[:1])
	if err != nil {
		t.Fatal(err)
	}
	m := &member{}
	got, err := m.decodeTrace(&partial{id: ts[0].ID, data: append(append([]byte(nil), one...), one...)})
	if err != nil || got.ID != ts[0].ID || len(got.Spans) != len(ts[0].Spans) {
		t.Fatalf("a trace whose record came twice: %d spans, %v; want %d", len(got.Spans), err, len(ts[0].Spans))
	}
	if _, err := m.decodeTrace(&partial{id: ts[1].ID, data: one}); err == nil {
		t.Fatal("a piece of another trace than its key's decoded")
	}
}

// TestDecodeAll: traces gathered decode as one message, in their order;
// when one of them is not what its key says, the batch is refused (and
// decoded trace by trace, so that only that one is left out).
func TestDecodeAll(t *testing.T) {
	ts := synth.Generate(synth.Config{Traces: 3, SpansPerTrace: 5, Seed: 2})
	var gathered []*partial
	for i := range ts {
		data, err := file.MarshalOTLPProto(ts[i : i+1])
		if err != nil {
			t.Fatal(err)
		}
		gathered = append(gathered, &partial{id: ts[i].ID, data: data})
	}
	m := &member{}
	got := m.decodeAll(gathered)
	if len(got) != len(ts) {
		t.Fatalf("decoded %d traces, want %d", len(got), len(ts))
	}
	for i := range ts {
		if got[i].ID != ts[i].ID || len(got[i].Spans) != len(ts[i].Spans) {
			t.Fatalf("trace %d: %s with %d spans, want %s with %d", i, got[i].ID, len(got[i].Spans), ts[i].ID, len(ts[i].Spans))
		}
	}
	gathered[1].id = ts[0].ID
	if got := m.decodeAll(gathered); got != nil {
		t.Fatal("a batch with a piece of another trace than its key's decoded")
	}
}

// TestAssemblerBounds: what an assembler remembers of published segments
// stays bounded whatever their sizes: at most maxSegments segments, and
// no more old ones than the newer ones' traces leave room for under
// maxPublished.
func TestAssemblerBounds(t *testing.T) {
	for _, c := range []struct{ segments, traces int }{{3000, 1}, {20, 20000}} {
		a := newAssembler(0)
		id := uint64(0)
		for seg := range c.segments {
			a.committed = int64(seg) * int64(c.traces)
			for range c.traces {
				id++
				a.remember(trace.TraceID{Low: id}, int64(id), int64(id), true)
			}
		}
		held := 0
		for _, s := range a.segments {
			held += len(s.traces)
		}
		newest := a.segments[a.segOrder[len(a.segOrder)-1]]
		if len(a.segments) != len(a.segOrder) || len(a.segments) > maxSegments || held != a.held ||
			held-len(a.segments[a.segOrder[0]].traces) >= maxPublished || newest == nil || len(a.published) > maxPublished {
			t.Errorf("%d segments of %d traces: %d segments remembered holding %d traces (counted %d), %d traces noted",
				c.segments, c.traces, len(a.segments), held, a.held, len(a.published))
		}
	}
}

// TestAssemblerComplete: complete moves exactly the open traces last
// seen before the cutoff to done, oldest first, however often their
// spans came; the counts of open and complete spans follow every add,
// completion, reopening and cut.
func TestAssemblerComplete(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	t0 := time.Unix(0, 0)
	for round := 0; round < 200; round++ {
		a := newAssembler(0)
		now := t0
		for step := 0; step < 80; step++ {
			now = now.Add(time.Duration(rng.IntN(3)) * 100 * time.Millisecond)
			var pieces []engine.TracePiece
			for range 1 + rng.IntN(3) {
				pieces = append(pieces, engine.TracePiece{ID: trace.TraceID{Low: uint64(1 + rng.IntN(12))}, Spans: 1 + rng.IntN(4), Data: []byte{1}})
			}
			a.add(int64(step), pieces, now)
			switch rng.IntN(5) {
			case 0:
				cutoff := now.Add(-time.Duration(rng.IntN(6)) * 100 * time.Millisecond)
				var want []trace.TraceID
				for id, p := range a.open {
					if p.lastSeen.Before(cutoff) {
						want = append(want, id)
					}
				}
				before := len(a.done)
				a.complete(cutoff, time.Hour)
				var got []trace.TraceID
				for i, p := range a.done[before:] {
					got = append(got, p.id)
					if i > 0 && p.lastSeen.Before(a.done[before+i-1].lastSeen) {
						t.Fatalf("round %d: completed out of the order last seen", round)
					}
				}
				slices.SortFunc(want, func(x, y trace.TraceID) int { return int(x.Low) - int(y.Low) })
				slices.SortFunc(got, func(x, y trace.TraceID) int { return int(x.Low) - int(y.Low) })
				if !slices.Equal(got, want) {
					t.Fatalf("round %d, step %d: completed %v, want %v", round, step, got, want)
				}
			case 1:
				a.cut(time.Time{})
			}
			open, done := 0, 0
			for _, p := range a.open {
				open += p.spans
			}
			for _, p := range a.done {
				done += p.spans
			}
			if len(a.doneByID) != len(a.done) {
				t.Fatalf("round %d, step %d: %d traces marked complete, %d held", round, step, len(a.doneByID), len(a.done))
			}
			for _, p := range a.done {
				if a.doneByID[p.id] != p {
					t.Fatalf("round %d, step %d: trace %v held complete, not marked", round, step, p.id)
				}
			}
			if a.openSpans != open || a.doneSpans != done || a.pending() != open+done {
				t.Fatalf("round %d, step %d: counted %d open and %d complete spans, hold %d and %d", round, step, a.openSpans, a.doneSpans, open, done)
			}
		}
	}
}

// BenchmarkAssemblerPoll: what the member does for an assembler after
// each poll — add a poll's pieces, complete the idle traces, count the
// pending spans — with 50,000 traces open (a partition at about 200,000
// spans/s with a 5 s trace-idle time), of which the poll completes as
// many as it opens.
func BenchmarkAssemblerPoll(b *testing.B) {
	a := newAssembler(0)
	t0 := time.Unix(0, 0)
	const open, perPoll = 50000, 20
	next := uint64(1)
	for ; next <= open; next++ {
		a.add(int64(next), []engine.TracePiece{{ID: trace.TraceID{Low: next}, Spans: 20, Data: []byte{1}}}, t0.Add(time.Duration(next)*time.Microsecond))
	}
	off := int64(next)
	for b.Loop() {
		var pieces []engine.TracePiece
		for range perPoll {
			pieces = append(pieces, engine.TracePiece{ID: trace.TraceID{Low: next}, Spans: 20, Data: []byte{1}})
			next++
		}
		now := t0.Add(time.Duration(next) * time.Microsecond)
		a.add(off, pieces, now)
		off++
		a.complete(now.Add(-open*time.Microsecond), time.Hour)
		_ = a.pending()
		a.done = a.done[:0]
		a.doneSpans = 0
		clear(a.doneByID)
	}
}

// TestAssembleNeverQuiet: a trace whose spans never stop coming (a span
// every second under one ID, as a consumer loop that never resets its
// context sends) is cut once open for the max age: the traces after its
// first record are still published within the max age and the idle time,
// what is held stays bounded, its pieces are published one after another
// (none twice), its later spans are never taken as late, and every
// published trace's records lie before the commit.
func TestAssembleNeverQuiet(t *testing.T) {
	const idle, maxAge = 2 * time.Second, 20 * time.Second
	a := newAssembler(0)
	forever := trace.TraceID{Low: 1}
	var log []trace.TraceID
	publishedAt := map[trace.TraceID]int{} // step
	pieces, held := 0, 0
	t0 := time.Unix(0, 0)
	const steps = 600 // ten minutes, a second a step
	for step := range steps {
		now := t0.Add(time.Duration(step) * time.Second)
		other := trace.TraceID{Low: uint64(100 + step)} // a trace of one record a second
		for _, id := range []trace.TraceID{forever, other} {
			log = append(log, id)
			if late := a.add(int64(len(log)-1), []engine.TracePiece{{ID: id, Spans: 1, Data: []byte{1}}}, now); late != 0 {
				t.Fatalf("step %d: %d late spans", step, late)
			}
		}
		a.complete(now.Add(-idle), time.Hour)
		out, commit := a.cut(now.Add(-maxAge))
		for _, p := range out {
			for off := p.first; off <= p.last; off++ {
				if off >= commit {
					t.Fatalf("step %d: trace %v published with record %d at or past the commit %d", step, p.id, off, commit)
				}
			}
			if p.id == forever {
				if !p.cutOpen || p.spans > int(maxAge/time.Second)+2 {
					t.Fatalf("step %d: the endless trace's piece of %d spans (cut open: %v)", step, p.spans, p.cutOpen)
				}
				pieces++
				continue
			}
			if _, again := publishedAt[p.id]; again {
				t.Fatalf("step %d: trace %v published twice", step, p.id)
			}
			publishedAt[p.id] = step
		}
		held = max(held, a.pending())
	}
	for step := range steps - int((maxAge+idle)/time.Second) - 5 {
		at, ok := publishedAt[trace.TraceID{Low: uint64(100 + step)}]
		if !ok || time.Duration(at-step)*time.Second > maxAge+idle+3*time.Second {
			t.Fatalf("the trace of step %d published at step %d (%v): want within the max age and the idle time", step, at, ok)
		}
	}
	if want := steps / int((maxAge+3*time.Second)/time.Second); pieces < want-1 { // a piece a max age, and the seconds until it is cut
		t.Errorf("the endless trace was published in %d pieces, want about %d", pieces, want)
	}
	if limit := 3 * int((maxAge+idle)/time.Second); held > limit {
		t.Errorf("held up to %d spans, want at most %d", held, limit)
	}
}

// TestAssembleLateBounded: a segment takes late spans for one trace from
// at most maxLateRecords records; spans coming after for that trace make a
// trace of their own, published apart, while late spans for its other
// traces are still taken.
func TestAssembleLateBounded(t *testing.T) {
	a := newAssembler(0)
	id := trace.TraceID{Low: 7}
	t0 := time.Unix(0, 0)
	a.add(0, []engine.TracePiece{{ID: id, Spans: 1, Data: []byte{1}}}, t0)
	a.complete(t0.Add(time.Second), time.Hour)
	if out, _ := a.cut(time.Time{}); len(out) != 1 {
		t.Fatalf("published %d traces, want 1", len(out))
	}
	late := 0
	for off := int64(1); off <= maxLateRecords+10; off++ {
		late += a.add(off, []engine.TracePiece{{ID: id, Spans: 1, Data: []byte{1}}}, t0.Add(time.Duration(off)*time.Millisecond))
	}
	if s := a.segments[0]; late != maxLateRecords || len(s.lateAt) != maxLateRecords {
		t.Fatalf("%d late spans, the segment took %d records, want %d", late, len(s.lateAt), maxLateRecords)
	}
	if p := a.open[id]; p == nil || p.spans != 10 || p.first != maxLateRecords+1 {
		t.Fatalf("the spans past the bound: %+v, want a trace of their own of 10 spans", p)
	}
	a.remember(trace.TraceID{Low: 8}, 0, 0, true) // another trace of the segment at 0
	if late := a.add(maxLateRecords+11, []engine.TracePiece{{ID: trace.TraceID{Low: 8}, Spans: 2, Data: []byte{1}}}, t0); late != 2 {
		t.Fatalf("late spans of another trace of the segment: %d taken, want 2", late)
	}
}

// TestAssembleCutAtMost: a cut bounded to a number of traces takes the
// traces whose records come first, sets the commit point before the rest,
// and takes all the traces of one record together, so that a record of
// more traces than the bound still moves the partition on.
func TestAssembleCutAtMost(t *testing.T) {
	piece := func(tid uint64) engine.TracePiece {
		return engine.TracePiece{ID: trace.TraceID{Low: tid}, Spans: 1, Data: []byte{1}}
	}
	t0 := time.Unix(0, 0)
	a := newAssembler(0)
	// Record 0 holds traces 1 to 4; records 1 to 6 a trace each (5 to 10).
	a.add(0, []engine.TracePiece{piece(1), piece(2), piece(3), piece(4)}, t0)
	for off := int64(1); off <= 6; off++ {
		a.add(off, []engine.TracePiece{piece(uint64(off) + 4)}, t0)
	}
	a.complete(t0.Add(time.Second), time.Hour)
	want := []struct {
		traces int
		commit int64
	}{{4, 1}, {3, 4}, {3, 7}} // at most 3, but record 0's four together
	for i, w := range want {
		out, commit := a.cutAtMost(time.Time{}, 3)
		if len(out) != w.traces || commit != w.commit {
			t.Fatalf("cut %d: %d traces, commit at %d; want %d, at %d", i, len(out), commit, w.traces, w.commit)
		}
		for _, p := range out {
			if p.last >= commit {
				t.Errorf("cut %d: trace %s's last record %d is not before the commit point %d", i, p.id, p.last, commit)
			}
		}
	}
	if out, commit := a.cutAtMost(time.Time{}, 3); len(out) != 0 || commit != 7 {
		t.Fatalf("after all: %d traces, commit at %d", len(out), commit)
	}
}

// TestAssemblerRecordTime: a trace is complete once the partition's
// record time has moved the idle time past its last span, whatever the
// wall clock says; a span that came later in record time keeps its trace
// open, and a record that says an earlier time does not move the clock
// back.
func TestAssemblerRecordTime(t *testing.T) {
	span := func(tid uint64, sid byte) []engine.TracePiece {
		return []engine.TracePiece{{ID: trace.TraceID{Low: tid}, Spans: 1, Data: []byte{sid}}}
	}
	t0 := time.Unix(1000, 0)
	idle := 5 * time.Second
	a := newAssembler(0)
	a.tick(t0)
	a.add(0, span(1, 1), t0)
	a.add(1, span(2, 1), t0)
	a.tick(t0.Add(3 * time.Second))
	a.add(2, span(1, 2), t0)
	a.tick(t0.Add(6 * time.Second))
	a.add(3, span(3, 1), t0)
	done := func() []uint64 {
		var ids []uint64
		for _, p := range a.done {
			ids = append(ids, p.id.Low)
		}
		return ids
	}
	a.complete(t0.Add(-time.Second), idle) // the wall clock: nothing idle
	if got := done(); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("complete after 6 s of record time: traces %v, want [2]", got)
	}
	a.tick(t0.Add(2 * time.Second)) // back in time: no move
	a.complete(t0.Add(-time.Second), idle)
	if got := done(); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("complete after a record of an earlier time: traces %v, want [2]", got)
	}
	a.tick(t0.Add(9 * time.Second))
	a.complete(t0.Add(-time.Second), idle)
	if got := done(); !slices.Equal(got, []uint64{2, 1}) {
		t.Fatalf("complete after 9 s of record time: traces %v, want [2 1]", got)
	}
	if a.pending() != 4 || len(a.open) != 1 {
		t.Fatalf("%d spans pending, %d traces open; want 4 and 1", a.pending(), len(a.open))
	}
}
