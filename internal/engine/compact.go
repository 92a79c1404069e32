package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/ktrace-dev/ktrace/trace"
)

// The compact form of a trace's spans: what a trace.Span holds, and
// nothing else, in about a third of the bytes of OTLP protobuf. ktrace
// stream re-keys spans in it: the spans topic carries every span again,
// and compressing and holding OTLP's bytes (a resource and a scope for
// every trace of a record, fixed-width times, a message per attribute)
// was most of what re-keying cost. Its plain reference is the spans
// themselves: TestCompactKeepsSpans and FuzzCompact hold what any OTLP
// decodes to equal to what it reads back as from the compact form (OTLP
// written again is not quite as exact: a resource with no service gains
// an empty service.name).
//
// A piece is one trace's spans:
//
//	form byte (compactForm)
//	strings: count, then each as length and bytes
//	resources: count, then each as its length and a block that starts
//	    with a zero byte (no OTLP Resource message does, so the two
//	    decoders share trace.Resources' cache by encoding), then the
//	    service and count of attributes, and each key and value, as
//	    length and bytes
//	spans: count, then each:
//	    span ID (8 bytes), flags, kind
//	    trace ID (16 bytes) if flags say it is not the piece's trace
//	    resource (0: none, else its place plus one), name
//	    start (the change from the span before, zigzag; the first from 0)
//	    duration (zigzag), status message
//	    references: count, then each: its flags, the trace ID if not the
//	        span's own, the span ID (8 bytes)
//	    attributes: count, then each key and value
//
// Counts, lengths and places are varints; names, values and messages are
// places in the piece's strings. Pieces of one trace may be concatenated.
const compactForm = 1

// Flags of a span and of a reference.
const (
	compactError   = 1 << 0 // the span's status is error
	compactForeign = 1 << 1 // a trace ID follows: not the piece's (span), not the span's (reference)
	compactLink    = 1 << 2 // the reference is a link
	compactSampled = 3      // a reference's Sampled, in its bits 3 and 4
)

// A CompactEncoder writes pieces in the compact form. It keeps its tables
// from call to call; the zero value is ready. Not safe for concurrent use.
type CompactEncoder struct {
	strs   map[string]uint64
	table  []string
	resAt  map[*trace.Resource]uint64
	res    []*trace.Resource
	body   []byte
	header []byte
}

// Append appends the piece of trace id that holds spans to dst.
func (e *CompactEncoder) Append(dst []byte, id trace.TraceID, spans []trace.Span) []byte {
	if e.strs == nil {
		e.strs, e.resAt = map[string]uint64{}, map[*trace.Resource]uint64{}
	}
	clear(e.strs)
	clear(e.resAt)
	e.table, e.res, e.body = e.table[:0], e.res[:0], e.body[:0]
	b := binary.AppendUvarint(e.body, uint64(len(spans)))
	var prev int64
	for i := range spans {
		s := &spans[i]
		b = binary.LittleEndian.AppendUint64(b, uint64(s.SpanID))
		var flags byte
		if s.Error {
			flags |= compactError
		}
		if s.TraceID != id {
			flags |= compactForeign
		}
		b = append(b, flags, byte(s.Kind))
		if s.TraceID != id {
			b = appendTraceID(b, s.TraceID)
		}
		b = binary.AppendUvarint(b, e.resource(s.Resource))
		b = binary.AppendUvarint(b, e.str(s.Operation))
		start := s.Start.UnixNano()
		b = binary.AppendVarint(b, start-prev)
		prev = start
		b = binary.AppendVarint(b, int64(s.Duration))
		b = binary.AppendUvarint(b, e.str(s.StatusMessage))
		b = binary.AppendUvarint(b, uint64(len(s.Refs)))
		for _, r := range s.Refs {
			flags := byte(r.Sampled) << compactSampled
			if r.Type == trace.RefLink {
				flags |= compactLink
			}
			if r.TraceID != s.TraceID {
				flags |= compactForeign
			}
			b = append(b, flags)
			if r.TraceID != s.TraceID {
				b = appendTraceID(b, r.TraceID)
			}
			b = binary.LittleEndian.AppendUint64(b, uint64(r.SpanID))
		}
		b = binary.AppendUvarint(b, uint64(len(s.Attributes)))
		for _, a := range s.Attributes {
			b = binary.AppendUvarint(b, e.str(a.Key))
			b = binary.AppendUvarint(b, e.str(a.Value))
		}
	}
	e.body = b

	h := append(e.header[:0], compactForm)
	h = binary.AppendUvarint(h, uint64(len(e.table)))
	for _, s := range e.table {
		h = appendString(h, s)
	}
	h = binary.AppendUvarint(h, uint64(len(e.res)))
	for _, r := range e.res {
		n := 1 + uvarintLen(uint64(len(r.Service))) + len(r.Service) + uvarintLen(uint64(len(r.Attributes)))
		for _, a := range r.Attributes {
			n += uvarintLen(uint64(len(a.Key))) + len(a.Key) + uvarintLen(uint64(len(a.Value))) + len(a.Value)
		}
		h = binary.AppendUvarint(h, uint64(n))
		h = append(h, 0)
		h = appendString(h, r.Service)
		h = binary.AppendUvarint(h, uint64(len(r.Attributes)))
		for _, a := range r.Attributes {
			h = appendString(h, a.Key)
			h = appendString(h, a.Value)
		}
	}
	e.header = h
	dst = append(dst, h...)
	return append(dst, b...)
}

