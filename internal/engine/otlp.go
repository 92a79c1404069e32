package engine

import (
	"encoding/base64"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ktrace-dev/ktrace/trace"
)

// DecodeOTLP decodes one OTLP protobuf TracesData message as
// file.OTLPProto does — the same traces, spans, attributes, resources and
// shared strings — reading the wire format straight into spans, with no
// message structs in between (two and a half times as fast:
// BenchmarkDecodeOTLP).
// It reads the plain form every SDK and collector writes; anything else —
// an error of any kind, an unknown field, a singular field given twice, a
// oneof given two values, a message's fields out of the order they are
// needed in — makes it return ok false and nothing, and the caller decodes
// the message with file.OTLPProto, which also says what is wrong.
// FuzzDecodeOTLP holds the two equal.
//
// It reads the message twice: first only its spans' trace IDs, to count
// each trace's spans, then to decode the spans into one block a trace,
// their attributes and references into blocks shared by many spans (what
// trace.Trace.Pack would make), not into slices grown span by span.
func DecodeOTLP(data []byte, res *trace.Resources, strs *trace.Strings) (traces []trace.Trace, ok bool) {
	return DecodeOTLPMessages([][]byte{data}, res, strs)
}

// DecodeOTLPMessages decodes TracesData messages as DecodeOTLP decodes
// them concatenated (one message that holds all their spans), without
// copying them into one; it declines what DecodeOTLP would decline of any
// of them. FuzzDecodeOTLP holds the two equal.
func DecodeOTLPMessages(msgs [][]byte, res *trace.Resources, strs *trace.Strings) (traces []trace.Trace, ok bool) {
	var o OTLPDecoder
	return o.Decode(msgs, res, strs)
}

// An OTLPDecoder decodes as DecodeOTLPMessages does, into memory it
// keeps and uses again: the traces a call returns are valid until the
// next call. It suits a caller that analyses the traces and lets them go
// (Collect keeps none), sparing the collector the spans', attributes'
// and references' blocks each call would make. The zero value is ready.
type OTLPDecoder struct {
	out   []trace.Trace
	at    map[trace.TraceID]int
	spans []trace.Span
	attrs []trace.Attribute
	refs  []trace.Ref
	// How many attributes and references the last call held: the blocks
	// the next call starts with hold as many (made then, so that one call
	// alone makes none it does not use).
	attrsUsed, refsUsed int
}

// keptSpans bounds what an OTLPDecoder keeps: blocks for as many spans
// (about 10 MiB) and eight times as many attributes.
const keptSpans = 1 << 16

// Decode decodes msgs as DecodeOTLPMessages does.
func (o *OTLPDecoder) Decode(msgs [][]byte, res *trace.Resources, strs *trace.Strings) (traces []trace.Trace, ok bool) {
	if o.at == nil {
		o.at = map[trace.TraceID]int{}
	}
	clear(o.at)
	if cap(o.attrs) < o.attrsUsed {
		o.attrs = make([]trace.Attribute, 0, o.attrsUsed+o.attrsUsed/4)
	}
	if cap(o.refs) < o.refsUsed {
		o.refs = make([]trace.Ref, 0, o.refsUsed+o.refsUsed/4)
	}
	d := otlpDecoder{res: res, strs: strs, out: o.out[:0], at: o.at, spans: o.spans, attrs: o.attrs[:0], refs: o.refs[:0]}
	ok = d.count(msgs)
	for i := 0; ok && i < len(msgs); i++ {
		ok = d.tracesData(msgs[i])
	}
	o.out, o.spans, o.attrsUsed, o.refsUsed = d.out, d.spans, min(d.attrsUsed, 8*keptSpans), min(d.refsUsed, keptSpans)
	if cap(o.spans) > keptSpans { // a rare large call's memory is let go
		o.out, o.at, o.spans = nil, nil, nil
	}
	if !ok {
		return nil, false
	}
	return d.out, true
}

type otlpDecoder struct {
	res  *trace.Resources
	strs *trace.Strings
	out  []trace.Trace
	at   map[trace.TraceID]int
	// spans is the block the traces' spans are cut from, made again only
	// when too small.
	spans []trace.Span
	// attrs and refs are the blocks the spans' attributes and references
	// are cut from; a span's are gathered in attr and ref first. The
	// counts are of all the spans'.
	attrs, attr         []trace.Attribute
	refs, ref           []trace.Ref
	attrsUsed, refsUsed int
}

