package file

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ktrace-dev/ktrace/trace"
)

type jaegerTrace struct {
	TraceID   string                   `json:"traceID"`
	Spans     []jaegerSpan             `json:"spans"`
	Processes map[string]jaegerProcess `json:"processes"`
}

type jaegerSpan struct {
	TraceID       string      `json:"traceID"`
	SpanID        string      `json:"spanID"`
	OperationName string      `json:"operationName"`
	References    []jaegerRef `json:"references"`
	StartTime     json.Number `json:"startTime"` // microseconds since the epoch
	Duration      json.Number `json:"duration"`  // microseconds
	Tags          []jaegerTag `json:"tags"`
	ProcessID     string      `json:"processID"`
	Process       *jaegerProcess
}

type jaegerRef struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

type jaegerTag struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

type jaegerProcess struct {
	ServiceName string      `json:"serviceName"`
	Tags        []jaegerTag `json:"tags"`
}

func readJaegerData(dec *json.Decoder, name string, add func(trace.Trace) error, res *trace.Resources) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil { // "data": null
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return bad(name, "Jaeger JSON: \"data\" is not an array")
	}
	for n := 0; dec.More(); n++ {
		var jt jaegerTrace
		if err := dec.Decode(&jt); err != nil {
			return err
		}
		t, err := convertJaeger(&jt, res)
		if err != nil {
			return bad(name, "Jaeger JSON: trace #%d: %v", n+1, err)
		}
		if err := trace.Validate(&t); err != nil {
			return bad(name, "%v", err)
		}
		if err := add(t); err != nil {
			return addFailed(name, err)
		}
	}
	_, err = dec.Token() // ']'
	return err
}

func tagString(raw json.RawMessage) string {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	return string(raw)
}

// convertTags splits Jaeger's tags into attributes and the fields ktrace
// keeps on the span itself.
func convertTags(tags []jaegerTag, s *trace.Span) trace.Attributes {
	attrs := make(trace.Attributes, 0, len(tags))
	for _, tg := range tags {
		v := tagString(tg.Value)
		switch tg.Key {
		case "span.kind":
			if s != nil {
				s.Kind = trace.ParseKind(v)
				continue
			}
		case "error":
			if s != nil {
				s.Error = s.Error || v == "true"
				continue
			}
		case "otel.status_code":
			if s != nil {
				s.Error = s.Error || strings.EqualFold(v, "ERROR")
				continue
			}
		case "otel.status_description":
			if s != nil {
				s.StatusMessage = v
				continue
			}
		}
		attrs = append(attrs, trace.Attribute{Key: tg.Key, Value: v})
	}
	return attrs
}

func micros(n json.Number, what string) (int64, error) {
	if n == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err == nil {
		return v, nil
	}
	// A float is taken (truncated to whole microseconds) when it fits.
	f, ferr := strconv.ParseFloat(string(n), 64)
	switch {
	case ferr != nil && !errors.Is(ferr, strconv.ErrRange):
		return 0, &convError{what + " is not a number: " + string(n)}
	case ferr != nil || f >= 1<<63 || f < -(1<<63):
		return 0, &convError{what + " is out of range: " + string(n)}
	}
	return int64(f), nil
}

type convError struct{ msg string }

func (e *convError) Error() string { return e.msg }

func convertJaeger(jt *jaegerTrace, res *trace.Resources) (trace.Trace, error) {
	tid, err := trace.ParseTraceID(jt.TraceID)
	if err != nil {
		return trace.Trace{}, err
	}
	procs := make(map[string]*trace.Resource, len(jt.Processes))
	for id, p := range jt.Processes {
		procs[id] = res.Get(p.ServiceName, convertTags(p.Tags, nil))
	}
	t := trace.Trace{ID: tid, Spans: make([]trace.Span, 0, len(jt.Spans))}
	for i := range jt.Spans {
		js := &jt.Spans[i]
		var s trace.Span
		if s.TraceID, err = trace.ParseTraceID(js.TraceID); err != nil {
			return t, err
		}
		if s.SpanID, err = trace.ParseSpanID(js.SpanID); err != nil {
			return t, err
		}
		s.Operation = js.OperationName
		where := func(err error) error { return fmt.Errorf("trace %s: span %s: %w", tid, s.SpanID, err) }
		start, err := micros(js.StartTime, "startTime")
		if err != nil {
			return t, where(err)
		}
		dur, err := micros(js.Duration, "duration")
		if err != nil {
			return t, where(err)
		}
		s.Start = time.UnixMicro(start).UTC()
		if dur > math.MaxInt64/int64(time.Microsecond) || dur < math.MinInt64/int64(time.Microsecond) {
			return t, where(&convError{"duration is out of range: " + string(js.Duration) + " µs"})
		}
		s.Duration = time.Duration(dur) * time.Microsecond
		s.Attributes = convertTags(js.Tags, &s)
		switch {
		case js.Process != nil:
			s.Resource = res.Get(js.Process.ServiceName, convertTags(js.Process.Tags, nil))
		default:
			p, ok := procs[js.ProcessID]
			if !ok {
				return t, &convError{"span " + js.SpanID + " names unknown process " + strconv.Quote(js.ProcessID)}
			}
			s.Resource = p
		}
		for _, r := range js.References {
			ref := trace.Ref{Type: trace.RefParent}
			if r.RefType == "FOLLOWS_FROM" {
				ref.Type = trace.RefLink
			}
			if ref.TraceID, err = trace.ParseTraceID(r.TraceID); err != nil {
				return t, err
			}
			if ref.SpanID, err = trace.ParseSpanID(r.SpanID); err != nil {
				return t, err
			}
			s.Refs = append(s.Refs, ref)
		}
		t.Spans = append(t.Spans, s)
	}
	return t, nil
}
