package stream

import (
	"cmp"
	"slices"
	"time"

	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/trace"
)

// assembler gathers the spans of the traces of one partition of the
// repartitioned span topic, where every span of a trace lands (they are
// keyed by trace ID). A trace is complete once no span of it has come for
// the idle time. What is safe to publish is bounded by offsets: a
// complete trace is published only when every record before its last one
// is covered too — none belongs to a trace still open — so that a
// consumer that starts again from the committed offset reads no published
// trace twice and loses none.
type assembler struct {
	open map[trace.TraceID]*partial
	done []*partial // complete, not yet published
	// doneByID is done by trace, so that a trace's pieces are not looked
	// for in the list.
	doneByID map[trace.TraceID]*partial
	// seen lists the open traces in the order their spans came, a trace
	// again each time: complete takes the idle ones from its front, in
	// time proportional to them, not to all open traces (it runs after
	// every poll). An entry older than its trace's lastSeen is passed
	// over.
	seen []seenAt
	// clock is the partition's record time: the latest timestamp of a
	// record read, never past the wall clock at its reading (zero: none
	// read). byRecord lists the open traces as seen does, by the record
	// time of their spans: a member that reads behind (a backlog, a
	// partition restored) completes a trace once the partition has moved
	// the idle time past its last span in record time, as it would have
	// had it read the records as they came, so that it holds a trace-idle
	// time of the backlog, not all it reads in one.
	clock    time.Time
	byRecord []seenAt
	// openSpans and doneSpans count the spans of open and of complete
	// traces.
	openSpans, doneSpans int
	next                 int64 // the offset after the last record read
	// committed is the offset a new owner would read from: the first
	// record of the segment being gathered.
	committed int64
	// restoreTo is the partition's end when it was assigned: until next
	// reaches it, the member reads again what its last owner read.
	restoreTo int64
	// cover says up to when the span topic's spans gathered here lie
	// before an offset.
	cover coverage
	// folded is the segment's complete traces analysed so far (nil:
	// none), foldedTraces and foldedSpans how many, and foldedTo the
	// offset to commit
	// once it is published.
	folded       *engine.Partial
	foldedTraces int
	foldedSpans  int
	foldedTo     int64
	// published remembers, for the traces analysed lately (at most
	// maxPublished, oldest forgotten first), the segment they went into
	// (its first offset), so that spans coming for them after (late) are
	// merged into that segment; segments remembers those segments (at
	// most maxSegments, and no more of the oldest than the newer ones'
	// traces leave room for under maxPublished), held counts their
	// traces.
	published map[trace.TraceID]int64
	order     []trace.TraceID
	segments  map[int64]*segment
	segOrder  []int64
	held      int
}

// maxPublished and maxSegments bound the analysed traces and their
// segments an assembler remembers (so memory, and what a new owner reads
// back from the segments topic). Spans that come for a trace forgotten
// are analysed as a trace of their own.
const (
	maxPublished = 1 << 16
	maxSegments  = 1024
)

// segment is a segment whose traces were analysed: where its records lie
// in the partition, so that it can be read again, its traces, and the
// records that brought late spans for them. It is what the segments
// topic keeps (segments.go), so that a partition's next owner knows it.
type segment struct {
	first, last int64 // offsets of its traces' first and last records
	traces      []trace.TraceID
	lateAt      []int64 // offsets of the records with late spans, ascending
	// lateOf counts them by trace, as this member took them (takesLate).
	lateOf map[trace.TraceID]int
	// settled is how many of lateAt the segment's published result holds.
	settled int
}

// dirty says late spans came since the segment was last published.
func (s *segment) dirty() bool { return len(s.lateAt) > s.settled }

// maxLateRecords bounds the records with late spans for one trace that
// its segment takes: each is read again whenever the segment is published
// again, and a trace whose spans never stop coming (once its partition
// moved, say) would otherwise make that reading grow without end. Past
// it, the trace's spans make a trace of their own.
const maxLateRecords = 256

// takesLate says whether the segment takes late spans for trace id.
func (s *segment) takesLate(id trace.TraceID) bool { return s.lateOf[id] < maxLateRecords }

type seenAt struct {
	id trace.TraceID
	at time.Time
}

// partial is one trace being gathered, as its records' pieces of OTLP
// protobuf one after another (pieces of a TracesData message are one
// too): it is decoded once complete, so that the spans a member holds are
// bytes the garbage collector need not look into.
type partial struct {
	id          trace.TraceID
	data        []byte
	spans       int
	first, last int64 // offsets of its first and last records
	// opened is when its first span came, lastSeen its last; lastAt is
	// the partition's record time at its last span.
	opened, lastSeen, lastAt time.Time
	// cutOpen: it was completed while still open, open too long (cut).
	cutOpen bool
}

func newAssembler(from int64) *assembler {
	return &assembler{open: map[trace.TraceID]*partial{}, doneByID: map[trace.TraceID]*partial{}, next: from, committed: from, foldedTo: from,
		published: map[trace.TraceID]int64{}, segments: map[int64]*segment{}}
}