// count reads the messages' spans' trace IDs, and makes each trace's
// block of spans. false: a message is not in the plain form (the
// decoding would decline it too).
func (d *otlpDecoder) count(msgs [][]byte) bool {
	var spans []int
	span := func(span []byte) bool {
		var id trace.TraceID
		r := wire{msg: span}
		for r.next() { // the trace ID comes first, as a rule
			if r.f.num == spanTraceID && r.f.typ == protowire.BytesType {
				id, _ = traceIDOf(r.bytes())
				break
			}
		}
		i, ok := d.at[id]
		if !ok {
			i = len(d.out)
			d.at[id] = i
			d.out = append(d.out, trace.Trace{ID: id})
			spans = append(spans, 0)
		}
		spans[i]++
		return true
	}
	for _, data := range msgs {
		if !eachSpan(data, span) {
			return false
		}
	}
	total := 0
	for _, n := range spans {
		total += n
	}
	if cap(d.spans) < total {
		d.spans = make([]trace.Span, total)
	}
	block := d.spans[:total]
	for i, n := range spans {
		d.out[i].Spans, block = block[:0:n], block[n:]
	}
	return true
}

// blockLen is how many attributes (or references) a block holds, unless
// a span needs more.
const blockLen = 256

// cut moves what a span gathered (from) into the free part of a block,
// starting a new block when it does not fit, and returns it there.
func cut[T any](block *[]T, from []T) []T {
	if len(from) == 0 {
		return nil
	}
	if cap(*block)-len(*block) < len(from) {
		*block = make([]T, 0, max(blockLen, len(from)))
	}
	n := len(*block)
	*block = append(*block, from...)
	return (*block)[n : n+len(from) : n+len(from)]
}

func (d *otlpDecoder) tracesData(msg []byte) bool {
	r := wire{msg: msg}
	for r.next() {
		if r.f.num != 1 || r.f.typ != protowire.BytesType || !d.resourceSpans(r.bytes()) {
			return false
		}
	}
	return !r.bad
}

func (d *otlpDecoder) resourceSpans(msg []byte) bool {
	var resource *trace.Resource
	return container(msg, true, func(num protowire.Number, b []byte) bool {
		switch num {
		case 1: // the resource: needed before the spans
			if r, ok := d.res.Encoded(b); ok { // met before: read and checked then
				resource = r
				return true
			}
			attrs, ok := d.resource(b)
			if !ok {
				return false
			}
			svc, _ := attrs.Get("service.name")
			resource = d.res.Get(svc, attrs)
			d.res.KeepEncoded(b, resource)
			return true
		case 2:
			if resource == nil {
				resource = d.res.Get("", nil)
			}
			return d.scopeSpans(b, resource)
		default: // schema_url
			return utf8.Valid(b)
		}
	})
}

func (d *otlpDecoder) resource(msg []byte) (trace.Attributes, bool) {
	var attrs trace.Attributes
	var seen uint32
	r := wire{msg: msg}
	for r.next() {
		switch f := &r.f; {
		case f.num == 1 && f.typ == protowire.BytesType:
			a, ok := d.keyValue(r.bytes())
			if !ok {
				return nil, false
			}
			attrs = append(attrs, a)
		case f.num == 2 && f.typ == protowire.VarintType && once(&seen, f.num): // dropped_attributes_count
		default:
			return nil, false
		}
	}
	return attrs, !r.bad
}

func (d *otlpDecoder) scopeSpans(msg []byte, resource *trace.Resource) bool {
	return container(msg, false, func(num protowire.Number, b []byte) bool {
		switch num {
		case 1:
			return check(b, scopeFields)
		case 2:
			return d.span(b, resource)
		default: // schema_url
			return utf8.Valid(b)
		}
	})
}

// checked says how a field of a message ktrace does not keep is checked:
// its wire type, whether it may repeat, and a check of its bytes (nil:
// none).
type checked struct {
	typ      protowire.Type
	repeated bool
	valid    func([]byte) bool
}

