package engine_test

import (
	"runtime"
	"testing"

	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/internal/testenv"
)

// BenchmarkMergeResults does what a reader of ktrace stream's results
// does: it reads results (partials as members publish them, with what
// pairs across segments) from bytes and merges them. Segments of 200
// spans (tiny: a quiet partition's window), of 20,000 (small: their
// edges' samples travel whole) and of 400,000 (their busy edges' travel
// rounded); it reports the bytes a result takes a span and
// the heap the merged partial holds a span.
func BenchmarkMergeResults(b *testing.B) {
	for _, c := range []struct {
		name            string
		results, traces int
	}{{"tiny", 2000, 10}, {"small", 300, 1000}, {"large", 3, 20000}} {
		b.Run(c.name, func(b *testing.B) {
			var results [][]byte
			size, spans := 0, 0
			for i := range c.results {
				ts := synth.Generate(synth.Config{Traces: c.traces, SpansPerTrace: 20, Services: 8, Topics: 4, Partitions: 6,
					BrokenShare: 0.1, LinkShare: 0.3, Seed: uint64(100 + i)})
				for _, t := range ts {
					spans += len(t.Spans)
				}
				data := testenv.Result(b, ts)
				results = append(results, data)
				size += len(data)
			}
			var heap int64
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				var all *engine.Partial
				for _, data := range results {
					p := &engine.Partial{}
					if err := p.UnmarshalBinary(data); err != nil {
						b.Fatal(err)
					}
					if all == nil {
						all = p
					} else if err := all.Merge(p); err != nil {
						b.Fatal(err)
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				heap = int64(after.HeapInuse) - int64(before.HeapInuse)
				runtime.KeepAlive(all)
			}
			b.ReportMetric(float64(size)/float64(spans), "result-B/span")
			b.ReportMetric(float64(heap)/float64(spans), "merged-B/span")
		})
	}
}
