package stream

import (
	"encoding/hex"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	model "github.com/jaegertracing/jaeger-idl/model/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/trace"
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

// TestRekeyDecode: a record of the span topic with a bad span costs the
// re-keying that span's trace, not the record's other traces.
func TestRekeyDecode(t *testing.T) {
	ts := synth.Generate(synth.Config{Traces: 3, SpansPerTrace: 4, Seed: 2})
	otlp, err := file.MarshalOTLPProto(ts)
	if err != nil {
		t.Fatal(err)
	}
	var td tracepb.TracesData
	if err := proto.Unmarshal(otlp, &td); err != nil {
		t.Fatal(err)
	}
	bad := ts[1].ID
	n := 0
	for _, rs := range td.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				if hex.EncodeToString(s.TraceId) == bad.String() && n == 0 {
					s.SpanId, n = []byte{1, 2, 3}, 1 // three bytes, not eight
				}
			}
		}
	}
	value, err := proto.Marshal(&td)
	if err != nil || n == 0 {
		t.Fatalf("no span of trace %s made bad (%v)", bad, err)
	}
	m := &member{cfg: Config{Encoding: EncodingProto}}
	got, err := m.rekeyDecode(&kgo.Record{Value: value}, m.decoding())
	if err == nil {
		t.Error("the bad span is not reported")
	}
	var ids []trace.TraceID
	for _, tr := range got {
		ids = append(ids, tr.ID)
		if len(tr.Spans) != 4 {
			t.Errorf("trace %s: %d spans, want 4", tr.ID, len(tr.Spans))
		}
	}
	if want := []trace.TraceID{ts[0].ID, ts[2].ID}; !slices.Equal(ids, want) {
		t.Errorf("re-keyed traces %v, want %v", ids, want)
	}
}
