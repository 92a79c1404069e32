package jaeger

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/gogo/protobuf/jsonpb"
	model "github.com/jaegertracing/jaeger-idl/model/v1"

	"github.com/ktrace-dev/ktrace/trace"
)

// A span in the kafka exporter's jaeger_proto and jaeger_json encodings
// decodes to the span the query API's converter gives; a span with no
// trace ID, and bytes that are not a span, are errors.
func TestSpanDecoder(t *testing.T) {
	ms := model.Span{TraceID: model.TraceID{High: 7, Low: 9}, SpanID: 3, OperationName: "orders receive",
		StartTime: time.Date(2026, 12, 3, 10, 0, 0, 5000, time.UTC), Duration: 1500 * time.Microsecond,
		References: []model.SpanRef{{TraceID: model.TraceID{High: 7, Low: 9}, SpanID: 2, RefType: model.SpanRefType_CHILD_OF},
			{TraceID: model.TraceID{Low: 1}, SpanID: 5, RefType: model.SpanRefType_FOLLOWS_FROM}},
		Tags: []model.KeyValue{{Key: "span.kind", VStr: "consumer"}, {Key: "messaging.system", VStr: "kafka"},
			{Key: "messaging.kafka.message.offset", VType: model.ValueType_INT64, VInt64: 42}, {Key: "error", VType: model.ValueType_BOOL, VBool: true}},
		Process: &model.Process{ServiceName: "shipping", Tags: []model.KeyValue{{Key: "service.instance.id", VStr: "shipping-1"}}}}
	var want decoder
	w := want.convert(&ms)
	if w.Kind != trace.KindConsumer || !w.Error || len(w.Refs) != 2 || w.Refs[1].Type != trace.RefLink || w.Service() != "shipping" {
		t.Fatalf("converted %+v", w)
	}
	proto, err := ms.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var js bytes.Buffer
	if err := (&jsonpb.Marshaler{}).Marshal(&js, &ms); err != nil {
		t.Fatal(err)
	}
	var d SpanDecoder
	for name, decode := range map[string]func() (trace.Span, error){
		"jaeger_proto": func() (trace.Span, error) { return d.Proto(proto) },
		"jaeger_json":  func() (trace.Span, error) { return d.JSON(js.Bytes()) },
	} {
		got, err := decode()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.TraceID != w.TraceID || got.SpanID != w.SpanID || got.Operation != w.Operation || !got.Start.Equal(w.Start) ||
			got.Duration != w.Duration || got.Kind != w.Kind || got.Error != w.Error || len(got.Refs) != 2 || got.Refs[1] != w.Refs[1] ||
			got.Service() != "shipping" || got.Resource.Instance() != "shipping-1" || len(got.Attributes) != len(w.Attributes) {
			t.Errorf("%s: %+v, want %+v", name, got, w)
		}
	}
	ms.TraceID = model.TraceID{}
	zero, _ := ms.Marshal()
	if _, err := d.Proto(zero); !errors.Is(err, ErrZeroTraceID) {
		t.Errorf("a span with no trace ID: %v", err)
	}
	for _, bad := range [][]byte{[]byte("not a span"), {0xff, 0xff, 0xff}, proto[:len(proto)/2]} {
		if _, err := d.Proto(bad); err == nil {
			t.Errorf("jaeger_proto %q decoded", bad)
		}
		if _, err := d.JSON(bad); err == nil {
			t.Errorf("jaeger_json %q decoded", bad)
		}
	}
}

// FuzzSpanDecoder: any record, in either encoding, decodes to a span with
// a trace ID or to an error; never a panic.
func FuzzSpanDecoder(f *testing.F) {
	ms := model.Span{TraceID: model.TraceID{Low: 1}, SpanID: 2, OperationName: "op", StartTime: time.Unix(1, 0).UTC(),
		References: []model.SpanRef{{TraceID: model.TraceID{Low: 1}, SpanID: 1}},
		Tags:       []model.KeyValue{{Key: "span.kind", VStr: "producer"}}, Process: &model.Process{ServiceName: "s"}}
	proto, _ := ms.Marshal()
	var js bytes.Buffer
	(&jsonpb.Marshaler{}).Marshal(&js, &ms)
	f.Add(proto)
	f.Add(js.Bytes())
	f.Add([]byte{})
	var d SpanDecoder
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, decode := range []func([]byte) (trace.Span, error){d.Proto, d.JSON} {
			if s, err := decode(data); err == nil && s.TraceID == (trace.TraceID{}) {
				t.Errorf("decoded a span with no trace ID: %+v", s)
			}
		}
	})
}
