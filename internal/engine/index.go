package engine

import "github.com/ktrace-dev/ktrace/trace"

// spanIndex reads the spans of one trace once: where each span's parent is, and
// each span's messaging view. Graph building and break analysis ask these
// questions of every span, several times; a spanIndex answers them from arrays.
// Reset it for each trace: its memory is reused, so walking a million traces
// allocates almost nothing, and a million-span trace costs what a thousand
// small ones do. The zero value is ready to use; it is not safe for
// concurrent use.
type spanIndex struct {
	spans   []trace.Span
	slots   []int32 // open addressing by span ID: index+1, 0 is empty
	shift   uint
	built   bool // slots holds spans
	info    []infoSlot
	msg     []trace.Messaging
	layouts layouts
}

// infoSlot is what the index found of one span.
type infoSlot struct {
	parent int32
	cross  bool // the span's parent is in another service
	remote bool // the span has a child in another service
	msg    bool // msg holds the span's messaging view
}

// spanInfo is what the index knows of one span, read at once.
type spanInfo struct {
	// Parent is the parent's index, noParent or missingParent.
	Parent int
	// Cross: the parent is in another service (CrossParent).
	Cross bool
	// Remote: the span is the parent of a span of another service
	// (HasRemoteChild).
	Remote bool
	// View is the span's messaging view in place, nil when it is not a
	// messaging span (View). Do not change it.
	View *trace.Messaging
}

// Info returns what the index knows of span i.
func (x *spanIndex) Info(i int) spanInfo {
	in := x.info[i]
	out := spanInfo{Parent: int(in.parent), Cross: in.cross, Remote: in.remote}
	if in.msg {
		out.View = &x.msg[i]
	}
	return out
}

// Parent values other than a span index.
const (
	// noParent: the span has no parent reference in its own trace (a root).
	noParent = -1
	// missingParent: the span names a parent that is not in the trace.
	missingParent = -2
)

// Reset indexes spans, which the Index uses until the next Reset.
//
// A parent is looked for first next to its child (spans are often stored
// in call order, or with a child just before its parent); only when some
// parent is not there is the hash table built, so ordered traces of any
// size are indexed without one and cost per span what small ones do.
func (x *spanIndex) Reset(spans []trace.Span) {
	x.spans, x.built = spans, false
	n := len(spans)
	x.info = grow(x.info, n)
	clear(x.info)
	x.msg = grow(x.msg, n)
	info, msg := x.info[:n], x.msg[:n] // as long as spans: no bounds checks below
	far := false
	var v trace.Fields
	for i := range spans {
		s := &spans[i]
		p := int32(noParent)
		if pid, ok := s.Parent(); ok {
			switch {
			case i > 0 && spans[i-1].SpanID == pid:
				p = int32(i - 1)
			case i+1 < n && spans[i+1].SpanID == pid:
				p = int32(i + 1)
			default:
				p, far = missingParent, true // for now: looked up below
			}
		}
		in := &info[i]
		in.parent = p
		in.cross = p >= 0 && x.child(int(p), s)
		if len(s.Attributes) > 0 {
			x.layouts.fields(s.Attributes, &v)
			in.msg = trace.MessagingFrom(&msg[i], s.Kind, s.Attributes, &v)
		}
	}
	if !far {
		return
	}
	for i := range spans {
		if x.info[i].parent == missingParent {
			pid, _ := spans[i].Parent()
			if j := x.Find(pid); j >= 0 {
				x.info[i].parent = int32(j)
				x.info[i].cross = x.child(j, &spans[i])
			}
		}
	}
}

// child notes that s is a child of span p, and reports whether they are in
// different services.
func (x *spanIndex) child(p int, s *trace.Span) bool {
	if ps := &x.spans[p]; ps.Resource != s.Resource && ps.Service() != s.Service() {
		x.info[p].remote = true
		return true
	}
	return false
}

// build fills the hash table.
func (x *spanIndex) build() {
	x.built = true
	spans := x.spans
	size, shift := 8, uint(61)
	for size < 2*len(spans) {
		size <<= 1
		shift--
	}
	if cap(x.slots) < size {
		x.slots = make([]int32, size)
	} else {
		x.slots = x.slots[:size]
		clear(x.slots)
	}
	x.shift = shift
	mask := uint64(size - 1)
	for i := range spans {
		id := spans[i].SpanID
		for h := x.hash(id); ; h = (h + 1) & mask {
			j := x.slots[h]
			if j == 0 || spans[j-1].SpanID == id {
				x.slots[h] = int32(i + 1) // a repeated ID: the last span wins
				break
			}
		}
	}
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

func (x *spanIndex) hash(id trace.SpanID) uint64 {
	return (uint64(id) * 0x9E3779B97F4A7C15) >> x.shift
}

// Find returns the index of the span with this ID, or -1.
func (x *spanIndex) Find(id trace.SpanID) int {
	if !x.built {
		x.build()
	}
	mask := uint64(len(x.slots) - 1)
	for h := x.hash(id); ; h = (h + 1) & mask {
		j := x.slots[h]
		if j == 0 {
			return -1
		}
		if x.spans[j-1].SpanID == id {
			return int(j - 1)
		}
	}
}

// Parent returns the index of span i's parent, noParent or missingParent.
func (x *spanIndex) Parent(i int) int { return int(x.info[i].parent) }

// HasRemoteChild reports whether span i is the parent of a span of
// another service.
func (x *spanIndex) HasRemoteChild(i int) bool { return x.info[i].remote }

// CrossParent reports whether span i has a parent in the trace, of another
// service: a call or a hop between services.
func (x *spanIndex) CrossParent(i int) bool { return x.info[i].cross }

// Messaging returns span i's messaging view, as trace.Span.Messaging would.
func (x *spanIndex) Messaging(i int) (trace.Messaging, bool) {
	if !x.info[i].msg {
		return trace.Messaging{}, false
	}
	return x.msg[i], true
}

// View returns span i's messaging view in place, or nil when the span is
// not a messaging span: trace.Messaging without the copy. Do not change it.
func (x *spanIndex) View(i int) *trace.Messaging {
	if !x.info[i].msg {
		return nil
	}
	return &x.msg[i]
}

// SameHop is trace.SameHop for span j of the trace.
func (x *spanIndex) SameHop(j int, m *trace.Messaging, producer bool) bool {
	return j >= 0 && x.info[j].msg && trace.SameHopView(&x.msg[j], m, producer)
}
