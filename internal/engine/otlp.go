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
// message structs in between (twice as fast: BenchmarkDecodeOTLP).
// It reads the plain form every SDK and collector writes; anything else —
// an error of any kind, an unknown field, a singular field given twice, a
// oneof given two values, a message's fields out of the order they are
// needed in — makes it return ok false and nothing, and the caller decodes
// the message with file.OTLPProto, which also says what is wrong.
// FuzzDecodeOTLP holds the two equal.
func DecodeOTLP(data []byte, res *trace.Resources, strs *trace.Strings) (traces []trace.Trace, ok bool) {
	d := otlpDecoder{res: res, strs: strs, at: map[trace.TraceID]int{}}
	if !d.tracesData(data) {
		return nil, false
	}
	return d.out, true
}

type otlpDecoder struct {
	res  *trace.Resources
	strs *trace.Strings
	out  []trace.Trace
	at   map[trace.TraceID]int
}

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
	num, typ, n := protowire.ConsumeTag(r.msg)
	if n < 0 {
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
		r.f.bytes, n = protowire.ConsumeBytes(r.msg)
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

// once notes field num as seen, and says whether it was not before.
func once(seen *uint32, num protowire.Number) bool {
	bit := uint32(1) << (num & 31)
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

func (d *otlpDecoder) tracesData(msg []byte) bool {
	r := wire{msg: msg}
	for r.next() {
		if r.f.num != 1 || r.f.typ != protowire.BytesType || !d.resourceSpans(r.f.bytes) {
			return false
		}
	}
	return !r.bad
}

func (d *otlpDecoder) resourceSpans(msg []byte) bool {
	var seen uint32
	var resource *trace.Resource
	scopes := 0
	r := wire{msg: msg}
	for r.next() {
		f := r.f
		if f.typ != protowire.BytesType || (f.num != 2 && !once(&seen, f.num)) {
			return false
		}
		switch f.num {
		case 1: // resource: needed before the spans
			if scopes > 0 {
				return false
			}
			attrs, ok := d.resource(f.bytes)
			if !ok {
				return false
			}
			svc, _ := attrs.Get("service.name")
			resource = d.res.Get(svc, attrs)
		case 2:
			if resource == nil {
				resource = d.res.Get("", nil)
			}
			scopes++
			if !d.scopeSpans(f.bytes, resource) {
				return false
			}
		case 3: // schema_url
			if !utf8.Valid(f.bytes) {
				return false
			}
		default:
			return false
		}
	}
	return !r.bad
}

func (d *otlpDecoder) resource(msg []byte) (trace.Attributes, bool) {
	var attrs trace.Attributes
	var seen uint32
	r := wire{msg: msg}
	for r.next() {
		switch f := r.f; {
		case f.num == 1 && f.typ == protowire.BytesType:
			a, ok := d.keyValue(f.bytes)
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
	var seen uint32
	r := wire{msg: msg}
	for r.next() {
		f := r.f
		if f.typ != protowire.BytesType || (f.num != 2 && !once(&seen, f.num)) {
			return false
		}
		var ok bool
		switch f.num {
		case 1:
			ok = check(f.bytes, scopeFields)
		case 2:
			ok = d.span(f.bytes, resource)
		case 3: // schema_url
			ok = utf8.Valid(f.bytes)
		}
		if !ok {
			return false
		}
	}
	return !r.bad
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
		f := r.f
		if f.num < 1 || int(f.num) >= len(fields) {
			return false
		}
		c := fields[f.num]
		if c.typ != f.typ || (!c.repeated && !once(&seen, f.num)) || (c.valid != nil && !c.valid(f.bytes)) {
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
	r := wire{msg: msg}
	for r.next() {
		f := r.f
		if f.num < spanTraceID || f.num > spanFlags || f.typ != spanWire[f.num] {
			return false
		}
		switch f.num {
		case spanAttributes:
			a, ok := d.keyValue(f.bytes)
			if !ok {
				return false
			}
			s.Attributes = append(s.Attributes, a)
			continue
		case spanEvents:
			if !check(f.bytes, eventFields) {
				return false
			}
			continue
		case spanLinks:
			if nLinks < len(links) {
				links[nLinks] = f.bytes
			} else {
				moreLinks = append(moreLinks, f.bytes)
			}
			nLinks++
			continue
		}
		if !once(&seen, f.num) {
			return false
		}
		switch f.num {
		case spanTraceID:
			traceID = f.bytes
		case spanSpanID:
			spanID = f.bytes
		case spanTraceState:
			if !utf8.Valid(f.bytes) {
				return false
			}
		case spanParentSpanID:
			parent = f.bytes
		case spanName:
			if name = f.bytes; !utf8.Valid(name) {
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
			if s.StatusMessage, s.Error, ok = status(f.bytes); !ok {
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
	if s.SpanID, ok = spanIDOf(spanID); !ok {
		return false
	}
	if len(parent) > 0 {
		pid, ok := spanIDOf(parent)
		if !ok {
			return false
		}
		s.Refs = append(s.Refs, trace.Ref{Type: trace.RefParent, TraceID: s.TraceID, SpanID: pid})
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
		s.Refs = append(s.Refs, ref)
	}
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
	i, seenTrace := d.at[s.TraceID]
	if !seenTrace {
		i = len(d.out)
		d.at[s.TraceID] = i
		d.out = append(d.out, trace.Trace{ID: s.TraceID})
	}
	d.out[i].Spans = append(d.out[i].Spans, s)
	return true
}

// status reads a Status: its message, and whether its code is ERROR.
func status(msg []byte) (message string, isError, ok bool) {
	var seen uint32
	r := wire{msg: msg}
	for r.next() {
		f := r.f
		if !once(&seen, f.num) {
			return "", false, false
		}
		switch {
		case f.num == 2 && f.typ == protowire.BytesType:
			if !utf8.Valid(f.bytes) {
				return "", false, false
			}
			message = string(f.bytes)
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
		f := r.f
		if f.num != 4 && !once(&seen, f.num) {
			return ref, false
		}
		ok := true
		switch {
		case f.num == 1 && f.typ == protowire.BytesType:
			traceID = f.bytes
		case f.num == 2 && f.typ == protowire.BytesType:
			spanID = f.bytes
		case f.num == 3 && f.typ == protowire.BytesType: // trace_state
			ok = utf8.Valid(f.bytes)
		case f.num == 4 && f.typ == protowire.BytesType: // attributes
			ok = validKeyValue(f.bytes)
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

// keyValue reads a KeyValue as an attribute, its value spelled as
// file.OTLPProto spells it, both shared through the decoder's strings.
func (d *otlpDecoder) keyValue(msg []byte) (trace.Attribute, bool) {
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
		f := r.f
		if f.typ != protowire.BytesType || !once(&seen, f.num) {
			return nil, nil, "", false
		}
		switch f.num {
		case 1:
			if key = f.bytes; !utf8.Valid(key) {
				return nil, nil, "", false
			}
		case 2:
			if raw, value, ok = anyValue(f.bytes); !ok {
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
	f := r.f
	switch {
	case f.num == 1 && f.typ == protowire.BytesType:
		if !utf8.Valid(f.bytes) {
			return nil, "", false
		}
		raw = f.bytes
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
		v = base64.StdEncoding.EncodeToString(f.bytes)
	case f.num == 5 && f.typ == protowire.BytesType: // ArrayValue
		var parts []string
		e := wire{msg: f.bytes}
		for e.next() {
			if e.f.num != 1 || e.f.typ != protowire.BytesType {
				return nil, "", false
			}
			raw, s, ok := anyValue(e.f.bytes)
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
		e := wire{msg: f.bytes}
		for e.next() {
			if e.f.num != 1 || e.f.typ != protowire.BytesType {
				return nil, "", false
			}
			k, raw, s, ok := keyValue(e.f.bytes)
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
// returned, for what does not have the plain form (as DecodeOTLP).
func SplitOTLP(data []byte) (pieces []TracePiece, ok bool) {
	type run struct {
		rs, ss int // which resource and scope block
		spans  [][]byte
	}
	type block struct{ resource, schema []byte }
	var resources, scopes []block // by index; the raw fields to copy
	type traceRuns struct {
		id   trace.TraceID
		runs []run
	}
	var order []*traceRuns
	at := map[trace.TraceID]*traceRuns{}
	r := wire{msg: data}
	for r.next() {
		if r.f.num != 1 || r.f.typ != protowire.BytesType {
			return nil, false
		}
		rsIdx := len(resources)
		resources = append(resources, block{})
		var seen uint32
		inScopes := false
		rs := wire{msg: r.f.bytes}
		for rs.next() {
			f := rs.f
			if f.typ != protowire.BytesType || (f.num != 2 && !once(&seen, f.num)) {
				return nil, false
			}
			switch f.num {
			case 1:
				if inScopes {
					return nil, false
				}
				resources[rsIdx].resource = f.bytes
			case 3:
				resources[rsIdx].schema = f.bytes
			case 2:
				inScopes = true
				ssIdx := len(scopes)
				scopes = append(scopes, block{})
				var ssSeen uint32
				ss := wire{msg: f.bytes}
				for ss.next() {
					g := ss.f
					if g.typ != protowire.BytesType || (g.num != 2 && !once(&ssSeen, g.num)) {
						return nil, false
					}
					switch g.num {
					case 1:
						scopes[ssIdx].resource = g.bytes
					case 3:
						scopes[ssIdx].schema = g.bytes
					case 2:
						id, ok := spanTraceIDOf(g.bytes)
						if !ok {
							return nil, false
						}
						t := at[id]
						if t == nil {
							t = &traceRuns{id: id}
							at[id] = t
							order = append(order, t)
						}
						if n := len(t.runs); n == 0 || t.runs[n-1].rs != rsIdx || t.runs[n-1].ss != ssIdx {
							t.runs = append(t.runs, run{rs: rsIdx, ss: ssIdx})
						}
						last := &t.runs[len(t.runs)-1]
						last.spans = append(last.spans, g.bytes)
					default:
						return nil, false
					}
				}
				if ss.bad {
					return nil, false
				}
			default:
				return nil, false
			}
		}
		if rs.bad {
			return nil, false
		}
	}
	if r.bad {
		return nil, false
	}
	// Each piece: a ResourceSpans of one ScopeSpans for each run.
	appendField := func(b []byte, num protowire.Number, v []byte) []byte {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendBytes(b, v)
	}
	pieces = make([]TracePiece, len(order))
	var ssBuf, rsBuf []byte
	for i, t := range order {
		var msg []byte
		n := 0
		for _, ru := range t.runs {
			n += len(ru.spans)
			ssBuf = ssBuf[:0]
			if sc := scopes[ru.ss]; sc.resource != nil {
				ssBuf = appendField(ssBuf, 1, sc.resource)
			}
			for _, sp := range ru.spans {
				ssBuf = appendField(ssBuf, 2, sp)
			}
			if sc := scopes[ru.ss]; sc.schema != nil {
				ssBuf = appendField(ssBuf, 3, sc.schema)
			}
			rsBuf = rsBuf[:0]
			if rb := resources[ru.rs]; rb.resource != nil {
				rsBuf = appendField(rsBuf, 1, rb.resource)
			}
			rsBuf = appendField(rsBuf, 2, ssBuf)
			if rb := resources[ru.rs]; rb.schema != nil {
				rsBuf = appendField(rsBuf, 3, rb.schema)
			}
			msg = appendField(msg, 1, rsBuf)
		}
		pieces[i] = TracePiece{ID: t.id, Spans: n, Data: msg}
	}
	return pieces, true
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
