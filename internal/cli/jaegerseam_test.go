package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"iter"
	"slices"
	"strings"
	"testing"

	"github.com/ktrace-dev/ktrace/internal/testenv"
	"github.com/ktrace-dev/ktrace/source/jaeger"
	"github.com/ktrace-dev/ktrace/trace"
)

// fakeJaeger answers from a trace set; each read of the traces after the
// first gives the traces in grow one span more (traces still arriving).
type fakeJaeger struct {
	traces []trace.Trace
	grow   map[trace.TraceID]bool
	reads  int
	dials  int
}

func (f *fakeJaeger) dial(jaeger.Config) (jaegerClient, error) { f.dials++; return f, nil }

func (f *fakeJaeger) read() []trace.Trace {
	f.reads++
	out := make([]trace.Trace, len(f.traces))
	for i, t := range f.traces {
		out[i] = trace.Trace{ID: t.ID, Spans: slices.Clone(t.Spans)}
		if f.reads > 1 && f.grow[t.ID] {
			extra := t.Spans[0]
			extra.SpanID = 0xFFFF0000 + extra.SpanID
			out[i].Spans = append(out[i].Spans, extra)
		}
	}
	return out
}

func (f *fakeJaeger) Find(_ context.Context, _ jaeger.Query, set *trace.Set, _ func(jaeger.Stats)) (jaeger.Stats, error) {
	ts := f.read()
	for _, t := range ts {
		if err := set.Add(t); err != nil {
			return jaeger.Stats{}, err
		}
	}
	return jaeger.Stats{Traces: len(ts)}, nil
}

func (f *fakeJaeger) Traces(context.Context, jaeger.Query, func(jaeger.Stats), *jaeger.Stats) iter.Seq2[*trace.Trace, error] {
	ts := f.read()
	return func(yield func(*trace.Trace, error) bool) {
		for i := range ts {
			if !yield(&ts[i], nil) {
				return
			}
		}
	}
}

func (f *fakeJaeger) Services(context.Context) ([]string, error) { return []string{"a", "b"}, nil }

func (f *fakeJaeger) Operations(_ context.Context, s string) ([]jaeger.Operation, error) {
	return []jaeger.Operation{{Name: s + "-op"}}, nil
}

func (f *fakeJaeger) Close() error { return nil }

// TestJaegerThroughTheSeam: commands reach Jaeger through
// SourceOptions.dial, so their Jaeger paths are tested with no server: the
// streamed report, and the settled one, which reads twice and reports the
// traces that changed in between as incomplete, not broken.
func TestJaegerThroughTheSeam(t *testing.T) {
	set := testenv.Fixture(t, "stargazers-lost")
	f := &fakeJaeger{traces: set.Traces(), grow: map[trace.TraceID]bool{}}
	for _, tr := range f.traces[:5] {
		f.grow[tr.ID] = true
	}
	report := func(settle string) map[string]any {
		var out bytes.Buffer
		ios := quietIO()
		ios.Out = &out
		cmd := NewCmdReport(ios, func(ctx context.Context, o *ReportOptions) error {
			o.Source.dial = f.dial
			return reportRun(ctx, o)
		})
		parse(t, cmd, "--broken", "--jaeger", "jaeger.invalid", "--settle", settle, "-o", "json")
		var got map[string]any
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("settle %s: %v: %s", settle, err, out.String())
		}
		return got
	}
	once := report("0s")
	if f.reads != 1 || f.dials != 1 || once["traces"].(float64) != float64(len(f.traces)) || !strings.Contains(jsonOf(once), "stargazers-join") {
		t.Fatalf("streamed: %d reads, %d dials, report %s", f.reads, f.dials, jsonOf(once))
	}
	f.reads = 0
	settled := report("1ms")
	if f.reads != 2 {
		t.Fatalf("settled: %d reads, want 2", f.reads)
	}
	if inc, _ := settled["incomplete"].([]any); len(inc) != 5 || settled["traces"].(float64) != float64(len(f.traces)-5) {
		t.Fatalf("settled: incomplete %v, traces %v; want the 5 that grew left out", settled["incomplete"], settled["traces"])
	}
	var out bytes.Buffer
	ios := quietIO()
	ios.Out = &out
	parse(t, NewCmdServices(ios, func(ctx context.Context, o *ServicesOptions) error {
		o.Source.dial = f.dial
		return servicesRun(ctx, o)
	}), "--jaeger", "jaeger.invalid", "-o", "json")
	if !strings.Contains(out.String(), "a-op") || !strings.Contains(out.String(), "b-op") {
		t.Fatalf("services through the seam: %q", out.String())
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
