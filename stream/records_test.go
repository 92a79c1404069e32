package stream

import (
	"testing"

	model "github.com/jaegertracing/jaeger-idl/model/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/source/file"
)

// TestDecodesAs: a record that does not decode as --encoding says which
// encoding it does decode as, for the log; garbage decodes as none.
func TestDecodesAs(t *testing.T) {
	ts := synth.Generate(synth.Config{Traces: 2, SpansPerTrace: 5, Seed: 1})
	otlp, err := file.MarshalOTLPProto(ts)
	if err != nil {
		t.Fatal(err)
	}
	var td tracepb.TracesData
	if err := proto.Unmarshal(otlp, &td); err != nil {
		t.Fatal(err)
	}
	otlpJSON, err := protojson.Marshal(&td)
	if err != nil {
		t.Fatal(err)
	}
	jaeger, err := (&model.Span{TraceID: model.NewTraceID(1, 2), SpanID: 3, OperationName: "op", Process: &model.Process{ServiceName: "svc"}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		value    []byte
		not, got string
	}{
		{otlpJSON, EncodingProto, EncodingJSON},
		{otlp, EncodingJSON, EncodingProto},
		{otlp, EncodingJaegerProto, EncodingProto},
		{jaeger, EncodingProto, EncodingJaegerProto},
		{[]byte("not a span batch"), EncodingProto, ""},
		{[]byte(`{"resourceSpans": [`), EncodingProto, ""},
	} {
		if got := decodesAs(c.value, c.not); got != c.got {
			t.Errorf("%.20q, not %s: decodes as %q, want %q", c.value, c.not, got, c.got)
		}
	}
}
