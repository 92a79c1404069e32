//go:build unix

package stream_test

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"runtime/metrics"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/internal/testenv"
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
		cluster, brokers := spanTopic(b, recs)
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

// spanTopic starts a broker whose six-partition otlp_spans topic holds
// recs; the caller closes it.
func spanTopic(b *testing.B, recs []*kgo.Record) (*kfake.Cluster, []string) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "otlp_spans"))
	if err != nil {
		b.Fatal(err)
	}
	brokers := cluster.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("otlp_spans"))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	return cluster, brokers
}

// cpuTime is the CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReadResults: reading what a group published — 60 results of
// about 20,000 spans, a sixth of them published twice (late spans), in records
// compressed as members write them — reports the heap's peak during the
// read, above what it was before, and what the merged partial holds.
func BenchmarkReadResults(b *testing.B) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, stream.ResultsTopic("g")))
	if err != nil {
		b.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	if err != nil {
		b.Fatal(err)
	}
	spans, traces := 0, 0
	for i := range 60 {
		ts := synth.Generate(synth.Config{Traces: 1000, SpansPerTrace: 20, Services: 8, Topics: 4, Partitions: 6,
			BrokenShare: 0.1, LinkShare: 0.3, Seed: uint64(100 + i)})
		for j := range ts { // traces of their own
			t := &ts[j]
			old := t.ID
			t.ID.High = uint64(i + 1)
			for k := range t.Spans {
				sp := &t.Spans[k]
				sp.TraceID = t.ID
				for r := range sp.Refs {
					if sp.Refs[r].TraceID == old {
						sp.Refs[r].TraceID = t.ID
					}
				}
			}
		}
		key := []byte("result-" + strconv.Itoa(i))
		if i%6 == 0 { // published once before, with fewer traces
			early := testenv.Result(b, ts[:500])
			if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: stream.ResultsTopic("g"), Key: key, Value: early}).FirstErr(); err != nil {
				b.Fatal(err)
			}
		}
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: stream.ResultsTopic("g"), Key: key, Value: testenv.Result(b, ts)}).FirstErr(); err != nil {
			b.Fatal(err)
		}
		for _, t := range ts {
			spans += len(t.Spans)
		}
		traces += len(ts)
	}
	cl.Close()
	var peak, merged uint64
	for b.Loop() {
		runtime.GC()
		base := heapBytes()
		stop, top := make(chan struct{}), make(chan uint64)
		go func() {
			m := base
			for {
				select {
				case <-stop:
					top <- m
					return
				case <-time.After(time.Millisecond):
					m = max(m, heapBytes())
				}
			}
		}()
		p, err := stream.ReadResults(context.Background(), stream.Kafka{Brokers: brokers}, "g", time.Time{}, time.Time{}, nil)
		close(stop)
		peak = <-top - base
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		merged = heapBytes() - base
		if g, _ := p.Finish(); g.Traces != traces {
			b.Fatalf("%d traces read, want %d", g.Traces, traces)
		}
	}
	b.ReportMetric(float64(peak)/float64(spans), "peak-B/span")
	b.ReportMetric(float64(merged)/float64(spans), "merged-B/span")
}

// heapBytes is the heap's live and not yet swept objects now.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// BenchmarkSpansCompression: what the spans topic's compression costs a
// re-keyed span: the OTLP pieces of 50 traces a batch (about what a poll
// writes to a partition), compressed as a member's client compresses them
// and decompressed as a reader's does, reporting the bytes a span before
// and after.
func BenchmarkSpansCompression(b *testing.B) {
	ts := synth.Generate(synth.Standard(20000))
	var batches [][]byte
	spans, raw := 0, 0
	for i := 0; i < len(ts); i += 50 {
		var batch []byte
		for j := i; j < min(i+50, len(ts)); j++ {
			piece, err := file.MarshalOTLPProto(ts[j : j+1])
			if err != nil {
				b.Fatal(err)
			}
			batch = append(batch, piece...)
			spans += len(ts[j].Spans)
		}
		batches, raw = append(batches, batch), raw+len(batch)
	}
	enc, err := kgo.DefaultCompressor(stream.InternalCodecs()...)
	if err != nil {
		b.Fatal(err)
	}
	dec := kgo.DefaultDecompressor()
	var buf bytes.Buffer
	size := 0
	for b.Loop() {
		size = 0
		for _, batch := range batches {
			buf.Reset()
			packed, codec := enc.Compress(&buf, batch)
			size += len(packed)
			if out, err := dec.Decompress(packed, codec); err != nil || len(out) != len(batch) {
				b.Fatalf("decompressed %d bytes of %d (%v)", len(out), len(batch), err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(spans*b.N), "ns/span")
	b.ReportMetric(float64(raw)/float64(spans), "B/span")
	b.ReportMetric(float64(size)/float64(spans), "compressed-B/span")
}

// BenchmarkBacklog: one member reads a backlog at once — 500,000 spans
// in keyed records on six partitions, written over 200 s of record time,
// with a 5 s trace-idle — and reports the most spans it held pending
// (its ktrace_stream_pending_spans, read every 20 ms): a trace completes
// once its partition's record time has moved the idle time past it, so a
// member holds a trace-idle time of the backlog, a poll, and the
// complete traces each partition gathers before they are analysed
// (foldSpans), not all it reads within the idle time.
func BenchmarkBacklog(b *testing.B) {
	ts := synth.Generate(synth.Config{Traces: 25_000, SpansPerTrace: 20, Seed: 9})
	start := time.Now().Add(-200 * time.Second)
	recs := make([]*kgo.Record, len(ts))
	for i := range ts {
		data, err := file.MarshalOTLPProto(ts[i : i+1])
		if err != nil {
			b.Fatal(err)
		}
		at := start.Add(time.Duration(i) * 200 * time.Second / time.Duration(len(ts)))
		recs[i] = &kgo.Record{Key: []byte(ts[i].ID.String()), Value: data, Timestamp: at}
	}
	var most float64
	for b.Loop() {
		cluster, brokers := spanTopic(b, recs)
		listen := freeAddr(b)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- stream.Run(ctx, stream.Config{Kafka: stream.Kafka{Brokers: brokers}, Topic: "otlp_spans", Group: "g", TraceIdle: 5 * time.Second,
				Window: time.Second, Instance: "bench", Log: io.Discard, ByTraceID: true, Listen: listen})
		}()
		for publishedTraces(brokers, "g") < len(ts)*9/10 {
			if lines, err := scrape(listen); err == nil { // serving once the member has started
				if v, err := sumOf(lines, "ktrace_stream_pending_spans"); err == nil {
					most = max(most, v)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		cluster.Close()
	}
	b.ReportMetric(most, "most-pending-spans")
}
