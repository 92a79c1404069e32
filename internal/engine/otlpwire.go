package engine

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ktrace-dev/ktrace/trace"
)

// The wire format's primitives that DecodeOTLP and SplitOTLP read with.

// field is one field of a message: its number and wire type, and its
// value (the bytes of a length-delimited field, else the number).
type field struct {
	num   protowire.Number
	typ   protowire.Type
	bytes []byte
	n     uint64
}

// wire reads a message's fields in order: for r.next() { use r.f }, then
// r.bad says whether the message was malformed.
type wire struct {
	msg []byte
	f   field
	bad bool
}

func (r *wire) next() bool {
	if len(r.msg) == 0 || r.bad {
		return false
	}
	// Tags of OTLP's fields and lengths under 128 bytes are one byte:
	// read them here, the rest through protowire.
	var num protowire.Number
	var typ protowire.Type
	n := 1
	if b := r.msg[0]; b < 0x80 && b>>3 != 0 {
		num, typ = protowire.Number(b>>3), protowire.Type(b&7)
	} else if num, typ, n = protowire.ConsumeTag(r.msg); n < 0 {
		r.bad = true
		return false
	}
	r.msg = r.msg[n:]
	r.f = field{num: num, typ: typ}
	switch typ {
	case protowire.VarintType:
		r.f.n, n = protowire.ConsumeVarint(r.msg)
	case protowire.Fixed64Type:
		r.f.n, n = protowire.ConsumeFixed64(r.msg)
	case protowire.Fixed32Type:
		var v uint32
		v, n = protowire.ConsumeFixed32(r.msg)
		r.f.n = uint64(v)
	case protowire.BytesType:
		if len(r.msg) > 0 && r.msg[0] < 0x80 && int(r.msg[0]) < len(r.msg) {
			l := int(r.msg[0])
			r.f.bytes, n = r.msg[1:1+l:1+l], 1+l
		} else {
			r.f.bytes, n = protowire.ConsumeBytes(r.msg)
		}
	default: // groups: not in OTLP
		n = -1
	}
	if n < 0 {
		r.bad = true
		return false
	}
	r.msg = r.msg[n:]
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
		if !take(f.num, f.bytes) {
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
		if r.f.num != 1 || r.f.typ != protowire.BytesType || !container(r.f.bytes, true, resourceSpans) {
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
