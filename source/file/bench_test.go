package file_test

import (
	"bytes"
	"testing"

	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/trace"
)

// BenchmarkReadSnapshot decodes a 200,000-span snapshot, handing each
// trace on as ktrace graph --file does.
func BenchmarkReadSnapshot(b *testing.B) {
	ts := synth.Generate(synth.Standard(200000))
	var buf bytes.Buffer
	if err := file.WriteSnapshot(&buf, "bench", ts); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := 0
		if _, err := file.ReadEach(bytes.NewReader(buf.Bytes()), "bench", func(t trace.Trace) error { n += len(t.Spans); return nil }, &trace.Resources{}); err != nil || n != 200000 {
			b.Fatal(err, n)
		}
	}
	b.ReportMetric(float64(200000*b.N)/b.Elapsed().Seconds(), "spans/s")
}