// scopeFields and eventFields are an InstrumentationScope's and a span
// event's fields, by number.
var (
	scopeFields = []checked{
		1: {protowire.BytesType, false, utf8.Valid},   // name
		2: {protowire.BytesType, false, utf8.Valid},   // version
		3: {protowire.BytesType, true, validKeyValue}, // attributes
		4: {protowire.VarintType, false, nil},         // dropped_attributes_count
	}
	eventFields = []checked{
		1: {protowire.Fixed64Type, false, nil},        // time_unix_nano
		2: {protowire.BytesType, false, utf8.Valid},   // name
		3: {protowire.BytesType, true, validKeyValue}, // attributes
		4: {protowire.VarintType, false, nil},         // dropped_attributes_count
	}
)

// check checks a message ktrace does not keep against its fields: known
// numbers of the right type, singular ones once, values valid.
func check(msg []byte, fields []checked) bool {
	var seen uint32
	r := wire{msg: msg}
	for r.next() {
		f := &r.f
		if f.num < 1 || int(f.num) >= len(fields) {
			return false
		}
		c := fields[f.num]
		if c.typ != f.typ || (!c.repeated && !once(&seen, f.num)) || (c.valid != nil && !c.valid(r.bytes())) {
			return false
		}
	}
	return !r.bad
}

// Span fields by number.
const (
	spanTraceID      = 1
	spanSpanID       = 2
	spanTraceState   = 3
	spanParentSpanID = 4
	spanName         = 5
	spanKind         = 6
	spanStart        = 7
	spanEnd          = 8
	spanAttributes   = 9
	spanDroppedAttrs = 10
	spanEvents       = 11
	spanDroppedEvts  = 12
	spanLinks        = 13
	spanDroppedLinks = 14
	spanStatus       = 15
	spanFlags        = 16
)

// spanWire is the wire type of each span field.
var spanWire = [...]protowire.Type{
	spanTraceID: protowire.BytesType, spanSpanID: protowire.BytesType, spanTraceState: protowire.BytesType,
	spanParentSpanID: protowire.BytesType, spanName: protowire.BytesType, spanKind: protowire.VarintType,
	spanStart: protowire.Fixed64Type, spanEnd: protowire.Fixed64Type, spanAttributes: protowire.BytesType,
	spanDroppedAttrs: protowire.VarintType, spanEvents: protowire.BytesType, spanDroppedEvts: protowire.VarintType,
	spanLinks: protowire.BytesType, spanDroppedLinks: protowire.VarintType, spanStatus: protowire.BytesType,
	spanFlags: protowire.Fixed32Type,
}

var otlpKinds = [...]trace.Kind{trace.KindUnspecified, trace.KindInternal, trace.KindServer, trace.KindClient, trace.KindProducer, trace.KindConsumer}

