package jaeger

import (
	"bytes"
	"errors"

	"github.com/gogo/protobuf/jsonpb"
	model "github.com/jaegertracing/jaeger-idl/model/v1"

	"github.com/ktrace-dev/ktrace/trace"
)

// SpanDecoder decodes the Kafka records of Jaeger's span encodings: the
// collector's kafka exporter's jaeger_proto and jaeger_json (and Jaeger
// v1's collector writing to Kafka, protobuf and json), each record one
// api_v2 span carrying its process. Strings and resources are shared
// from record to record, as the query API's spans share them. The zero
// value is ready to use; one decoder serves one goroutine.
type SpanDecoder struct{ d decoder }

// ErrZeroTraceID says a span carries no trace ID.
var ErrZeroTraceID = errors.New("span with a zero trace id")

// Proto decodes a jaeger_proto record.
func (sd *SpanDecoder) Proto(data []byte) (trace.Span, error) {
	var ms model.Span
	if err := ms.Unmarshal(data); err != nil {
		return trace.Span{}, err
	}
	return sd.span(&ms)
}

// JSON decodes a jaeger_json record.
func (sd *SpanDecoder) JSON(data []byte) (trace.Span, error) {
	var ms model.Span
	if err := (&jsonpb.Unmarshaler{AllowUnknownFields: true}).Unmarshal(bytes.NewReader(data), &ms); err != nil {
		return trace.Span{}, err
	}
	return sd.span(&ms)
}

func (sd *SpanDecoder) span(ms *model.Span) (trace.Span, error) {
	if ms.TraceID.High == 0 && ms.TraceID.Low == 0 {
		return trace.Span{}, ErrZeroTraceID
	}
	return sd.d.convert(ms), nil
}
