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
// message that holds one trace is its own piece: its Data is data.
func SplitOTLP(data []byte) (pieces []TracePiece, ok bool) {
	var sp splitter
	sp.at = map[trace.TraceID]*traceRuns{}
	r := wire{msg: data}
	for r.next() {
		if r.f.num != 1 || r.f.typ != protowire.BytesType || !sp.resourceSpans(r.f.bytes) {
			return nil, false
		}
	}
	if r.bad {
		return nil, false
	}
	if len(sp.order) == 1 {
		n := 0
		for _, ru := range sp.order[0].runs {
			n += len(ru.spans)
		}
		return []TracePiece{{ID: sp.order[0].id, Spans: n, Data: data}}, true
	}
	return sp.pieces(), true
}

// splitter gathers each trace's spans, as runs that share a resource and
// scope block, in the order the traces first appear.
type splitter struct {
	resources, scopes []block // by index: the raw fields to copy
	order             []*traceRuns
	at                map[trace.TraceID]*traceRuns
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

type traceRuns struct {
	id   trace.TraceID
	runs []run
}

// run is spans of one trace that sit in one resource and scope block.
type run struct {
	rs, ss int
	spans  [][]byte
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
	t := sp.at[id]
	if t == nil {
		t = &traceRuns{id: id}
		sp.at[id] = t
		sp.order = append(sp.order, t)
	}
	if n := len(t.runs); n == 0 || t.runs[n-1].rs != rs || t.runs[n-1].ss != ss {
		t.runs = append(t.runs, run{rs: rs, ss: ss})
	}
	last := &t.runs[len(t.runs)-1]
	last.spans = append(last.spans, msg)
	return true
}

// pieces writes each trace's message: a ResourceSpans of one ScopeSpans
// for each of its runs.
func (sp *splitter) pieces() []TracePiece {
	field := func(b []byte, num protowire.Number, v []byte) []byte {
		if v == nil {
			return b
		}
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendBytes(b, v)
	}
	pieces := make([]TracePiece, len(sp.order))
	var ssBuf, rsBuf []byte
	for i, t := range sp.order {
		var msg []byte
		n := 0
		for _, ru := range t.runs {
			n += len(ru.spans)
			scope, resource := sp.scopes[ru.ss], sp.resources[ru.rs]
			ssBuf = field(ssBuf[:0], 1, scope.msg)
			for _, s := range ru.spans {
				ssBuf = field(ssBuf, 2, s)
			}
			ssBuf = field(ssBuf, 3, scope.schema)
			rsBuf = field(rsBuf[:0], 1, resource.msg)
			rsBuf = field(rsBuf, 2, ssBuf)
			rsBuf = field(rsBuf, 3, resource.schema)
			msg = field(msg, 1, rsBuf)
		}
		pieces[i] = TracePiece{ID: t.id, Spans: n, Data: msg}
	}
	return pieces
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
			id = r.f.bytes
		}
	}
	if r.bad {
		return trace.TraceID{}, false
	}
	return traceIDOf(id)
}
