package engine

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ktrace-dev/ktrace/trace"
)

// A TracePiece is one trace's spans cut out of an OTLP message.
type TracePiece struct {
	ID    trace.TraceID
	Spans int
	Data  []byte // an OTLP protobuf TracesData message
}

// SplitOTLP cuts one OTLP protobuf TracesData message into a message per
// trace, in the order the traces first appear, copying each span's bytes
// with its resource and scope as they came: only trace IDs are read. A
// message that file.OTLPProto reads is cut into pieces that it reads as
// the spans of each trace (FuzzSplitOTLP holds it so); one that it does
// not read is cut as far as its structure allows, and the pieces that
// hold the bad parts fail when they are read. ok is false, and nothing
// returned, for what does not have the plain form (as DecodeOTLP). A
// message that holds one trace is its own piece: its Data is data. The
// pieces of a message share one buffer, each written once, its size
// reckoned first.
func SplitOTLP(data []byte) (pieces []TracePiece, ok bool) {
	var s OTLPSplitter
	return s.Split(data)
}

// An OTLPSplitter cuts messages as SplitOTLP does, keeping the memory it
// reads one with for the next (the pieces are made anew each time: they
// are handed on). The zero value is ready.
type OTLPSplitter struct{ sp splitter }

// Split cuts data as SplitOTLP does.
func (s *OTLPSplitter) Split(data []byte) (pieces []TracePiece, ok bool) {
	if id, n, ok := oneTrace(data); ok {
		return []TracePiece{{ID: id, Spans: n, Data: data}}, true
	}
	sp := &s.sp
	sp.reset()
	defer sp.release()
	r := wire{msg: data}
	for r.next() {
		if r.f.num != 1 || r.f.typ != protowire.BytesType || !sp.resourceSpans(r.bytes()) {
			return nil, false
		}
	}
	if r.bad {
		return nil, false
	}
	return sp.pieces(), true
}

// oneTrace reads a message that holds spans of one trace alone, as an
// exporter that partitions by trace ID writes each, with the checks the
// splitter makes but noting only the trace and the spans' count: false
// for a message of no span or of more than one trace, or one the splitter
// declines (which it then reads again).
func oneTrace(data []byte) (id trace.TraceID, spans int, ok bool) {
	ok = eachSpan(data, func(msg []byte) bool {
		sid, ok := spanTraceIDOf(msg)
		if !ok || spans > 0 && sid != id {
			return false
		}
		id, spans = sid, spans+1
		return true
	})
	return id, spans, ok && spans > 0
}

// splitter gathers the message's spans in the order they come, each with
// its trace and its resource and scope blocks.
type splitter struct {
	resources, scopes []block // by index: the raw fields to copy
	spans             []spanAt
	ids               []trace.TraceID // the traces, in the order they first appear
	at                map[trace.TraceID]int32
	// What pieces sorts the spans with.
	start, order, next []int32
	runs               []run
}

// run is a run of a trace's spans (in order) that share a resource and a
// scope block, with the sizes of its ScopeSpans and ResourceSpans
// messages.
type run struct {
	spans        []int32
	scope, whole int
}

// reset readies the splitter for a message.
func (sp *splitter) reset() {
	if sp.at == nil {
		sp.at = map[trace.TraceID]int32{}
	}
	clear(sp.at)
	sp.resources, sp.scopes, sp.spans, sp.ids = sp.resources[:0], sp.scopes[:0], sp.spans[:0], sp.ids[:0]
	sp.runs = sp.runs[:0]
}

// release lets go of the message read (its bytes), and of the memory
// kept when a rare large message made it large.
func (sp *splitter) release() {
	if len(sp.spans) > keptSpans {
		*sp = splitter{}
		return
	}
	clear(sp.resources)
	clear(sp.scopes)
	clear(sp.spans)
}

// block is a resource's (or a scope's) raw message and schema URL.
type block struct{ msg, schema []byte }

// set keeps field 1 (the message) or 3 (the schema URL) of a container.
func (b *block) set(num protowire.Number, v []byte) {
	if num == 1 {
		b.msg = v
	} else {
		b.schema = v
	}
}

// spanAt is a span's bytes, the index of its trace in ids, and of its
// resource and scope blocks.
type spanAt struct {
	trace, rs, ss int32
	msg           []byte
}

func (sp *splitter) resourceSpans(msg []byte) bool {
	rs := len(sp.resources)
	sp.resources = append(sp.resources, block{})
	return container(msg, true, func(num protowire.Number, b []byte) bool {
		if num == 2 {
			return sp.scopeSpans(b, rs)
		}
		sp.resources[rs].set(num, b)
		return true
	})
}

func (sp *splitter) scopeSpans(msg []byte, rs int) bool {
	ss := len(sp.scopes)
	sp.scopes = append(sp.scopes, block{})
	return container(msg, false, func(num protowire.Number, b []byte) bool {
		if num == 2 {
			return sp.span(b, rs, ss)
		}
		sp.scopes[ss].set(num, b)
		return true
	})
}

