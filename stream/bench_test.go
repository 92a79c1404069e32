//go:build unix

package stream_test

import (
	"context"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/stream"
	"github.com/ktrace-dev/ktrace/trace"
)

// BenchmarkMember: one member, in process with the broker, reads 100,000
// spans until its results hold every trace: records of about 300 spans
// as an exporter writes them by default, and a record per trace keyed by
// its ID (partition_traces_by_id, read with ByTraceID). Profile it with
// -cpuprofile; bench/run measures the process against Jaeger's.
func BenchmarkMember(b *testing.B) {
	ts := synth.Generate(synth.Config{Traces: 5000, SpansPerTrace: 20, BrokenShare: 0.1, LinkShare: 0.3, Seed: 3})
	var scattered, keyed []*kgo.Record
	for i := range ts {
		data, err := file.MarshalOTLPProto(ts[i : i+1])
		if err != nil {
			b.Fatal(err)
		}
		keyed = append(keyed, &kgo.Record{Key: []byte(ts[i].ID.String()), Value: data})
	}
	var batch []trace.Trace
	n := 0
	for i := range ts {
		batch = append(batch, ts[i])
		if n += len(ts[i].Spans); n >= 300 || i == len(ts)-1 {
			data, err := file.MarshalOTLPProto(batch)
			if err != nil {
				b.Fatal(err)
			}
			scattered = append(scattered, &kgo.Record{Value: data})
			batch, n = nil, 0
		}
	}
	b.Run("scattered", func(b *testing.B) { member(b, ts, scattered, false) })
	b.Run("keyed", func(b *testing.B) { member(b, ts, keyed, true) })
}

func member(b *testing.B, ts []trace.Trace, recs []*kgo.Record, byTraceID bool) {
	var cpu time.Duration // of the process: the member and the broker
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "otlp_spans"))
		if err != nil {
			b.Fatal(err)
		}
		brokers := cluster.ListenAddrs()
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("otlp_spans"))
		if err != nil {
			b.Fatal(err)
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
		cl.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		before := cpuTime()
		b.StartTimer()
		go func() {
			done <- stream.Run(ctx, stream.Config{Kafka: stream.Kafka{Brokers: brokers}, Topic: "otlp_spans", Group: "g", TraceIdle: 200 * time.Millisecond,
				Window: 200 * time.Millisecond, Instance: "bench", Log: io.Discard, ByTraceID: byTraceID})
		}()
		for {
			p, err := stream.ReadResults(context.Background(), stream.Kafka{Brokers: brokers}, "g", time.Time{}, time.Time{}, nil)
			if err == nil {
				if g, _ := p.Finish(); g.Traces == len(ts) {
					break
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		b.StopTimer()
		cpu += cpuTime() - before
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		cluster.Close()
	}
	b.ReportMetric(float64(len(ts)*20*b.N)/b.Elapsed().Seconds(), "spans/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(len(ts)*20*b.N), "cpu-ns/span")
}

// cpuTime is the CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
