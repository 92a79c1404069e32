package jaeger

import (
	"strconv"
	"strings"

	model "github.com/jaegertracing/jaeger-idl/model/v1"

	"github.com/ktrace-dev/ktrace/trace"
)

func toModelID(id trace.TraceID) model.TraceID { return model.TraceID{High: id.High, Low: id.Low} }

func fromModelID(id model.TraceID) trace.TraceID { return trace.TraceID{High: id.High, Low: id.Low} }

func kvString(kv *model.KeyValue) string {
	switch kv.VType {
	case model.ValueType_STRING:
		return kv.VStr
	case model.ValueType_BOOL:
		return strconv.FormatBool(kv.VBool)
	case model.ValueType_INT64:
		return strconv.FormatInt(kv.VInt64, 10)
	case model.ValueType_FLOAT64:
		return strconv.FormatFloat(kv.VFloat64, 'g', -1, 64)
	}
	return kv.AsString()
}

// convert maps one api_v2 span onto the model. Jaeger encodes the span
// kind, error flag and OTel status as tags; they become span fields. Short
// strings are shared through strs, as the file readers share them.
func convert(ms *model.Span, res *trace.Resources, strs *trace.Strings) trace.Span {
	s := trace.Span{
		TraceID:   fromModelID(ms.TraceID),
		SpanID:    trace.SpanID(ms.SpanID),
		Operation: strs.Get(ms.OperationName),
		Start:     ms.StartTime.UTC(),
		Duration:  ms.Duration,
	}
	s.Attributes = make(trace.Attributes, 0, len(ms.Tags))
	for i := range ms.Tags {
		kv := &ms.Tags[i]
		v := kvString(kv)
		switch kv.Key {
		case "span.kind":
			s.Kind = trace.ParseKind(v)
			continue
		case "error":
			s.Error = s.Error || v == "true"
			continue
		case "otel.status_code":
			s.Error = s.Error || strings.EqualFold(v, "ERROR")
			continue
		case "otel.status_description":
			s.StatusMessage = v
			continue
		}
		s.Attributes = append(s.Attributes, trace.Attribute{Key: strs.Get(kv.Key), Value: strs.Get(v)})
	}
	for _, r := range ms.References {
		ref := trace.Ref{Type: trace.RefParent, TraceID: fromModelID(r.TraceID), SpanID: trace.SpanID(r.SpanID)}
		if r.RefType == model.SpanRefType_FOLLOWS_FROM {
			ref.Type = trace.RefLink
		}
		s.Refs = append(s.Refs, ref)
	}
	if ms.Process != nil {
		attrs := make(trace.Attributes, len(ms.Process.Tags))
		for i := range ms.Process.Tags {
			attrs[i] = trace.Attribute{Key: ms.Process.Tags[i].Key, Value: kvString(&ms.Process.Tags[i])}
		}
		s.Resource = res.Get(ms.Process.ServiceName, attrs)
	} else {
		s.Resource = res.Get("", nil)
	}
	return s
}