func (sp *splitter) span(msg []byte, rs, ss int) bool {
	id, ok := spanTraceIDOf(msg)
	if !ok {
		return false
	}
	// Spans of a trace mostly come together: the last span's trace is
	// tried before the map.
	var t int32
	if n := len(sp.spans); n > 0 && sp.ids[sp.spans[n-1].trace] == id {
		t = sp.spans[n-1].trace
	} else if t, ok = sp.at[id]; !ok {
		t = int32(len(sp.ids))
		sp.at[id] = t
		sp.ids = append(sp.ids, id)
	}
	sp.spans = append(sp.spans, spanAt{trace: t, rs: int32(rs), ss: int32(ss), msg: msg})
	return true
}

// pieces writes each trace's message: a ResourceSpans of one ScopeSpans
// for each run of its spans that share a resource and a scope block.
func (sp *splitter) pieces() []TracePiece {
	// Each trace's spans in the order they came, by a counting sort on
	// their trace: trace t's are order[start[t]:start[t+1]].
	start := resize(&sp.start, len(sp.ids)+1)
	clear(start)
	for _, s := range sp.spans {
		start[s.trace+1]++
	}
	for t := range sp.ids {
		start[t+1] += start[t]
	}
	order := resize(&sp.order, len(sp.spans))
	next := resize(&sp.next, len(sp.ids))
	copy(next, start)
	for i, s := range sp.spans {
		order[next[s.trace]] = int32(i)
		next[s.trace]++
	}

	// The runs, each with the sizes of its ScopeSpans and ResourceSpans
	// messages, and the size of all the pieces.
	runs := sp.runs
	total := 0
	for t := range sp.ids {
		spans := order[start[t]:start[t+1]]
		for len(spans) > 0 {
			first := sp.spans[spans[0]]
			n := 1
			for n < len(spans) && sp.spans[spans[n]].rs == first.rs && sp.spans[spans[n]].ss == first.ss {
				n++
			}
			scope, resource := sp.scopes[first.ss], sp.resources[first.rs]
			ss := fieldSize(1, scope.msg) + fieldSize(3, scope.schema)
			for _, i := range spans[:n] {
				ss += fieldSize(2, sp.spans[i].msg)
			}
			rs := fieldSize(1, resource.msg) + protowire.SizeTag(2) + protowire.SizeBytes(ss) + fieldSize(3, resource.schema)
			runs = append(runs, run{spans: spans[:n], scope: ss, whole: rs})
			total += protowire.SizeTag(1) + protowire.SizeBytes(rs)
			spans = spans[n:]
		}
	}
	sp.runs = runs

	// Every piece written once into one buffer.
	buf := make([]byte, 0, total)
	pieces := make([]TracePiece, len(sp.ids))
	for t := range pieces {
		from, spans := len(buf), 0
		for len(runs) > 0 && sp.spans[runs[0].spans[0]].trace == int32(t) {
			ru := runs[0]
			runs = runs[1:]
			first := sp.spans[ru.spans[0]]
			scope, resource := sp.scopes[first.ss], sp.resources[first.rs]
			buf = protowire.AppendTag(buf, 1, protowire.BytesType)
			buf = protowire.AppendVarint(buf, uint64(ru.whole))
			buf = appendField(buf, 1, resource.msg)
			buf = protowire.AppendTag(buf, 2, protowire.BytesType)
			buf = protowire.AppendVarint(buf, uint64(ru.scope))
			buf = appendField(buf, 1, scope.msg)
			for _, i := range ru.spans {
				buf = appendField(buf, 2, sp.spans[i].msg)
			}
			buf = appendField(buf, 3, scope.schema)
			buf = appendField(buf, 3, resource.schema)
			spans += len(ru.spans)
		}
		pieces[t] = TracePiece{ID: sp.ids[t], Spans: spans, Data: buf[from:len(buf):len(buf)]}
	}
	return pieces
}

// resize makes *s n long, keeping its memory when it is large enough;
// what it holds is left as it was.
func resize(s *[]int32, n int) []int32 {
	if cap(*s) < n {
		*s = make([]int32, n)
	}
	*s = (*s)[:n]
	return *s
}

// fieldSize is the size of a length-delimited field num of value v, 0 for
// no value (nil).
func fieldSize(num protowire.Number, v []byte) int {
	if v == nil {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(v))
}

// appendField appends field num of value v, nothing for no value (nil).
func appendField(b []byte, num protowire.Number, v []byte) []byte {
	if v == nil {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// spanTraceIDOf reads a span's trace ID, given once, valid.
func spanTraceIDOf(span []byte) (trace.TraceID, bool) {
	var id []byte
	r := wire{msg: span}
	for r.next() {
		if r.f.num == spanTraceID {
			if id != nil || r.f.typ != protowire.BytesType {
				return trace.TraceID{}, false
			}
			id = r.bytes()
		}
	}
	if r.bad {
		return trace.TraceID{}, false
	}
	return traceIDOf(id)
}
