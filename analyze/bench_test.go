package analyze_test

import (
	"testing"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/synth"
)

// BenchmarkGraphAndBreaks is the in-process work `ktrace report --broken`
// does on 200,000 spans: build the graph, then find the breaks.
func BenchmarkGraphAndBreaks(b *testing.B) {
	ts := synth.Generate(synth.Standard(200000))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		g := graph.Build(ts)
		analyze.Breaks(ts, g, analyze.Options{})
	}
	b.ReportMetric(float64(200000*b.N)/b.Elapsed().Seconds(), "spans/s")
}

// BenchmarkRun is the same work in one pass: analyze.Run builds the graph
// and finds the breaks reading each span once.
func BenchmarkRun(b *testing.B) {
	for _, c := range []struct {
		name             string
		shuffle, workers int
	}{{"ordered", 0, 1}, {"shuffled", 1, 1}, {"ordered-all-cpus", 0, 0}} {
		shuffle, workers := c.shuffle == 1, c.workers
		b.Run(c.name, func(b *testing.B) {
			cfg := synth.Standard(200000)
			cfg.Shuffle = shuffle
			ts := synth.Generate(cfg)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				analyze.Run(ts, analyze.Options{Workers: workers})
			}
			b.ReportMetric(float64(200000*b.N)/b.Elapsed().Seconds(), "spans/s")
		})
	}
}
