package analyze_test

import (
	"testing"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/synth"
)

// BenchmarkGraphAndBreaks is the references' work on 200,000 spans: build
// the graph, then find the breaks (the engine's is in internal/engine).
func BenchmarkGraphAndBreaks(b *testing.B) {
	ts := synth.Generate(synth.Standard(200000))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		g := graph.Build(ts)
		analyze.Breaks(ts, g, analyze.Options{})
	}
	b.ReportMetric(float64(200000*b.N)/b.Elapsed().Seconds(), "spans/s")
}