func (e *CompactEncoder) str(s string) uint64 {
	if i, ok := e.strs[s]; ok {
		return i
	}
	i := uint64(len(e.table))
	e.strs[s] = i
	e.table = append(e.table, s)
	return i
}

func (e *CompactEncoder) resource(r *trace.Resource) uint64 {
	if r == nil {
		return 0
	}
	if i, ok := e.resAt[r]; ok {
		return i
	}
	e.res = append(e.res, r)
	i := uint64(len(e.res))
	e.resAt[r] = i
	return i
}

func appendTraceID(b []byte, id trace.TraceID) []byte {
	b = binary.BigEndian.AppendUint64(b, id.High)
	return binary.BigEndian.AppendUint64(b, id.Low)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// A CompactDecoder reads pieces in the compact form. The spans it returns
// are the caller's; their attributes and references are cut from blocks
// the decoder shares among them, which it writes over once told the spans
// are let go (Release). The zero value is ready. Not safe for concurrent
// use.
type CompactDecoder struct {
	table []string
	res   []*trace.Resource
	attrs cutBlock[trace.Attribute]
	refs  cutBlock[trace.Ref]
}

// A cutBlock is what a decoder cuts spans' attributes or references from
// (cut): the block it cuts from now, and the one it starts from again
// once the spans are let go, as large as they needed.
type cutBlock[T any] struct {
	now, kept []T
	used      int // since the last Release
}

func (b *cutBlock[T]) cut(from []T) []T {
	b.used += len(from)
	return cut(&b.now, from)
}

// Release tells the decoder the spans it returned are let go: the next
// calls write their attributes and references over theirs (in one block
// each, as large as the last calls needed, up to what OTLPDecoder keeps).
func (d *CompactDecoder) Release() {
	d.attrs = d.attrs.again(8 * keptSpans)
	d.refs = d.refs.again(keptSpans)
}

func (b cutBlock[T]) again(most int) cutBlock[T] {
	if cap(b.kept) < b.used && b.used <= most {
		b.kept = make([]T, 0, b.used+b.used/4)
	}
	return cutBlock[T]{now: b.kept[:0], kept: b.kept}
}

// errCompact says a piece is not in the compact form.
var errCompact = errors.New("not spans in ktrace's compact form")

// Decode appends the spans of the pieces of trace id, concatenated in
// data, to spans: the strings shared through strs, the resources through
// res, as the OTLP decoders share them.
func (d *CompactDecoder) Decode(spans []trace.Span, id trace.TraceID, data []byte, res *trace.Resources, strs *trace.Strings) ([]trace.Span, error) {
	r := compactReader{b: data}
	for r.more() {
		var err error
		if spans, err = d.piece(&r, spans, id, res, strs); err != nil {
			return spans, fmt.Errorf("%w: byte %d: %v", errCompact, r.at, err)
		}
	}
	return spans, nil
}

func (d *CompactDecoder) piece(r *compactReader, spans []trace.Span, id trace.TraceID, res *trace.Resources, strs *trace.Strings) ([]trace.Span, error) {
	if form := r.byte(); form != compactForm {
		return spans, fmt.Errorf("form %d, not %d", form, compactForm)
	}
	n := r.count(1)
	d.table = d.table[:0]
	for range n {
		s := r.bytes()
		if !utf8.Valid(s) {
			return spans, errors.New("a string is not UTF-8")
		}
		d.table = append(d.table, strs.Bytes(s))
	}
	n = r.count(2)
	d.res = d.res[:0]
	for range n {
		enc := r.bytes()
		rs, err := resource(enc, res, strs)
		if err != nil {
			return spans, err
		}
		d.res = append(d.res, rs)
	}
	n = r.count(14)
	if r.bad != nil {
		return spans, r.bad
	}
	var attr []trace.Attribute
	var ref []trace.Ref
	var prev int64
	for range n {
		var s trace.Span
		s.SpanID = trace.SpanID(r.fixed64())
		flags := r.byte()
		s.Kind = trace.Kind(r.byte())
		s.Error = flags&compactError != 0
		s.TraceID = id
		if flags&compactForeign != 0 {
			s.TraceID = r.traceID()
		}
		if i := r.uvarint(); i > 0 {
			if i > uint64(len(d.res)) {
				return spans, errors.New("a span's resource is not in the piece")
			}
			s.Resource = d.res[i-1]
		}
		s.Operation = d.str(r)
		prev += r.varint()
		if prev < 0 { // no decoder makes a time before 1970
			return spans, errors.New("a span starts before 1970")
		}
		s.Start = time.Unix(0, prev).UTC()
		s.Duration = time.Duration(r.varint())
		s.StatusMessage = d.str(r)
		ref = ref[:0]
		for range r.count(9) {
			f := r.byte()
			rf := trace.Ref{Type: trace.RefParent, TraceID: s.TraceID, Sampled: trace.Sampled(f >> compactSampled)}
			if f&compactLink != 0 {
				rf.Type = trace.RefLink
			}
			if f&compactForeign != 0 {
				rf.TraceID = r.traceID()
			}
			rf.SpanID = trace.SpanID(r.fixed64())
			ref = append(ref, rf)
		}
		attr = attr[:0]
		for range r.count(2) {
			k := d.str(r)
			attr = append(attr, trace.Attribute{Key: k, Value: d.str(r)})
		}
		if r.bad != nil {
			return spans, r.bad
		}
		s.Attributes = d.attrs.cut(attr)
		s.Refs = d.refs.cut(ref)
		spans = append(spans, s)
	}
	return spans, nil
}

// resource reads a resource's block, or finds it read before.
func resource(enc []byte, res *trace.Resources, strs *trace.Strings) (*trace.Resource, error) {
	if rs, ok := res.Encoded(enc); ok {
		return rs, nil
	}
	r := compactReader{b: enc}
	if r.byte() != 0 {
		return nil, errors.New("a resource does not start with a zero byte")
	}
	service := r.bytes()
	n := r.count(2)
	var attrs trace.Attributes
	if n > 0 && r.bad == nil {
		attrs = make(trace.Attributes, 0, n)
	}
	for range n {
		k, v := r.bytes(), r.bytes()
		if !utf8.Valid(k) || !utf8.Valid(v) {
			return nil, errors.New("a resource's attribute is not UTF-8")
		}
		attrs = append(attrs, trace.Attribute{Key: strs.Bytes(k), Value: strs.Bytes(v)})
	}
	switch {
	case r.bad != nil:
		return nil, r.bad
	case r.more():
		return nil, errors.New("a resource is longer than what it holds")
	case !utf8.Valid(service):
		return nil, errors.New("a service name is not UTF-8")
	}
	rs := res.Get(strs.Bytes(service), attrs)
	res.KeepEncoded(enc, rs)
	return rs, nil
}

func (d *CompactDecoder) str(r *compactReader) string {
	i := r.uvarint()
	if i >= uint64(len(d.table)) {
		r.fail("a string is not in the piece")
		return ""
	}
	return d.table[i]
}

// compactReader reads a piece; the first thing wrong stops it (bad), and
// what it reads after is zero.
type compactReader struct {
	b   []byte
	at  int
	bad error
}

func (r *compactReader) more() bool { return r.bad == nil && r.at < len(r.b) }

func (r *compactReader) fail(why string) {
	if r.bad == nil {
		r.bad = errors.New(why)
	}
	r.at = len(r.b)
}

func (r *compactReader) byte() byte {
	if r.at >= len(r.b) {
		r.fail("it ends early")
		return 0
	}
	r.at++
	return r.b[r.at-1]
}

func (r *compactReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b[r.at:])
	if n <= 0 {
		r.fail("a number is cut short or too long")
		return 0
	}
	r.at += n
	return v
}

