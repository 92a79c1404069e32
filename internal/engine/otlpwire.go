package engine

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ktrace-dev/ktrace/trace"
)

// The wire format's primitives that DecodeOTLP and SplitOTLP read with.

// field is one field of a message: its number and wire type, and its
// value (a length-delimited field's bytes are the message's [at:end],
// else the number).
type field struct {
	num     protowire.Number
	typ     protowire.Type
	n       uint64
	at, end int
}

// wire reads a message's fields in order: for r.next() { use r.f and
// r.bytes() }, then r.bad says whether the message was malformed.
//
// Reading stores only numbers in the wire (where the next field starts,
// where a field's bytes are), never a slice: storing a pointer through
// *wire costs a write barrier whenever the garbage collector is marking,
// and a member decodes while it marks (the barriers were 9% of a member's
// instructions under callgrind, most of them here).
type wire struct {
	msg []byte
	pos int
	f   field
	bad bool
}

// bytes is the current field's value when it is length-delimited.
func (r *wire) bytes() []byte { return r.msg[r.f.at:r.f.end:r.f.end] }

func (r *wire) next() bool {
	if r.pos >= len(r.msg) || r.bad {
		return false
	}
	b := r.msg[r.pos:]
	// Tags of OTLP's fields and lengths under 128 bytes are one byte:
	// read them here, the rest through protowire.
	var num protowire.Number
	var typ protowire.Type
	n := 1
	if c := b[0]; c < 0x80 && c>>3 != 0 {
		num, typ = protowire.Number(c>>3), protowire.Type(c&7)
	} else if num, typ, n = protowire.ConsumeTag(b); n < 0 {
		r.bad = true
		return false
	}
	b = b[n:]
	at := r.pos + n
	r.f = field{num: num, typ: typ}
	switch typ {
	case protowire.VarintType:
		r.f.n, n = protowire.ConsumeVarint(b)
	case protowire.Fixed64Type:
		r.f.n, n = protowire.ConsumeFixed64(b)
	case protowire.Fixed32Type:
		var v uint32
		v, n = protowire.ConsumeFixed32(b)
		r.f.n = uint64(v)
	case protowire.BytesType:
		if len(b) > 0 && b[0] < 0x80 && int(b[0]) < len(b) {
			n = 1 + int(b[0])
			r.f.at, r.f.end = at+1, at+n
		} else {
			var v []byte
			v, n = protowire.ConsumeBytes(b)
			r.f.at, r.f.end = at+n-len(v), at+n
		}
	default: // groups: not in OTLP
		n = -1
	}
	if n < 0 {
		r.bad = true
		return false
	}
	r.pos = at + n
	return true
}

// container reads a ResourceSpans or a ScopeSpans message in the plain
// form: every field a byte string, 1 (the resource or the scope) and 3
// (the schema URL) at most once, 2 (a scope or a span) repeated, and with
// headFirst 1 before any 2. It hands every field to take, and says whether
// the message had that form and take took every field. DecodeOTLP and
// SplitOTLP both read the two levels with it, so they decline alike.
func container(msg []byte, headFirst bool, take func(num protowire.Number, b []byte) bool) bool {
	var seen uint32
	children := false
	r := wire{msg: msg}
	for r.next() {
		f := &r.f
		switch {
		case f.typ != protowire.BytesType, f.num < 1 || f.num > 3, f.num != 2 && !once(&seen, f.num),
			headFirst && f.num == 1 && children:
			return false
		}
		children = children || f.num == 2
		if !take(f.num, r.bytes()) {
			return false
		}
	}
	return !r.bad
}

// eachSpan hands every span of a TracesData message to span, reading the
// levels above it with container; false when the message does not have
// the plain form or span returns false.
func eachSpan(data []byte, span func([]byte) bool) bool {
	scopeSpans := func(num protowire.Number, ss []byte) bool { return num != 2 || span(ss) }
	resourceSpans := func(num protowire.Number, rs []byte) bool { return num != 2 || container(rs, false, scopeSpans) }
	r := wire{msg: data}
	for r.next() {
		if r.f.num != 1 || r.f.typ != protowire.BytesType || !container(r.bytes(), true, resourceSpans) {
			return false
		}
	}
	return !r.bad
}

// once notes field num as seen, and says whether it was not before.
func once(seen *uint32, num protowire.Number) bool {
	bit := uint32(1) << (num & 31)
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

func traceIDOf(b []byte) (trace.TraceID, bool) {
	if len(b) != 16 {
		return trace.TraceID{}, false
	}
	var id trace.TraceID
	for i := range 8 {
		id.High = id.High<<8 | uint64(b[i])
		id.Low = id.Low<<8 | uint64(b[8+i])
	}
	return id, !id.IsZero()
}

func spanIDOf(b []byte) (trace.SpanID, bool) {
	if len(b) != 8 {
		return 0, false
	}
	var id uint64
	for _, c := range b {
		id = id<<8 | uint64(c)
	}
	return trace.SpanID(id), true
}
