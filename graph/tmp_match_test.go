package graph

import (
	"testing"

	"github.com/ktrace-dev/ktrace/internal/synth"
)

func BenchmarkTmpMatch(b *testing.B) {
	cfg := synth.Standard(1000000)
	cfg.LinkShare = 0.3
	ts := synth.Generate(cfg)
	b1, b2 := NewBuilder(), NewBuilder()
	for i := range ts {
		if i < len(ts)/2 {
			b1.Add(&ts[i])
		} else {
			b2.Add(&ts[i])
		}
	}
	b1.Merge(b2)
	b.Logf("producers %d pending %d", b1.producers.Len(), b1.pending.Len())
	for b.Loop() {
		b1.matchPending()
	}
}
