package file

import (
	"bytes"
	"cmp"
	"reflect"
	"slices"
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/trace"
)

// plain is a trace set as values, for comparing what two readers made:
// traces by ID, spans by ID (a message groups spans by resource).
func plain(ts []trace.Trace) []trace.Trace {
	out := make([]trace.Trace, len(ts))
	for i, t := range ts {
		out[i] = trace.Trace{ID: t.ID, Spans: make([]trace.Span, len(t.Spans))}
		for j, s := range t.Spans {
			s.Resource = &trace.Resource{Service: s.Resource.Service, Attributes: s.Resource.Attributes}
			if len(s.Attributes) == 0 {
				s.Attributes = nil
			}
			if len(s.Refs) == 0 {
				s.Refs = nil
			}
			out[i].Spans[j] = s
		}
		slices.SortFunc(out[i].Spans, func(a, b trace.Span) int { return cmp.Compare(a.SpanID, b.SpanID) })
	}
	slices.SortFunc(out, func(a, b trace.Trace) int {
		return cmp.Or(cmp.Compare(a.ID.High, b.ID.High), cmp.Compare(a.ID.Low, b.ID.Low))
	})
	return out
}

// TestOTLPProto: traces written as OTLP protobuf read back as they were
// (links with their sampled flags too), and as the OTLP JSON reader reads
// the same message written as protobuf JSON.
func TestOTLPProto(t *testing.T) {
	ts := synth.Generate(synth.Config{Traces: 30, BrokenShare: 0.3, LinkShare: 0.5, Seed: 3})
	ts[0].Spans[0].Refs = append(ts[0].Spans[0].Refs, trace.Ref{Type: trace.RefLink, TraceID: trace.TraceID{Low: 77}, SpanID: 5, Sampled: trace.SampledNo})
	ts[0].Spans[0].Error = true
	data, err := MarshalOTLPProto(ts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OTLPProto(data, &trace.Resources{}, &trace.Strings{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(plain(got), plain(ts)) {
		t.Fatalf("read back %d traces, unlike the %d written", len(got), len(ts))
	}
	var td tracepb.TracesData
	if err := proto.Unmarshal(data, &td); err != nil {
		t.Fatal(err)
	}
	js, err := protojson.Marshal(&td)
	if err != nil {
		t.Fatal(err)
	}
	var set trace.Set
	if _, err := Read(bytes.NewReader(js), "json", &set, &trace.Resources{}); err != nil {
		t.Fatal(err)
	}
	fromJSON := set.Traces()
	byID := map[trace.TraceID]trace.Trace{}
	for _, tr := range got {
		byID[tr.ID] = tr
	}
	for _, tr := range fromJSON {
		if !reflect.DeepEqual(plain([]trace.Trace{tr}), plain([]trace.Trace{byID[tr.ID]})) {
			t.Fatalf("trace %s: the protobuf and the JSON readers disagree", tr.ID)
		}
	}
	if len(fromJSON) != len(got) {
		t.Fatalf("JSON: %d traces, protobuf: %d", len(fromJSON), len(got))
	}
	for _, bad := range [][]byte{{0xff, 0xff}, []byte("not a proto")} {
		if _, err := OTLPProto(bad, &trace.Resources{}, &trace.Strings{}); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

// FuzzOTLPProto: any bytes as a span record give traces or an error,
// never a panic, and what is read writes and reads back the same.
func FuzzOTLPProto(f *testing.F) {
	data, _ := MarshalOTLPProto(synth.Generate(synth.Config{Traces: 3, BrokenShare: 0.5, LinkShare: 0.5, Seed: 1}))
	f.Add(data)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x02, 0x12, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := OTLPProto(b, &trace.Resources{}, &trace.Strings{})
		if err != nil {
			return
		}
		again, err := MarshalOTLPProto(ts)
		if err != nil {
			t.Fatal(err)
		}
		back, err := OTLPProto(again, &trace.Resources{}, &trace.Strings{})
		if err != nil {
			t.Fatalf("what was read does not read back: %v", err)
		}
		if n, m := len(plain(ts)), len(plain(back)); n != m {
			t.Fatalf("%d traces read, %d read back", n, m)
		}
	})
}
