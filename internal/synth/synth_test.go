package synth

import (
	"reflect"
	"testing"

	"github.com/ktrace-dev/ktrace/trace"
)

// TestGenerate: the same config gives the same set; every trace is valid
// with every parent in it; fan-out gives spans several children; shuffling
// changes only the order.
func TestGenerate(t *testing.T) {
	cfg := Config{Traces: 200, SpansPerTrace: 25, BrokenShare: 0.2, FanOut: 3, Seed: 11}
	a, b := Generate(cfg), Generate(cfg)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two runs of one config differ")
	}
	maxKids, spans := 0, 0
	for i := range a {
		tr := &a[i]
		if err := trace.Validate(tr); err != nil {
			t.Fatalf("trace %d: %v", i, err)
		}
		ids := map[trace.SpanID]bool{}
		for _, s := range tr.Spans {
			ids[s.SpanID] = true
		}
		kids := map[trace.SpanID]int{}
		for _, s := range tr.Spans {
			if pid, ok := s.Parent(); ok {
				if !ids[pid] {
					t.Fatalf("trace %d: span %d's parent %d is not in the trace", i, s.SpanID, pid)
				}
				kids[pid]++
				maxKids = max(maxKids, kids[pid])
			}
		}
		spans += len(tr.Spans)
	}
	if spans != 200*25 || maxKids < 3 {
		t.Errorf("%d spans (want %d), at most %d children of a span (want ≥ 3 with fan-out 3)", spans, 200*25, maxKids)
	}
	cfg.Shuffle = true
	s := Generate(cfg)
	moved := false
	for i := range s {
		if len(s[i].Spans) != len(a[i].Spans) {
			t.Fatalf("trace %d: shuffling changed its size", i)
		}
		at := map[trace.SpanID]trace.Span{}
		for _, sp := range a[i].Spans {
			at[sp.SpanID] = sp
		}
		for j, sp := range s[i].Spans {
			if !reflect.DeepEqual(at[sp.SpanID], sp) {
				t.Fatalf("trace %d: span %d changed", i, sp.SpanID)
			}
			moved = moved || a[i].Spans[j].SpanID != sp.SpanID
		}
	}
	if !moved {
		t.Error("shuffling moved nothing")
	}
}
