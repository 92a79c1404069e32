package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/trace"
)

// streamSteady measures ktrace stream and Jaeger's kafka receiver →
// spanmetrics side by side as they run in production: both read one topic
// (each in its group) while spans come at a constant rate for d — the
// set's traces written again and again under new trace IDs, in records of
// about 300 spans, or a record per trace keyed by its ID — and each
// process's CPU is taken from the first span to the last analysed. A
// burst (streamRuns) makes a member hold the whole topic at once, and pay
// the kernel for every fresh page of it; at a steady rate its memory is
// reused, as Jaeger's is.
func streamSteady(ctx context.Context, work, bin string, ts []trace.Trace, rate int, d time.Duration, byTraceID bool) {
	cluster, brokers := newBroker()
	defer cluster.Close()
	topic := fmt.Sprintf("steady-%v", byTraceID)
	check(cluster.CreateTopic(topic, 6, nil))
	j := startJaegerSpanmetrics(ctx, work, brokers, topic)
	defer j.stop()
	m := startMember(ctx, work, bin, brokers, topic, "steady", topic, how{byTraceID: byTraceID}, "--trace-idle", "5s", "--window", "10s")
	defer m.stop()
	time.Sleep(2 * time.Second) // the group settled
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	check(err)
	defer cl.Close()
	jBefore, mBefore, start := statOf(j.pid), statOf(m.cmd.Process.Pid), time.Now()
	sent, traces, k := 0, 0, 0
	for time.Since(start) < d {
		// Keep to the rate: write the traces due by now, 300 spans or a
		// trace a record.
		var batch []trace.Trace
		for due := int(time.Since(start).Seconds() * float64(rate)); sent < due; k++ {
			t := ts[k%len(ts)]
			t.Spans = slices.Clone(t.Spans)
			for i := range t.Spans {
				t.Spans[i].Refs = slices.Clone(t.Spans[i].Refs)
			}
			reID(&t, trace.TraceID{High: uint64(k/len(ts)) + 1, Low: uint64(k%len(ts)) + 1})
			batch = append(batch, t)
			sent, traces = sent+len(t.Spans), traces+1
		}
		recs := byTrace(batch)
		if !byTraceID {
			recs, _ = exporterRecords(batch, 300)
		}
		for _, r := range recs {
			cl.Produce(ctx, &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value}, func(_ *kgo.Record, err error) { check(err) })
		}
		time.Sleep(20 * time.Millisecond)
	}
	check(cl.Flush(ctx))
	j.await(sent, start)
	jUsed := statOf(j.pid).sub(jBefore)
	jCPU := jUsed.cpu()
	for m.metric("ktrace_stream_traces_total") < float64(traces) {
		if time.Since(start) > d+5*time.Minute {
			check(fmt.Errorf("ktrace stream: %v of %d traces published five minutes after the last span", m.metric("ktrace_stream_traces_total"), traces))
		}
		time.Sleep(100 * time.Millisecond)
	}
	mUsed := statOf(m.cmd.Process.Pid).sub(mBefore)
	mCPU := mUsed.cpu()
	how := "in records of about 300 spans (not keyed)"
	if byTraceID {
		how = "a record per trace keyed by its ID, --partitioned-by-trace"
	}
	fmt.Fprintf(os.Stderr, "steady %s: Jaeger %s, ktrace %s of CPU for %d spans\n", how, jCPU, mCPU, sent)
	record(fmt.Sprintf("at %d spans/s for %s, %s: Jaeger, then ktrace stream (1 member)", rate, d, how),
		fmt.Sprintf("%.0f, %.0f spans/CPU-s", float64(sent)/jCPU.Seconds(), float64(sent)/mCPU.Seconds()),
		fmt.Sprintf("%.2f× Jaeger's per CPU (user time alone: %.2f×); %d spans; Jaeger %s, ktrace %s; peak %d MiB resident (ktrace), %d MiB (Jaeger)",
			jCPU.Seconds()/mCPU.Seconds(), jUsed.user.Seconds()/mUsed.user.Seconds(), sent, jUsed, mUsed,
			residentPeak(m.cmd.Process.Pid)>>20, residentPeak(j.pid)>>20))
}

// streamSoak runs one ktrace stream member for d while spans arrive at a
// constant rate (traces of the set, written again under new trace IDs),
// and records its resident memory each ten seconds: memory bounded by the
// window's state stays flat; memory that grows with the spans seen does
// not.
func streamSoak(ctx context.Context, work, bin string, ts []trace.Trace, rate int, d time.Duration) {
	cluster, brokers := newBroker()
	defer cluster.Close()
	topic := "soak"
	check(cluster.CreateTopic(topic, 6, nil))
	listen := freeAddr()
	log, err := os.Create(filepath.Join(work, "soak.log"))
	check(err)
	defer log.Close()
	cmd := exec.Command(bin, "stream", "--kafka-brokers", strings.Join(brokers, ","), "--topic", topic, "--group", "soak",
		"--listen", listen, "--trace-idle", "5s", "--window", "1m")
	cmd.Stderr = log
	check(cmd.Start())
	defer started(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })()
	waitHTTP(ctx, "http://"+listen+"/readyz")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerBatchCompression(kgo.NoCompression()))
	check(err)
	defer cl.Close()
	start, sent, k := time.Now(), 0, 0
	var samples []string
	var first, last int64
	nextSample := start.Add(10 * time.Second)
	for time.Since(start) < d {
		// Keep to the rate: write the traces due by now.
		due := int(time.Since(start).Seconds() * float64(rate))
		for ; sent < due; k++ {
			t := ts[k%len(ts)]
			t.Spans = slices.Clone(t.Spans)
			for j := range t.Spans {
				t.Spans[j].Refs = slices.Clone(t.Spans[j].Refs)
			}
			reID(&t, trace.TraceID{High: uint64(k/len(ts)) + 1, Low: uint64(k%len(ts)) + 1})
			data, err := file.MarshalOTLPProto([]trace.Trace{t})
			check(err)
			cl.Produce(ctx, &kgo.Record{Topic: topic, Value: data}, func(_ *kgo.Record, err error) { check(err) })
			sent += len(t.Spans)
		}
		if time.Now().After(nextSample) {
			nextSample = nextSample.Add(10 * time.Second)
			rss := resident(cmd.Process.Pid)
			if first == 0 && time.Since(start) > time.Minute {
				first = rss
			}
			last = rss
			samples = append(samples, fmt.Sprintf("%d", rss>>20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	check(cl.Flush(ctx))
	if b, err := os.ReadFile(filepath.Join(work, "soak.log")); err == nil {
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		fmt.Fprintf(os.Stderr, "the member's log, %d lines, the last:\n%s\n", len(lines), strings.Join(lines[max(0, len(lines)-8):], "\n"))
	}
	if resp, err := http.Get("http://" + listen + "/metrics"); err == nil {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ktrace_stream") {
				fmt.Fprintln(os.Stderr, sc.Text())
			}
		}
		resp.Body.Close()
	}
	record(fmt.Sprintf("ktrace stream at %d spans/s for %s", rate, d), fmt.Sprintf("%d → %d MiB", first>>20, last>>20),
		fmt.Sprintf("resident memory after the first minute and at the end (trace-idle 5s, window 1m; %d spans written); every 10 s: %s MiB",
			sent, strings.Join(samples, " ")))
}