// again is the assembler of the same partition read again from from,
// the offset its last published segment ended at: what it gathered since
// is dropped, what it remembers of the published segments is kept, so
// that spans coming for their traces are still known as late, and so is
// what it knows of the partition's coverage. Until it has read again what
// was read before, it is restoring, as a partition newly assigned is.
func (a *assembler) again(from int64) *assembler {
	n := newAssembler(from)
	n.restoreTo = max(a.next, a.restoreTo)
	n.cover = a.cover.again()
	for _, start := range a.segOrder {
		if s := a.segments[start]; s != nil && start < from {
			n.segments[start] = s
			n.segOrder = append(n.segOrder, start)
			n.held += len(s.traces)
		}
	}
	for _, id := range a.order {
		if start, ok := a.published[id]; ok && n.segments[start] != nil {
			n.published[id] = start
			n.order = append(n.order, id)
		}
	}
	return n
}

// restoring says the assembler has not yet read what its partition held
// when it was assigned.
func (a *assembler) restoring() bool { return a.next < a.restoreTo }

// add takes the pieces of one record (a piece a trace) at offset off. It
// returns how many spans came for traces already complete (late): for one
// not yet analysed, they join it; for one analysed, the record is noted
// with its segment, which is analysed again with it when it is next
// published (the member's reanalyse).
func (a *assembler) add(off int64, pieces []engine.TracePiece, now time.Time) (late int) {
	for _, f := range pieces {
		start, ok := a.published[f.ID]
		if s := a.segments[start]; ok && s != nil && s.takesLate(f.ID) {
			if n := len(s.lateAt); n == 0 || s.lateAt[n-1] < off {
				s.lateAt = append(s.lateAt, off)
			}
			if s.lateOf == nil {
				s.lateOf = map[trace.TraceID]int{}
			}
			s.lateOf[f.ID]++ // a record has a piece a trace
			late += f.Spans
			continue
		}
		p := a.open[f.ID]
		if p == nil {
			if d := a.doneByID[f.ID]; d != nil { // complete, not yet published: open again
				p = d
				a.done = removePartial(a.done, d)
				delete(a.doneByID, d.id)
				a.doneSpans -= d.spans
				a.openSpans += d.spans
				late += f.Spans
			} else {
				p = &partial{id: f.ID, first: off, opened: now}
			}
			a.open[f.ID] = p
		}
		if p.data == nil {
			// A trace's first piece is kept as the record holds it, not
			// copied (most traces have one: keyed input, re-keyed
			// spans). Its capacity is its length, so a second piece's
			// append copies both out of the record.
			p.data = slices.Clip(f.Data)
		} else {
			p.data = append(p.data, f.Data...)
		}
		p.spans += f.Spans
		a.openSpans += f.Spans
		if !p.lastSeen.Equal(now) {
			a.seen = append(a.seen, seenAt{f.ID, now})
		}
		if !a.clock.IsZero() && !p.lastAt.Equal(a.clock) {
			a.byRecord = append(a.byRecord, seenAt{f.ID, a.clock})
		}
		p.last, p.lastSeen, p.lastAt = off, now, a.clock
	}
	a.next = off + 1
	return late
}