func (r *compactReader) varint() int64 {
	v, n := binary.Varint(r.b[r.at:])
	if n <= 0 {
		r.fail("a number is cut short or too long")
		return 0
	}
	r.at += n
	return v
}

// count reads a count of things that take at least least bytes each: one
// the rest of the piece cannot hold is wrong (and would make a decoder
// allocate for nothing).
func (r *compactReader) count(least int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)-r.at)/uint64(least) {
		r.fail("a count is larger than the piece")
		return 0
	}
	return int(n)
}

func (r *compactReader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)-r.at) {
		r.fail("a string is longer than the piece")
		return nil
	}
	r.at += int(n)
	return r.b[r.at-int(n) : r.at]
}

func (r *compactReader) fixed64() uint64 {
	if len(r.b)-r.at < 8 {
		r.fail("it ends early")
		return 0
	}
	r.at += 8
	return binary.LittleEndian.Uint64(r.b[r.at-8:])
}

func (r *compactReader) traceID() trace.TraceID {
	if len(r.b)-r.at < 16 {
		r.fail("it ends early")
		return trace.TraceID{}
	}
	r.at += 16
	return trace.TraceID{High: binary.BigEndian.Uint64(r.b[r.at-16:]), Low: binary.BigEndian.Uint64(r.b[r.at-8:])}
}
