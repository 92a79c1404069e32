package stream

import (
	"math/rand/v2"
	"testing"
	"time"

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
			lateSpans += a.add(int64(len(log)-1), []trace.Trace{{ID: r.tid, Spans: []trace.Span{{TraceID: r.tid, SpanID: r.span}}}}, now)
			if rng.IntN(4) == 0 {
				a.complete(now.Add(-2 * time.Second))
				out, commit := a.cut()
				for _, tr := range out {
					published[tr.ID]++
					publishedAt[tr.ID] = len(log)
					// Every record of a published trace is before the commit.
					for off, r := range log {
						if r.tid == tr.ID && int64(off) >= commit {
							t.Fatalf("round %d: trace %v published with record %d at or past the commit %d", round, tr.ID, off, commit)
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
			for off, r := range log {
				if r.tid == id && off < publishedAt[id] && (int64(off) < max(seg.first, start) || int64(off) > seg.last) {
					t.Fatalf("round %d: trace %v has record %d outside its segment at %d (%d to %d)", round, id, off, start, seg.first, seg.last)
				}
			}
		}
		kept, reopened := 0, 0
		for _, seg := range a.segments {
			kept += countSpans(seg.late)
			if len(seg.late) > 0 && !seg.dirty {
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
		if p.t.ID == id {
			return true
		}
	}
	return false
}
