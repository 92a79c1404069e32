package file

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ktrace-dev/ktrace/trace"
)

type otlpResourceSpans struct {
	Resource struct {
		Attributes []otlpKV `json:"attributes"`
	} `json:"resource"`
	ScopeSpans []otlpScopeSpans `json:"scopeSpans"`
	// Collectors before OTLP 0.15 wrote this name.
	InstrumentationLibrarySpans []otlpScopeSpans `json:"instrumentationLibrarySpans"`
}

type otlpScopeSpans struct {
	Spans []otlpSpan `json:"spans"`
}

type otlpSpan struct {
	TraceID      string          `json:"traceId"`
	SpanID       string          `json:"spanId"`
	ParentSpanID string          `json:"parentSpanId"`
	Name         string          `json:"name"`
	Kind         json.RawMessage `json:"kind"`
	Start        json.Number     `json:"startTimeUnixNano"`
	End          json.Number     `json:"endTimeUnixNano"`
	Attributes   []otlpKV        `json:"attributes"`
	Links        []struct {
		TraceID string `json:"traceId"`
		SpanID  string `json:"spanId"`
		// Flags are W3C trace flags in bits 0-7; bit 8 says the flags
		// were set (OTLP's SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK, which
		// SDKs that fill link flags set), so 0 is read as unknown.
		Flags uint32 `json:"flags"`
	} `json:"links"`
	Status struct {
		Code    json.RawMessage `json:"code"`
		Message string          `json:"message"`
	} `json:"status"`
}

type otlpKV struct {
	Key   string    `json:"key"`
	Value otlpValue `json:"value"`
}

type otlpValue struct {
	StringValue *string         `json:"stringValue"`
	BoolValue   *bool           `json:"boolValue"`
	IntValue    json.RawMessage `json:"intValue"`
	DoubleValue json.RawMessage `json:"doubleValue"`
	BytesValue  *string         `json:"bytesValue"`
	ArrayValue  *struct {
		Values []otlpValue `json:"values"`
	} `json:"arrayValue"`
	KvlistValue *struct {
		Values []otlpKV `json:"values"`
	} `json:"kvlistValue"`
}