func (d *otlpDecoder) span(msg []byte, resource *trace.Resource) bool {
	var s trace.Span
	var seen uint32
	var traceID, spanID, parent, name []byte
	var kind, start, end uint64
	var links [4][]byte // most spans have none or one: no allocation
	nLinks := 0
	var moreLinks [][]byte
	d.attr = d.attr[:0]
	r := wire{msg: msg}
	for r.next() {
		f := &r.f
		if f.num < spanTraceID || f.num > spanFlags || f.typ != spanWire[f.num] {
			return false
		}
		switch f.num {
		case spanAttributes:
			a, ok := d.keyValue(r.bytes())
			if !ok {
				return false
			}
			d.attr = append(d.attr, a)
			continue
		case spanEvents:
			if !check(r.bytes(), eventFields) {
				return false
			}
			continue
		case spanLinks:
			if nLinks < len(links) {
				links[nLinks] = r.bytes()
			} else {
				moreLinks = append(moreLinks, r.bytes())
			}
			nLinks++
			continue
		}
		if !once(&seen, f.num) {
			return false
		}
		switch f.num {
		case spanTraceID:
			traceID = r.bytes()
		case spanSpanID:
			spanID = r.bytes()
		case spanTraceState:
			if !utf8.Valid(r.bytes()) {
				return false
			}
		case spanParentSpanID:
			parent = r.bytes()
		case spanName:
			if name = r.bytes(); !utf8.Valid(name) {
				return false
			}
		case spanKind:
			kind = f.n
		case spanStart:
			start = f.n
		case spanEnd:
			end = f.n
		case spanStatus:
			var ok bool
			if s.StatusMessage, s.Error, ok = status(r.bytes()); !ok {
				return false
			}
		}
	}
	if r.bad {
		return false
	}
	var ok bool
	if s.TraceID, ok = traceIDOf(traceID); !ok {
		return false
	}
	d.ref = d.ref[:0]
	if s.SpanID, ok = spanIDOf(spanID); !ok {
		return false
	}
	if len(parent) > 0 {
		pid, ok := spanIDOf(parent)
		if !ok {
			return false
		}
		d.ref = append(d.ref, trace.Ref{Type: trace.RefParent, TraceID: s.TraceID, SpanID: pid})
	}
	for i := range nLinks {
		l := links[min(i, len(links)-1)]
		if i >= len(links) {
			l = moreLinks[i-len(links)]
		}
		ref, ok := link(l)
		if !ok {
			return false
		}
		d.ref = append(d.ref, ref)
	}
	s.Attributes = cut(&d.attrs, d.attr)
	s.Refs = cut(&d.refs, d.ref)
	d.attrsUsed += len(d.attr)
	d.refsUsed += len(d.ref)
	if start > math.MaxInt64 || end > math.MaxInt64 || (end != 0 && end < start) {
		return false
	}
	s.Start = time.Unix(0, int64(start)).UTC()
	if end != 0 {
		s.Duration = time.Duration(end - start)
	}
	s.Operation = d.strs.Bytes(name)
	if k := int32(kind); k >= 0 && int(k) < len(otlpKinds) {
		s.Kind = otlpKinds[k]
	}
	s.Resource = resource
	i := d.at[s.TraceID] // counted
	d.out[i].Spans = append(d.out[i].Spans, s)
	return true
}

// status reads a Status: its message, and whether its code is ERROR.
func status(msg []byte) (message string, isError, ok bool) {
	var seen uint32
	r := wire{msg: msg}
	for r.next() {
		f := &r.f
		if !once(&seen, f.num) {
			return "", false, false
		}
		switch {
		case f.num == 2 && f.typ == protowire.BytesType:
			if !utf8.Valid(r.bytes()) {
				return "", false, false
			}
			message = string(r.bytes())
		case f.num == 3 && f.typ == protowire.VarintType:
			isError = int32(f.n) == 2 // STATUS_CODE_ERROR
		default:
			return "", false, false
		}
	}
	return message, isError, !r.bad
}

func link(msg []byte) (trace.Ref, bool) {
	ref := trace.Ref{Type: trace.RefLink}
	var seen uint32
	var traceID, spanID []byte
	var flags uint64
	r := wire{msg: msg}
	for r.next() {
		f := &r.f
		if f.num != 4 && !once(&seen, f.num) {
			return ref, false
		}
		ok := true
		switch {
		case f.num == 1 && f.typ == protowire.BytesType:
			traceID = r.bytes()
		case f.num == 2 && f.typ == protowire.BytesType:
			spanID = r.bytes()
		case f.num == 3 && f.typ == protowire.BytesType: // trace_state
			ok = utf8.Valid(r.bytes())
		case f.num == 4 && f.typ == protowire.BytesType: // attributes
			ok = validKeyValue(r.bytes())
		case f.num == 5 && f.typ == protowire.VarintType: // dropped_attributes_count
		case f.num == 6 && f.typ == protowire.Fixed32Type:
			flags = f.n
		default:
			ok = false
		}
		if !ok {
			return ref, false
		}
	}
	if r.bad {
		return ref, false
	}
	var ok bool
	if ref.TraceID, ok = traceIDOf(traceID); !ok {
		return ref, false
	}
	if ref.SpanID, ok = spanIDOf(spanID); !ok {
		return ref, false
	}
	if flags&0x100 != 0 { // the flags were set (as file.OTLPProto reads them)
		ref.Sampled = trace.SampledNo
		if flags&1 != 0 {
			ref.Sampled = trace.SampledYes
		}
	}
	return ref, true
}

