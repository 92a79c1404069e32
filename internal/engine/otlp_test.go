package engine_test

import (
	"fmt"
	"reflect"
	"testing"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/trace"
)

// richOTLP is a message with every part of OTLP that DecodeOTLP reads or
// checks: every kind of value (nested arrays and maps included), a
// scope, events, links with and without flags, status codes, a span with
// no end, a resource block without a resource.
func richOTLP(t testing.TB) []byte {
	str := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	kv := func(k string, v *commonpb.AnyValue) *commonpb.KeyValue { return &commonpb.KeyValue{Key: k, Value: v} }
	id := func(b byte, n int) []byte {
		out := make([]byte, n)
		out[n-1] = b
		return out
	}
	attrs := []*commonpb.KeyValue{
		kv("messaging.system", str("kafka")), kv("b", &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: true}}),
		kv("i", &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: -42}}),
		kv("d", &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 0.1}}),
		kv("bytes", &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{0, 1, 255}}}),
		kv("arr", &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{
			str(`a"b`), {}, {Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{}}}}}}}),
		kv("map", &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{
			kv("k", str("v")), {Key: "none"}}}}}),
		{Key: "no value"},
	}
	td := &tracepb.TracesData{ResourceSpans: []*tracepb.ResourceSpans{
		{Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{kv("service.name", str("svc")), kv("host.name", str("h"))}, DroppedAttributesCount: 2},
			SchemaUrl: "https://opentelemetry.io/schemas/1.24.0",
			ScopeSpans: []*tracepb.ScopeSpans{{
				Scope:     &commonpb.InstrumentationScope{Name: "lib", Version: "1", Attributes: attrs[:2]},
				SchemaUrl: "s",
				Spans: []*tracepb.Span{
					{TraceId: id(1, 16), SpanId: id(1, 8), Name: "root", Kind: tracepb.Span_SPAN_KIND_SERVER, StartTimeUnixNano: 1e18, EndTimeUnixNano: 1e18 + 5e6,
						Attributes: attrs, TraceState: "x=y", Flags: 0x301, DroppedAttributesCount: 1,
						Events: []*tracepb.Span_Event{{TimeUnixNano: 1e18, Name: "ev", Attributes: attrs[:3], DroppedAttributesCount: 1}},
						Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "boom"},
						Links: []*tracepb.Span_Link{{TraceId: id(2, 16), SpanId: id(2, 8), Flags: 0x100, TraceState: "t", Attributes: attrs[:1]},
							{TraceId: id(3, 16), SpanId: id(3, 8), Flags: 0x101}, {TraceId: id(4, 16), SpanId: id(4, 8)}}},
					{TraceId: id(1, 16), SpanId: id(5, 8), ParentSpanId: id(1, 8), Name: "open", Kind: tracepb.Span_SPAN_KIND_PRODUCER, StartTimeUnixNano: 1e18 + 1,
						Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK}},
					{TraceId: id(6, 16), SpanId: id(6, 8), Name: "odd kind", Kind: 9, StartTimeUnixNano: 1e18},
				},
			}}},
		{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{
			{TraceId: id(1, 16), SpanId: id(7, 8), ParentSpanId: id(5, 8), Name: "no resource", Kind: tracepb.Span_SPAN_KIND_CONSUMER, StartTimeUnixNano: 1e18 + 9}}}}},
	}}
	data, err := proto.Marshal(td)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func synthOTLP(t testing.TB) []byte {
	data, err := file.MarshalOTLPProto(synth.Generate(synth.Config{Traces: 20, BrokenShare: 0.5, LinkShare: 0.5, SampleRatio: 0.5, Seed: 5}))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// agreeOTLP fails unless DecodeOTLP gives what file.OTLPProto gives, or
// declines; it says whether it decoded.
func agreeOTLP(t *testing.T, data []byte) bool {
	t.Helper()
	fast, ok := engine.DecodeOTLP(data, &trace.Resources{}, &trace.Strings{})
	ref, err := file.OTLPProto(data, &trace.Resources{}, &trace.Strings{})
	if !ok {
		return false
	}
	if err != nil {
		t.Fatalf("DecodeOTLP read what file.OTLPProto rejects (%v): %+v", err, fast)
	}
	if !reflect.DeepEqual(fast, ref) {
		t.Fatalf("DecodeOTLP and file.OTLPProto differ:\n%+v\n%+v", fast, ref)
	}
	// Read again with what a first reading kept (resources, attributes by
	// their bytes), it reads the same; so it does by a decoder whose
	// memory a reading of part of it (which may decline), then of all of
	// it, used before.
	var res trace.Resources
	var strs trace.Strings
	engine.DecodeOTLP(data, &res, &strs)
	if again, ok := engine.DecodeOTLP(data, &res, &strs); !ok || !reflect.DeepEqual(again, ref) {
		t.Fatalf("read a second time, DecodeOTLP gives (%v)\n%+v\nnot\n%+v", ok, again, ref)
	}
	var dec engine.OTLPDecoder
	dec.Decode([][]byte{data[:len(data)/2]}, &res, &strs)
	for range 2 {
		if again, ok := dec.Decode([][]byte{data}, &res, &strs); !ok || !reflect.DeepEqual(again, ref) {
			t.Fatalf("read by a decoder used before, it gives (%v)\n%+v\nnot\n%+v", ok, again, ref)
		}
	}
	// Cut between two of its fields, it reads the same as two messages.
	cuts := []int{0}
	for rest := data; len(rest) > 0; {
		_, _, n := protowire.ConsumeField(rest)
		if n < 0 {
			t.Fatalf("DecodeOTLP read a message whose fields do not parse")
		}
		rest = rest[n:]
		cuts = append(cuts, len(data)-len(rest))
	}
	at := cuts[len(cuts)/2] // the start of one, or its end when it has none
	two, ok := engine.DecodeOTLPMessages([][]byte{data[:at], data[at:]}, &trace.Resources{}, &trace.Strings{})
	if !ok || !reflect.DeepEqual(two, ref) {
		t.Fatalf("cut at byte %d of %d, DecodeOTLPMessages gives (%v)\n%+v\nnot\n%+v", at, len(data), ok, two, ref)
	}
	return true
}

// The plain forms SDKs and collectors write are decoded on the fast path,
// and equal the reference's.
func TestDecodeOTLP(t *testing.T) {
	for name, data := range map[string][]byte{"rich": richOTLP(t), "synthetic": synthOTLP(t), "empty": nil} {
		if !agreeOTLP(t, data) {
			t.Errorf("%s: DecodeOTLP declined", name)
		}
	}
	// Names and resources are shared across messages, as the reference
	// shares them.
	var strs trace.Strings
	var res trace.Resources
	ts, _ := engine.DecodeOTLP(synthOTLP(t), &res, &strs)
	again, _ := engine.DecodeOTLP(synthOTLP(t), &res, &strs) // its resources met before
	if ref, err := file.OTLPProto(synthOTLP(t), &trace.Resources{}, &trace.Strings{}); err != nil || !reflect.DeepEqual(again, ref) {
		t.Fatalf("decoded a second time, a message reads otherwise (%v)", err)
	}
	a, b := &ts[0].Spans[0], &again[0].Spans[0]
	if unsafe.StringData(a.Operation) != unsafe.StringData(b.Operation) || a.Resource != b.Resource ||
		unsafe.StringData(a.Attributes[0].Key) != unsafe.StringData(b.Attributes[0].Key) {
		t.Error("a name or resource read twice is not shared")
	}
}

// FuzzDecodeOTLP: for any bytes, DecodeOTLP declines or gives exactly
// what file.OTLPProto gives. The seeds run in every test run; a long run:
//
//	go test ./internal/engine -run '^$' -fuzz FuzzDecodeOTLP -fuzztime 10m
func FuzzDecodeOTLP(f *testing.F) {
	f.Add(richOTLP(f))
	f.Add(synthOTLP(f))
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x02, 0x12, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) { agreeOTLP(t, data) })
}

