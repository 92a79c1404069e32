package file

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/ktrace-dev/ktrace/trace"
)

// OTLPProto decodes one OTLP protobuf message — TracesData, which is what
// an ExportTraceServiceRequest and the collector's kafka exporter
// (encoding otlp_proto) write — with the OTLP protos, and returns its spans
// grouped by trace, in the order the traces first appear. The spans of one
// trace may come in many messages: the fragments are neither validated nor
// packed (whoever assembles them does). Values read as the OTLP JSON reader
// reads them; resources and short strings are shared through res and strs.
func OTLPProto(data []byte, res *trace.Resources, strs *trace.Strings) ([]trace.Trace, error) {
	var td tracepb.TracesData
	if err := proto.Unmarshal(data, &td); err != nil {
		return nil, fmt.Errorf("OTLP protobuf: %w", err)
	}
	var out []trace.Trace
	at := map[trace.TraceID]int{}
	for _, rs := range td.GetResourceSpans() {
		attrs := protoAttrs(rs.GetResource().GetAttributes(), strs)
		svc, _ := attrs.Get("service.name")
		resource := res.Get(svc, attrs)
		for _, ss := range rs.GetScopeSpans() {
			for _, ps := range ss.GetSpans() {
				s, err := convertProto(ps, resource, strs)
				if err != nil {
					return nil, fmt.Errorf("OTLP protobuf: span %q: %w", ps.GetName(), err)
				}
				i, ok := at[s.TraceID]
				if !ok {
					i = len(out)
					at[s.TraceID] = i
					out = append(out, trace.Trace{ID: s.TraceID})
				}
				out[i].Spans = append(out[i].Spans, s)
			}
		}
	}
	return out, nil
}

func protoTraceID(b []byte) (trace.TraceID, error) {
	if len(b) != 16 {
		return trace.TraceID{}, fmt.Errorf("trace id of %d bytes, want 16", len(b))
	}
	var id trace.TraceID
	for i := range 8 {
		id.High = id.High<<8 | uint64(b[i])
		id.Low = id.Low<<8 | uint64(b[8+i])
	}
	if id.IsZero() {
		return id, errors.New("zero trace id")
	}
	return id, nil
}

func protoSpanID(b []byte) (trace.SpanID, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("span id of %d bytes, want 8", len(b))
	}
	var id uint64
	for _, c := range b {
		id = id<<8 | uint64(c)
	}
	return trace.SpanID(id), nil
}

func convertProto(ps *tracepb.Span, resource *trace.Resource, strs *trace.Strings) (trace.Span, error) {
	var s trace.Span
	var err error
	if s.TraceID, err = protoTraceID(ps.GetTraceId()); err != nil {
		return s, err
	}
	if s.SpanID, err = protoSpanID(ps.GetSpanId()); err != nil {
		return s, err
	}
	if p := ps.GetParentSpanId(); len(p) > 0 {
		pid, err := protoSpanID(p)
		if err != nil {
			return s, fmt.Errorf("parent: %w", err)
		}
		s.Refs = append(s.Refs, trace.Ref{Type: trace.RefParent, TraceID: s.TraceID, SpanID: pid})
	}
	for _, l := range ps.GetLinks() {
		ref := trace.Ref{Type: trace.RefLink}
		if ref.TraceID, err = protoTraceID(l.GetTraceId()); err != nil {
			return s, fmt.Errorf("link: %w", err)
		}
		if ref.SpanID, err = protoSpanID(l.GetSpanId()); err != nil {
			return s, fmt.Errorf("link: %w", err)
		}
		if f := l.GetFlags(); f&0x100 != 0 { // the flags were set (see the JSON reader)
			ref.Sampled = trace.SampledNo
			if f&1 != 0 {
				ref.Sampled = trace.SampledYes
			}
		}
		s.Refs = append(s.Refs, ref)
	}
	start, end := ps.GetStartTimeUnixNano(), ps.GetEndTimeUnixNano()
	if start > 1<<63-1 || end > 1<<63-1 {
		return s, errors.New("time past year 2262")
	}
	s.Start = time.Unix(0, int64(start)).UTC()
	switch {
	case end == 0: // still open when it was written
	case end < start:
		return s, fmt.Errorf("span %s: endTimeUnixNano %d is before startTimeUnixNano %d", s.SpanID, end, start)
	default:
		s.Duration = time.Duration(end - start)
	}
	s.Operation = strs.Get(ps.GetName())
	s.Kind = otlpKinds[strconv.Itoa(int(ps.GetKind()))]
	s.Error = ps.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR
	s.StatusMessage = ps.GetStatus().GetMessage()
	s.Attributes = protoAttrs(ps.GetAttributes(), strs)
	s.Resource = resource
	return s, nil
}

