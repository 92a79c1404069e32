package testenv

import (
	"math/rand/v2"

	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/trace"
)

// ExporterBatches are a trace set's spans as OTLP protobuf messages the
// way a collector's kafka exporter writes them by default: batches of 1 to
// maxSpans spans of many traces, shuffled (seeded), so that a trace's
// spans fall in several batches.
func ExporterBatches(ts []trace.Trace, seed uint64, maxSpans int) ([][]byte, error) {
	rng := rand.New(rand.NewPCG(seed, seed))
	var spans []trace.Span
	for _, tr := range ts {
		spans = append(spans, tr.Spans...)
	}
	rng.Shuffle(len(spans), func(i, j int) { spans[i], spans[j] = spans[j], spans[i] })
	var out [][]byte
	for len(spans) > 0 {
		n := min(len(spans), 1+rng.IntN(maxSpans))
		var batch []trace.Trace
		at := map[trace.TraceID]int{}
		for _, s := range spans[:n] {
			i, ok := at[s.TraceID]
			if !ok {
				i = len(batch)
				at[s.TraceID] = i
				batch = append(batch, trace.Trace{ID: s.TraceID})
			}
			batch[i].Spans = append(batch[i].Spans, s)
		}
		data, err := file.MarshalOTLPProto(batch)
		if err != nil {
			return nil, err
		}
		out = append(out, data)
		spans = spans[n:]
	}
	return out, nil
}
