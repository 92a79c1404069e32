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

// TestLinkShare: consumers that lost their parent link to their producer
// when asked to, and the link points at a producer span.
func TestLinkShare(t *testing.T) {
	ts := Generate(Config{Traces: 300, SpansPerTrace: 20, BrokenShare: 0.5, LinkShare: 0.5, MessagingOnly: true, Seed: 2})
	producers := map[trace.SpanID]bool{}
	for _, tr := range ts {
		for _, s := range tr.Spans {
			if s.Kind == trace.KindProducer {
				producers[s.SpanID] = true
			}
		}
	}
	linked, roots := 0, 0
	for _, tr := range ts {
		for _, s := range tr.Spans {
			if s.Kind != trace.KindConsumer {
				continue
			}
			if _, ok := s.Parent(); ok {
				continue
			}
			roots++
			for _, r := range s.Refs {
				if r.Type == trace.RefLink {
					linked++
					if !producers[r.SpanID] || r.TraceID == tr.ID {
						t.Fatalf("link %+v does not point at a producer in another trace", r)
					}
				}
			}
		}
	}
	if roots == 0 || linked == 0 || linked == roots {
		t.Errorf("%d consumer roots, %d linked: want some linked and some not", roots, linked)
	}
}

// TestSampleRatio: a ratio keeps about that share of the traces, the same
// ones for the same seed, each as the unsampled set has it.
func TestSampleRatio(t *testing.T) {
	cfg := Config{Traces: 2000, BrokenShare: 0.5, Seed: 4}
	all := Generate(cfg)
	cfg.SampleRatio = 0.3
	kept, again := Generate(cfg), Generate(cfg)
	if share := float64(len(kept)) / float64(len(all)); share < 0.25 || share > 0.35 {
		t.Fatalf("kept %d of %d traces (%.2f), want about 0.3", len(kept), len(all), share)
	}
	byID := map[trace.TraceID]int{}
	for _, tr := range all {
		byID[tr.ID] = len(tr.Spans)
	}
	for i, tr := range kept {
		if n, ok := byID[tr.ID]; !ok || n != len(tr.Spans) || again[i].ID != tr.ID {
			t.Fatalf("kept trace %s: %d spans, in the full set %v (%d); again %s", tr.ID, len(tr.Spans), ok, n, again[i].ID)
		}
	}
}