// keyValue reads a KeyValue as an attribute, its value spelled as
// file.OTLPProto spells it, both shared through the decoder's strings.
func (d *otlpDecoder) keyValue(msg []byte) (trace.Attribute, bool) {
	if a, ok := d.strs.Attribute(msg); ok { // met before: read and checked then
		return a, true
	}
	key, raw, value, ok := keyValue(msg)
	if !ok {
		return trace.Attribute{}, false
	}
	a := trace.Attribute{Key: d.strs.Bytes(key)}
	if raw != nil { // a string value: shared without a copy first
		a.Value = d.strs.Bytes(raw)
	} else {
		a.Value = d.strs.Get(value)
	}
	d.strs.KeepAttribute(msg, a)
	return a, true
}

func validKeyValue(msg []byte) bool {
	_, _, _, ok := keyValue(msg)
	return ok
}

// keyValue reads a KeyValue: its key, and its value either as the bytes of
// a string (raw) or spelled (value).
func keyValue(msg []byte) (key, raw []byte, value string, ok bool) {
	var seen uint32
	r := wire{msg: msg}
	for r.next() {
		f := &r.f
		if f.typ != protowire.BytesType || !once(&seen, f.num) {
			return nil, nil, "", false
		}
		switch f.num {
		case 1:
			if key = r.bytes(); !utf8.Valid(key) {
				return nil, nil, "", false
			}
		case 2:
			if raw, value, ok = anyValue(r.bytes()); !ok {
				return nil, nil, "", false
			}
		default:
			return nil, nil, "", false
		}
	}
	return key, raw, value, !r.bad
}

// anyValue spells an AnyValue as file.OTLPProto does: strings as they
// are (returned as raw bytes), numbers and booleans as Go formats them,
// bytes in base64, arrays and maps as quoted lists.
func anyValue(msg []byte) (raw []byte, v string, ok bool) {
	r := wire{msg: msg}
	if !r.next() {
		return nil, "", !r.bad // no value: ""
	}
	f := &r.f
	switch {
	case f.num == 1 && f.typ == protowire.BytesType:
		if !utf8.Valid(r.bytes()) {
			return nil, "", false
		}
		raw = r.bytes()
		if raw == nil {
			raw = []byte{}
		}
	case f.num == 2 && f.typ == protowire.VarintType:
		v = strconv.FormatBool(f.n != 0)
	case f.num == 3 && f.typ == protowire.VarintType:
		v = strconv.FormatInt(int64(f.n), 10)
	case f.num == 4 && f.typ == protowire.Fixed64Type:
		v = strconv.FormatFloat(math.Float64frombits(f.n), 'g', -1, 64)
	case f.num == 7 && f.typ == protowire.BytesType:
		v = base64.StdEncoding.EncodeToString(r.bytes())
	case f.num == 5 && f.typ == protowire.BytesType: // ArrayValue
		var parts []string
		e := wire{msg: r.bytes()}
		for e.next() {
			if e.f.num != 1 || e.f.typ != protowire.BytesType {
				return nil, "", false
			}
			raw, s, ok := anyValue(e.bytes())
			if !ok {
				return nil, "", false
			}
			if raw != nil {
				s = string(raw)
			}
			parts = append(parts, strconv.Quote(s))
		}
		if e.bad {
			return nil, "", false
		}
		v = "[" + strings.Join(parts, ",") + "]"
	case f.num == 6 && f.typ == protowire.BytesType: // KeyValueList
		var parts []string
		e := wire{msg: r.bytes()}
		for e.next() {
			if e.f.num != 1 || e.f.typ != protowire.BytesType {
				return nil, "", false
			}
			k, raw, s, ok := keyValue(e.bytes())
			if !ok {
				return nil, "", false
			}
			if raw != nil {
				s = string(raw)
			}
			parts = append(parts, strconv.Quote(string(k))+":"+strconv.Quote(s))
		}
		if e.bad {
			return nil, "", false
		}
		v = "{" + strings.Join(parts, ",") + "}"
	default:
		return nil, "", false
	}
	if r.next() || r.bad { // a oneof given two values
		return nil, "", false
	}
	return raw, v, true
}
