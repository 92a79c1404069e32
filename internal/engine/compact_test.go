package engine_test

import (
	"reflect"
	"testing"

	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/trace"
)

// agreeCompact fails unless each trace data holds (read by file.OTLPProto)
// reads back from the compact form exactly as it was: whole, in two
// pieces one after the other, and by an encoder and a decoder used
// before. (OTLP protobuf written again and read is not quite as exact: a
// resource with no service gains an empty service.name.)
func agreeCompact(t *testing.T, data []byte) {
	t.Helper()
	ts, err := file.OTLPProto(data, &trace.Resources{}, &trace.Strings{})
	if err != nil {
		return
	}
	var enc engine.CompactEncoder
	var dec engine.CompactDecoder
	var res trace.Resources
	var strs trace.Strings
	for _, tr := range ts {
		ref := []trace.Trace{tr}
		piece := enc.Append(nil, tr.ID, tr.Spans)
		for range 2 { // the second time with what the first kept, into its memory
			got, err := dec.Decode(nil, tr.ID, piece, &res, &strs)
			if err != nil {
				t.Fatalf("trace %s: %v", tr.ID, err)
			}
			if !reflect.DeepEqual(got, ref[0].Spans) {
				t.Fatalf("trace %s: the compact form reads\n%+v\nnot\n%+v", tr.ID, got, ref[0].Spans)
			}
			dec.Release() // the second reading writes over the first's
		}
		if again := enc.Append(nil, tr.ID, tr.Spans); string(again) != string(piece) {
			t.Fatalf("trace %s: written twice, written otherwise", tr.ID)
		}
		half := len(tr.Spans) / 2
		two := enc.Append(nil, tr.ID, tr.Spans[:half])
		two = enc.Append(two, tr.ID, tr.Spans[half:])
		got, err := dec.Decode(make([]trace.Span, 0, 1), tr.ID, two, &trace.Resources{}, &trace.Strings{})
		if err != nil || !reflect.DeepEqual(got, ref[0].Spans) {
			t.Fatalf("trace %s in two pieces reads (%v)\n%+v\nnot\n%+v", tr.ID, err, got, ref[0].Spans)
		}
		// Cut anywhere, a piece fails, and does not panic.
		for _, at := range []int{1, len(piece) / 3, len(piece) - 1} {
			if _, err := dec.Decode(nil, tr.ID, piece[:at], &trace.Resources{}, &trace.Strings{}); err == nil {
				t.Fatalf("trace %s: cut at byte %d of %d, it reads", tr.ID, at, len(piece))
			}
		}
	}
}

// The compact form holds every part of a span as OTLP's decoders read it:
// kinds, errors, status messages, links into other traces with their
// sampling, spans of another trace than the piece's, resources with no
// service.
func TestCompactKeepsSpans(t *testing.T) {
	agreeCompact(t, richOTLP(t))
	agreeCompact(t, synthOTLP(t))
	data, err := file.MarshalOTLPProto(synth.Generate(synth.Standard(2000)))
	if err != nil {
		t.Fatal(err)
	}
	agreeCompact(t, data)

	// A piece may hold spans of another trace (a reader checks them, as
	// it checks OTLP's).
	ts, err := file.OTLPProto(richOTLP(t), &trace.Resources{}, &trace.Strings{})
	if err != nil {
		t.Fatal(err)
	}
	var all []trace.Span
	for _, tr := range ts {
		all = append(all, tr.Spans...)
	}
	var enc engine.CompactEncoder
	var dec engine.CompactDecoder
	got, err := dec.Decode(nil, ts[0].ID, enc.Append(nil, ts[0].ID, all), &trace.Resources{}, &trace.Strings{})
	if err != nil || !reflect.DeepEqual(got, all) {
		t.Fatalf("spans of two traces read (%v)\n%+v\nnot\n%+v", err, got, all)
	}
}

// The compact form is much smaller than the OTLP it stands in for.
func TestCompactIsSmall(t *testing.T) {
	ts := synth.Generate(synth.Standard(2000))
	var enc engine.CompactEncoder
	otlp, compact := 0, 0
	for _, tr := range ts {
		data, err := file.MarshalOTLPProto([]trace.Trace{tr})
		if err != nil {
			t.Fatal(err)
		}
		otlp += len(data)
		compact += len(enc.Append(nil, tr.ID, tr.Spans))
	}
	if compact*2 > otlp {
		t.Errorf("the compact form takes %d bytes, OTLP %d", compact, otlp)
	}
}

// FuzzCompact: any traces file.OTLPProto reads from OTLP read back from
// the compact form exactly; any bytes at all decode or fail, never panic.
//
//	go test ./internal/engine -run '^$' -fuzz FuzzCompact -fuzztime 10m
func FuzzCompact(f *testing.F) {
	f.Add(richOTLP(f))
	f.Add(synthOTLP(f))
	ts, err := file.OTLPProto(richOTLP(f), &trace.Resources{}, &trace.Strings{})
	if err != nil {
		f.Fatal(err)
	}
	var enc engine.CompactEncoder
	f.Add(enc.Append(nil, ts[0].ID, ts[0].Spans))
	f.Add([]byte{1, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		agreeCompact(t, data)
		var dec engine.CompactDecoder
		_, _ = dec.Decode(nil, trace.TraceID{Low: 1}, data, &trace.Resources{}, &trace.Strings{})
	})
}

// BenchmarkCompact: the traces of records of 300 spans, written in the
// compact form and read back, against OTLP protobuf (SplitOTLP, the
// fast decoder) as re-keying used them.
func BenchmarkCompact(b *testing.B) {
	ts := synth.Generate(synth.Standard(30000))
	n := 0
	for i := range ts {
		n += len(ts[i].Spans)
	}
	var enc engine.CompactEncoder
	var dec engine.CompactDecoder
	var res trace.Resources
	var strs trace.Strings
	b.Run("write", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			for i := range ts {
				buf = enc.Append(buf[:0], ts[i].ID, ts[i].Spans)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "spans/s")
	})
	pieces := make([][]byte, len(ts))
	size := 0
	for i := range ts {
		pieces[i] = enc.Append(nil, ts[i].ID, ts[i].Spans)
		size += len(pieces[i])
	}
	b.Run("read", func(b *testing.B) {
		var spans []trace.Span
		for b.Loop() {
			for i := range ts {
				var err error
				if spans, err = dec.Decode(spans[:0], ts[i].ID, pieces[i], &res, &strs); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "spans/s")
		b.ReportMetric(float64(size)/float64(n), "B/span")
	})
	otlp := make([][]byte, len(ts))
	size = 0
	for i := range ts {
		data, err := file.MarshalOTLPProto(ts[i : i+1])
		if err != nil {
			b.Fatal(err)
		}
		otlp[i] = data
		size += len(data)
	}
	b.Run("otlp-read", func(b *testing.B) {
		var d engine.OTLPDecoder
		for b.Loop() {
			for i := range ts {
				if _, ok := d.Decode(otlp[i:i+1], &res, &strs); !ok {
					b.Fatal("not decoded")
				}
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "spans/s")
		b.ReportMetric(float64(size)/float64(n), "B/span")
	})
}