// BenchmarkDecodeOTLP: records of 300 spans, as an exporter writes them,
// on the fast path (each record into fresh memory, and by an OTLPDecoder
// into its own) and with the reference.
func BenchmarkDecodeOTLP(b *testing.B) {
	ts := synth.Generate(synth.Standard(30000))
	var recs [][]byte
	for i := 0; i < len(ts); i += 15 {
		data, err := file.MarshalOTLPProto(ts[i:min(i+15, len(ts))])
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, data)
	}
	n := 0
	for i := range ts {
		n += len(ts[i].Spans)
	}
	var reused engine.OTLPDecoder // its memory used again, as a member's is
	for _, c := range []struct {
		name   string
		decode func([]byte, *trace.Resources, *trace.Strings) bool
	}{
		{"fast", func(d []byte, r *trace.Resources, s *trace.Strings) bool {
			_, ok := engine.DecodeOTLP(d, r, s)
			return ok
		}},
		{"fast-reused", func(d []byte, r *trace.Resources, s *trace.Strings) bool {
			_, ok := reused.Decode([][]byte{d}, r, s)
			return ok
		}},
		{"reference", func(d []byte, r *trace.Resources, s *trace.Strings) bool {
			_, err := file.OTLPProto(d, r, s)
			return err == nil
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var res trace.Resources
			var strs trace.Strings
			for b.Loop() {
				for _, r := range recs {
					if !c.decode(r, &res, &strs) {
						b.Fatal("not decoded")
					}
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "spans/s")
		})
	}
}

