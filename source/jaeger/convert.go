package jaeger

import (
	"bytes"
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

// decoder holds what converting spans shares from span to span: short
// strings (as the file readers share them) and resources.
type decoder struct {
	strs trace.Strings
	res  resources
}

// convert maps one api_v2 span onto the model. Jaeger encodes the span
// kind, error flag and OTel status as tags; they become span fields.
func (d *decoder) convert(ms *model.Span) trace.Span {
	strs := &d.strs
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
		if kv.VType == model.ValueType_STRING || len(v) <= 4 {
			v = strs.Get(v) // numbers (offsets) rarely repeat: not worth a lookup
		}
		s.Attributes = append(s.Attributes, trace.Attribute{Key: strs.Get(kv.Key), Value: v})
	}
	for _, r := range ms.References {
		ref := trace.Ref{Type: trace.RefParent, TraceID: fromModelID(r.TraceID), SpanID: trace.SpanID(r.SpanID)}
		if r.RefType == model.SpanRefType_FOLLOWS_FROM {
			ref.Type = trace.RefLink
		}
		s.Refs = append(s.Refs, ref)
	}
	s.Resource = d.res.of(ms.Process)
	return s
}

// resources hands out the shared resource of each process. Every span
// Jaeger sends carries its own copy of its process, so the last resource
// of each service is remembered with the tags it came from and reused while
// they match, without building the key trace.Resources hashes.
type resources struct {
	all  trace.Resources
	last map[string]procResource
}

type procResource struct {
	tags []model.KeyValue
	res  *trace.Resource
}

func (r *resources) of(p *model.Process) *trace.Resource {
	if p == nil {
		return r.all.Get("", nil)
	}
	if l, ok := r.last[p.ServiceName]; ok && sameTags(l.tags, p.Tags) {
		return l.res
	}
	attrs := make(trace.Attributes, len(p.Tags))
	for i := range p.Tags {
		attrs[i] = trace.Attribute{Key: p.Tags[i].Key, Value: kvString(&p.Tags[i])}
	}
	res := r.all.Get(p.ServiceName, attrs)
	if r.last == nil {
		r.last = map[string]procResource{}
	}
	r.last[p.ServiceName] = procResource{p.Tags, res}
	return res
}

func sameTags(a, b []model.KeyValue) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := &a[i], &b[i]
		if x.Key != y.Key || x.VType != y.VType || x.VStr != y.VStr || x.VBool != y.VBool ||
			x.VInt64 != y.VInt64 || x.VFloat64 != y.VFloat64 || !bytes.Equal(x.VBinary, y.VBinary) {
			return false
		}
	}
	return true
}
