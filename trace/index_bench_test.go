package trace_test

import (
	"testing"

	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/trace"
)

// BenchmarkIndexReset indexes 200,000 spans in 20-span traces.
func BenchmarkIndexReset(b *testing.B) {
	ts := synth.Generate(synth.Config{Traces: 10000, SpansPerTrace: 20, Services: 20, Topics: 10, BrokenShare: 0.1, Seed: 7})
	var x trace.Index
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range ts {
			x.Reset(ts[j].Spans)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(200000*b.N), "ns/span")
}
