package analyze_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/internal/synth"
)

func BenchmarkTmp1M(b *testing.B) {
	cfg := synth.Standard(1000000)
	cfg.Traces, cfg.SpansPerTrace, cfg.LinkShare = 50000, 20, 0.3
	ts := synth.Generate(cfg)
	for _, w := range []int{1, 0} {
		b.Run(map[int]string{1: "one", 0: "all"}[w], func(b *testing.B) {
			runtime.GC()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				analyze.Run(ts, analyze.Options{Workers: w})
			}
			b.ReportMetric(float64(1000000*b.N)/b.Elapsed().Seconds(), "spans/s")
		})
	}
}

func BenchmarkTmpPhases(b *testing.B) {
	cfg := synth.Standard(1000000)
	cfg.Traces, cfg.SpansPerTrace, cfg.LinkShare = 50000, 20, 0.3
	ts := synth.Generate(cfg)
	runtime.GC()
	b.ResetTimer()
	var add, fin time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		a := analyze.NewAnalyzer(analyze.Options{})
		for j := range ts {
			a.Add(&ts[j])
		}
		t1 := time.Now()
		a.Finish()
		add += t1.Sub(t0)
		fin += time.Since(t1)
	}
	b.ReportMetric(float64(add.Milliseconds())/float64(b.N), "add-ms")
	b.ReportMetric(float64(fin.Milliseconds())/float64(b.N), "finish-ms")
}

func BenchmarkTmpPar(b *testing.B) {
	cfg := synth.Standard(1000000)
	cfg.Traces, cfg.SpansPerTrace, cfg.LinkShare = 50000, 20, 0.3
	ts := synth.Generate(cfg)
	runtime.GC()
	b.ResetTimer()
	var add, mrg, fin time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		as := make([]*analyze.Analyzer, 2)
		done := make(chan bool)
		for w := range as {
			go func() {
				a := analyze.NewAnalyzer(analyze.Options{})
				for j := len(ts) * w / 2; j < len(ts)*(w+1)/2; j++ {
					a.Add(&ts[j])
				}
				as[w] = a
				done <- true
			}()
		}
		<-done
		<-done
		t1 := time.Now()
		as[0].Merge(as[1])
		t2 := time.Now()
		as[0].Finish()
		add += t1.Sub(t0)
		mrg += t2.Sub(t1)
		fin += time.Since(t2)
	}
	b.ReportMetric(float64(add.Milliseconds())/float64(b.N), "add-ms")
	b.ReportMetric(float64(mrg.Milliseconds())/float64(b.N), "merge-ms")
	b.ReportMetric(float64(fin.Milliseconds())/float64(b.N), "finish-ms")
}