func (v *otlpValue) String() string {
	switch {
	case v.StringValue != nil:
		return *v.StringValue
	case v.BoolValue != nil:
		return strconv.FormatBool(*v.BoolValue)
	case len(v.IntValue) > 0:
		return strings.Trim(string(v.IntValue), `"`)
	case len(v.DoubleValue) > 0:
		return strings.Trim(string(v.DoubleValue), `"`)
	case v.BytesValue != nil:
		return *v.BytesValue
	case v.ArrayValue != nil:
		parts := make([]string, len(v.ArrayValue.Values))
		for i := range v.ArrayValue.Values {
			parts[i] = strconv.Quote(v.ArrayValue.Values[i].String())
		}
		return "[" + strings.Join(parts, ",") + "]"
	case v.KvlistValue != nil:
		parts := make([]string, len(v.KvlistValue.Values))
		for i, kv := range v.KvlistValue.Values {
			parts[i] = strconv.Quote(kv.Key) + ":" + strconv.Quote(kv.Value.String())
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return ""
}

func otlpAttrs(kvs []otlpKV) trace.Attributes {
	a := make(trace.Attributes, len(kvs))
	for i := range kvs {
		a[i] = trace.Attribute{Key: kvs[i].Key, Value: kvs[i].Value.String()}
	}
	return a
}

// otlpID decodes an ID written as hex (the OTLP JSON encoding) or as base64
// (plain protobuf JSON, which some tools write).
func otlpID(s string, n int) ([]byte, error) {
	if len(s) == 2*n {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == n {
		return b, nil
	}
	return nil, fmt.Errorf("invalid id %q: want %d hex digits", s, 2*n)
}

func otlpTraceID(s string) (trace.TraceID, error) {
	b, err := otlpID(s, 16)
	if err != nil {
		return trace.TraceID{}, err
	}
	return trace.ParseTraceID(hex.EncodeToString(b))
}

func otlpSpanID(s string) (trace.SpanID, error) {
	b, err := otlpID(s, 8)
	if err != nil {
		return 0, err
	}
	return trace.ParseSpanID(hex.EncodeToString(b))
}

var otlpKinds = map[string]trace.Kind{
	"0": trace.KindUnspecified, "1": trace.KindInternal, "2": trace.KindServer,
	"3": trace.KindClient, "4": trace.KindProducer, "5": trace.KindConsumer,
}

func otlpKind(raw json.RawMessage) trace.Kind {
	s := strings.Trim(string(raw), `"`)
	if k, ok := otlpKinds[s]; ok {
		return k
	}
	return trace.ParseKind(s)
}

func nanos(n json.Number) (int64, error) {
	if n == "" {
		return 0, nil
	}
	return strconv.ParseInt(string(n), 10, 64)
}

// otlpCollector groups spans by trace ID across request objects, since a
// collector writes one trace over many lines.
type otlpCollector struct {
	order  []trace.TraceID
	traces map[trace.TraceID][]trace.Span
}

func (c *otlpCollector) add(name string, rss []otlpResourceSpans, res *trace.Resources) error {
	if c.traces == nil {
		c.traces = make(map[trace.TraceID][]trace.Span)
	}
	for i := range rss {
		rs := &rss[i]
		attrs := otlpAttrs(rs.Resource.Attributes)
		svc, _ := attrs.Get("service.name")
		resource := res.Get(svc, attrs)
		for _, group := range [][]otlpScopeSpans{rs.ScopeSpans, rs.InstrumentationLibrarySpans} {
			for _, ss := range group {
				for j := range ss.Spans {
					s, err := convertOTLP(&ss.Spans[j], resource)
					if err != nil {
						return bad(name, "OTLP JSON: span %q: %v", ss.Spans[j].Name, err)
					}
					if _, ok := c.traces[s.TraceID]; !ok {
						c.order = append(c.order, s.TraceID)
					}
					c.traces[s.TraceID] = append(c.traces[s.TraceID], s)
				}
			}
		}
	}
	return nil
}

func (c *otlpCollector) flush(add func(trace.Trace) error) error {
	for _, id := range c.order {
		t := trace.Trace{ID: id, Spans: c.traces[id]}
		if err := trace.Validate(&t); err != nil {
			return err
		}
		if err := add(t); err != nil {
			return err
		}
	}
	return nil
}

func convertOTLP(os *otlpSpan, resource *trace.Resource) (trace.Span, error) {
	var s trace.Span
	var err error
	if s.TraceID, err = otlpTraceID(os.TraceID); err != nil {
		return s, err
	}
	if s.SpanID, err = otlpSpanID(os.SpanID); err != nil {
		return s, err
	}
	if os.ParentSpanID != "" {
		pid, err := otlpSpanID(os.ParentSpanID)
		if err != nil {
			return s, err
		}
		s.Refs = append(s.Refs, trace.Ref{Type: trace.RefParent, TraceID: s.TraceID, SpanID: pid})
	}
	for _, l := range os.Links {
		ref := trace.Ref{Type: trace.RefLink}
		if ref.TraceID, err = otlpTraceID(l.TraceID); err != nil {
			return s, err
		}
		if ref.SpanID, err = otlpSpanID(l.SpanID); err != nil {
			return s, err
		}
		if l.Flags&0x100 != 0 {
			ref.Sampled = trace.SampledNo
			if l.Flags&1 != 0 {
				ref.Sampled = trace.SampledYes
			}
		}
		s.Refs = append(s.Refs, ref)
	}
	start, err := nanos(os.Start)
	if err != nil {
		return s, fmt.Errorf("startTimeUnixNano is not an integer: %s", os.Start)
	}
	end, err := nanos(os.End)
	if err != nil {
		return s, fmt.Errorf("endTimeUnixNano is not an integer: %s", os.End)
	}
	s.Start = time.Unix(0, start).UTC()
	switch {
	case end == 0: // no end time: a span still open when it was written
	case end < start:
		return s, fmt.Errorf("span %s: endTimeUnixNano %d is before startTimeUnixNano %d", os.SpanID, end, start)
	default:
		s.Duration = time.Duration(end - start)
	}
	s.Operation = os.Name
	s.Kind = otlpKind(os.Kind)
	code := strings.Trim(string(os.Status.Code), `"`)
	s.Error = code == "2" || code == "STATUS_CODE_ERROR"
	s.StatusMessage = os.Status.Message
	s.Attributes = otlpAttrs(os.Attributes)
	s.Resource = resource
	return s, nil
}