func removePartial(list []*partial, p *partial) []*partial {
	for i, q := range list {
		if q == p {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}

// tick notes that a record of time at was read (a record's timestamp,
// no later than the wall clock): the partition's record time moves on.
func (a *assembler) tick(at time.Time) {
	if at.After(a.clock) {
		a.clock = at
	}
}

// complete moves the traces idle since before cutoff to done, and those
// idle for idle in record time, in the order they were last seen.
func (a *assembler) complete(cutoff time.Time, idle time.Duration) {
	a.seen = a.completeList(a.seen, cutoff, func(p *partial) time.Time { return p.lastSeen })
	if !a.clock.IsZero() {
		a.byRecord = a.completeList(a.byRecord, a.clock.Add(-idle), func(p *partial) time.Time { return p.lastAt })
	}
}

// completeList completes the traces of list, in its order, last seen
// (by last) before cutoff, and returns the rest of list.
func (a *assembler) completeList(list []seenAt, cutoff time.Time, last func(*partial) time.Time) []seenAt {
	n := 0
	for _, e := range list {
		if !e.at.Before(cutoff) {
			break
		}
		n++
		p := a.open[e.id]
		if p == nil || !last(p).Equal(e.at) { // seen again since
			continue
		}
		delete(a.open, e.id)
		a.done = append(a.done, p)
		a.doneByID[e.id] = p
		a.openSpans -= p.spans
		a.doneSpans += p.spans
	}
	return list[n:]
}

// cut returns the complete traces that may be published and the offset to
// commit once they are: the first record of the oldest trace still open,
// else the next record. The traces returned leave the assembler.
//
// A trace open since before openedBefore is completed first, as it is
// (cutOpen): one whose spans never stop coming would otherwise hold the
// commit point at its first record, and with it every trace after, for
// ever. Its later spans make a trace of their own.
func (a *assembler) cut(openedBefore time.Time) ([]*partial, int64) {
	return a.cutAtMost(openedBefore, 0)
}

// cutAtMost cuts as cut does, but at most most traces (0: no bound),
// those whose records come first: the commit point is set before the
// others. The traces of one record are taken together, so that one that
// holds more than most still moves the partition on.
func (a *assembler) cutAtMost(openedBefore time.Time, most int) ([]*partial, int64) {
	var long []*partial
	commit := a.next
	for id, p := range a.open {
		if p.opened.Before(openedBefore) {
			delete(a.open, id)
			p.cutOpen = true
			long = append(long, p)
			a.openSpans -= p.spans
			a.doneSpans += p.spans
			continue
		}
		commit = min(commit, p.first)
	}
	// Not in doneByID: a span that comes for it starts a trace of its own.
	slices.SortFunc(long, func(p, q *partial) int { return cmp.Compare(p.first, q.first) })
	a.done = append(a.done, long...)
	if most > 0 && len(a.done) > most {
		firsts := make([]int64, len(a.done))
		for i, p := range a.done {
			firsts[i] = p.first
		}
		slices.Sort(firsts)
		at := most
		for at < len(firsts)-1 && firsts[at] == firsts[0] { // one record's
			at++
		}
		if firsts[at] > firsts[0] {
			commit = min(commit, firsts[at])
		}
	}
	// A complete trace that reaches past the commit point is kept back,
	// and holds the point below its own first record, which may keep
	// back others: until nothing changes.
	for changed := true; changed; {
		changed = false
		for _, p := range a.done {
			if p.last >= commit && p.first < commit {
				commit, changed = p.first, true
			}
		}
	}
	var out []*partial
	keep := a.done[:0]
	for _, p := range a.done {
		if p.last < commit {
			out = append(out, p)
			a.doneSpans -= p.spans
			if a.doneByID[p.id] == p {
				delete(a.doneByID, p.id)
			}
			a.remember(p.id, p.first, p.last, !p.cutOpen)
		} else {
			keep = append(keep, p)
		}
	}
	a.done = keep
	return out, commit
}

// gatheredTraces counts the traces analysed into the segment being
// gathered.
func (a *assembler) gatheredTraces() int {
	if s := a.segments[a.committed]; s != nil {
		return len(s.traces)
	}
	return 0
}

// full says the segment being gathered is to be published now, without
// waiting for the window: it holds publishSpans spans or publishTraces
// traces.
func (a *assembler) full() bool {
	return a.foldedSpans >= publishSpans || a.gatheredTraces() >= publishTraces
}

// remember notes trace id, whose records lie from first to last, as
// analysed into the segment being gathered, where its late spans are to
// be merged if mergeLate (else they make a trace of their own).
func (a *assembler) remember(id trace.TraceID, first, last int64, mergeLate bool) {
	s := a.segments[a.committed]
	if s == nil {
		s = &segment{first: first, last: last}
		a.segments[a.committed] = s
		a.segOrder = append(a.segOrder, a.committed)
	}
	s.first, s.last = min(s.first, first), max(s.last, last)
	s.traces = append(s.traces, id)
	a.held++
	a.trim()
	if mergeLate {
		a.note(id, a.committed)
	}
}

// trim forgets the oldest segments: past maxSegments, and while the newer
// ones hold maxPublished traces.
func (a *assembler) trim() {
	for len(a.segOrder) > 1 {
		oldest := a.segments[a.segOrder[0]]
		if len(a.segOrder) <= maxSegments && a.held-len(oldest.traces) < maxPublished {
			return
		}
		a.held -= len(oldest.traces)
		delete(a.segments, a.segOrder[0])
		a.segOrder = a.segOrder[1:]
	}
}

// note notes trace id as analysed into the segment at start, forgetting
// the oldest trace noted past maxPublished.
func (a *assembler) note(id trace.TraceID, start int64) {
	if _, ok := a.published[id]; !ok {
		a.order = append(a.order, id)
	}
	a.published[id] = start
	if len(a.order) > maxPublished {
		delete(a.published, a.order[0])
		a.order = a.order[1:]
	}
}

// know takes segments published by an earlier owner of the partition, in
// the order they were published, as if this assembler had published them
// (those at or past its committed offset are not published: left out).
func (a *assembler) know(segs map[int64]*segment) {
	starts := make([]int64, 0, len(segs))
	for start := range segs {
		if start < a.committed && a.segments[start] == nil {
			starts = append(starts, start)
		}
	}
	slices.Sort(starts)
	for _, start := range starts {
		s := segs[start]
		a.segments[start] = s
		a.segOrder = append(a.segOrder, start)
		a.held += len(s.traces)
		a.trim()
		for _, id := range s.traces {
			a.note(id, start)
		}
	}
}

// dirty lists the segments late spans came for since they were last
// published, by their first offsets, oldest first.
func (a *assembler) dirty() []int64 {
	var out []int64
	for _, start := range a.segOrder {
		if s := a.segments[start]; s != nil && s.dirty() {
			out = append(out, start)
		}
	}
	return out
}

// pending counts the spans of traces not yet published.
func (a *assembler) pending() int { return a.openSpans + a.doneSpans }