// agreeSplit fails unless the pieces SplitOTLP cuts data into read, with
// file.OTLPProto, as the traces the whole reads as; it says whether it
// cut.
func agreeSplit(t *testing.T, data []byte) bool {
	t.Helper()
	pieces, ok := engine.SplitOTLP(data)
	whole, err := file.OTLPProto(data, &trace.Resources{}, &trace.Strings{})
	if !ok || err != nil {
		return ok
	}
	// A splitter whose memory a cut of part of it (which may decline), then
	// of all of it, used before cuts it alike.
	var sp engine.OTLPSplitter
	sp.Split(data[:len(data)/2])
	for range 2 {
		if again, ok := sp.Split(data); !ok || !reflect.DeepEqual(again, pieces) {
			t.Fatalf("cut by a splitter used before, it gives (%v)\n%+v\nnot\n%+v", ok, again, pieces)
		}
	}
	var got []trace.Trace
	for _, p := range pieces {
		ts, err := file.OTLPProto(p.Data, &trace.Resources{}, &trace.Strings{})
		if err != nil || len(ts) != 1 || ts[0].ID != p.ID {
			t.Fatalf("piece %s reads as %d traces (%v)", p.ID, len(ts), err)
		}
		got = append(got, ts...)
	}
	if !reflect.DeepEqual(got, whole) {
		t.Fatalf("the pieces read as\n%+v\nthe whole as\n%+v", got, whole)
	}
	return true
}

func TestSplitOTLP(t *testing.T) {
	for name, data := range map[string][]byte{"rich": richOTLP(t), "synthetic": synthOTLP(t)} {
		if !agreeSplit(t, data) {
			t.Errorf("%s: SplitOTLP declined", name)
		}
	}
}

// FuzzSplitOTLP: for any bytes that file.OTLPProto reads, SplitOTLP
// declines or cuts them into pieces that read as the same traces.
//
//	go test ./internal/engine -run '^$' -fuzz FuzzSplitOTLP -fuzztime 10m
func FuzzSplitOTLP(f *testing.F) {
	f.Add(richOTLP(f))
	f.Add(synthOTLP(f))
	one, err := file.MarshalOTLPProto(synth.Generate(synth.Config{Traces: 1, BrokenShare: 0.5, LinkShare: 0.5, Seed: 5})[:1])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(one) // a record of one trace, as an exporter that partitions by trace ID writes it
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) { agreeSplit(t, data) })
}

// BenchmarkSplitOTLP: records of 300 spans of 15 traces, as an exporter
// writes them by default, and records of one trace each, as it writes
// them partitioned by trace ID.
func BenchmarkSplitOTLP(b *testing.B) {
	ts := synth.Generate(synth.Standard(30000))
	n := 0
	for i := range ts {
		n += len(ts[i].Spans)
	}
	for _, per := range []int{15, 1} {
		var recs [][]byte
		for i := 0; i < len(ts); i += per {
			data, err := file.MarshalOTLPProto(ts[i:min(i+per, len(ts))])
			if err != nil {
				b.Fatal(err)
			}
			recs = append(recs, data)
		}
		for _, reused := range []bool{false, true} {
			b.Run(fmt.Sprintf("traces=%d/reused=%v", per, reused), func(b *testing.B) {
				var sp engine.OTLPSplitter // with reused, its memory used again, as a member's is
				for b.Loop() {
					for _, r := range recs {
						if !reused {
							sp = engine.OTLPSplitter{}
						}
						if _, ok := sp.Split(r); !ok {
							b.Fatal("not cut")
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*b.N), "ns/span")
			})
		}
	}
}