func protoAttrs(kvs []*commonpb.KeyValue, strs *trace.Strings) trace.Attributes {
	if len(kvs) == 0 {
		return nil
	}
	a := make(trace.Attributes, len(kvs))
	for i, kv := range kvs {
		a[i] = trace.Attribute{Key: strs.Get(kv.GetKey()), Value: strs.Get(protoValue(kv.GetValue()))}
	}
	return a
}

// protoValue is a value as the OTLP JSON reader spells it.
func protoValue(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	case *commonpb.AnyValue_BytesValue:
		return base64.StdEncoding.EncodeToString(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue:
		parts := make([]string, len(x.ArrayValue.GetValues()))
		for i, e := range x.ArrayValue.GetValues() {
			parts[i] = strconv.Quote(protoValue(e))
		}
		return "[" + strings.Join(parts, ",") + "]"
	case *commonpb.AnyValue_KvlistValue:
		parts := make([]string, len(x.KvlistValue.GetValues()))
		for i, kv := range x.KvlistValue.GetValues() {
			parts[i] = strconv.Quote(kv.GetKey()) + ":" + strconv.Quote(protoValue(kv.GetValue()))
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return ""
}

// MarshalOTLPProto writes traces as one OTLP protobuf TracesData message,
// which OTLPProto reads back: a resource block per distinct resource, every
// attribute value as a string (ktrace keeps them so).
func MarshalOTLPProto(traces []trace.Trace) ([]byte, error) {
	var td tracepb.TracesData
	blocks := map[*trace.Resource]*tracepb.ScopeSpans{}
	for i := range traces {
		for j := range traces[i].Spans {
			s := &traces[i].Spans[j]
			ss := blocks[s.Resource]
			if ss == nil {
				ss = &tracepb.ScopeSpans{}
				rs := &tracepb.ResourceSpans{ScopeSpans: []*tracepb.ScopeSpans{ss}}
				if s.Resource != nil {
					attrs := s.Resource.Attributes
					if _, ok := attrs.Get("service.name"); !ok {
						attrs = append(trace.Attributes{{Key: "service.name", Value: s.Resource.Service}}, attrs...)
					}
					rs.Resource = &resourcepb.Resource{Attributes: protoKVs(attrs)}
				}
				td.ResourceSpans = append(td.ResourceSpans, rs)
				blocks[s.Resource] = ss
			}
			ss.Spans = append(ss.Spans, protoSpan(s))
		}
	}
	return proto.Marshal(&td)
}

func protoKVs(a trace.Attributes) []*commonpb.KeyValue {
	out := make([]*commonpb.KeyValue, len(a))
	for i, kv := range a {
		out[i] = &commonpb.KeyValue{Key: kv.Key, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: kv.Value}}}
	}
	return out
}

func traceIDBytes(id trace.TraceID) []byte {
	b := make([]byte, 16)
	for i := range 8 {
		b[7-i] = byte(id.High >> (8 * i))
		b[15-i] = byte(id.Low >> (8 * i))
	}
	return b
}

func spanIDBytes(id trace.SpanID) []byte {
	b := make([]byte, 8)
	for i := range 8 {
		b[7-i] = byte(uint64(id) >> (8 * i))
	}
	return b
}

func protoSpan(s *trace.Span) *tracepb.Span {
	ps := &tracepb.Span{TraceId: traceIDBytes(s.TraceID), SpanId: spanIDBytes(s.SpanID), Name: s.Operation,
		Kind: tracepb.Span_SpanKind(protoKind[s.Kind]), StartTimeUnixNano: uint64(s.Start.UnixNano()),
		Attributes: protoKVs(s.Attributes), Status: &tracepb.Status{Message: s.StatusMessage}}
	if s.Duration > 0 {
		ps.EndTimeUnixNano = uint64(s.Start.UnixNano() + int64(s.Duration))
	} else {
		ps.EndTimeUnixNano = ps.StartTimeUnixNano
	}
	if s.Error {
		ps.Status.Code = tracepb.Status_STATUS_CODE_ERROR
	}
	for _, r := range s.Refs {
		if r.Type == trace.RefParent {
			ps.ParentSpanId = spanIDBytes(r.SpanID)
			continue
		}
		l := &tracepb.Span_Link{TraceId: traceIDBytes(r.TraceID), SpanId: spanIDBytes(r.SpanID)}
		switch r.Sampled {
		case trace.SampledYes:
			l.Flags = 0x101
		case trace.SampledNo:
			l.Flags = 0x100
		}
		ps.Links = append(ps.Links, l)
	}
	return ps
}

// protoKind is trace.Kind as OTLP numbers it.
var protoKind = map[trace.Kind]int32{trace.KindUnspecified: 0, trace.KindInternal: 1, trace.KindServer: 2,
	trace.KindClient: 3, trace.KindProducer: 4, trace.KindConsumer: 5}
