package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/stream"
	"github.com/ktrace-dev/ktrace/trace"
)

// streamRuns measures ktrace stream on a span topic against Jaeger v2's
// kafka receiver feeding its spanmetrics connector, on the same records:
// CPU time per span of each (the processes' own, from their start on an
// empty topic until the last span is analysed), ktrace with 1, 2 and 4
// members, what ktrace's internal topics carry against the input, and the
// members' peak resident memory.
func streamRuns(ctx context.Context, work, bin string, ts []trace.Trace, perRecord int) {
	cluster, brokers := newBroker()
	defer cluster.Close()
	recs, n := exporterRecords(ts, perRecord)
	fmt.Fprintf(os.Stderr, "stream: %d spans in %d records of about %d spans\n", n, len(recs), perRecord)

	// Kernel time is reported apart: here it is mostly the kernel
	// clearing the fresh pages a process's heap grows into (about one
	// fault per page of its peak), and on these VMs what a page costs
	// varies fourfold from run to run, so user time is the steadier
	// measure of the work done (instructions, which perf cannot count
	// here).
	j := jaegerSpanmetrics(ctx, work, cluster, brokers, "scattered", recs, n)
	jaegerRate := float64(n) / j.cpu().Seconds()
	record("Jaeger v2 kafka receiver → spanmetrics connector, from a topic", fmt.Sprintf("%.0f spans/CPU-s", jaegerRate),
		fmt.Sprintf("%d spans, %s of CPU (its process, start-up excluded; %s)", n, j.cpu().Round(time.Millisecond), j))
	var one, oneUser float64
	for _, members := range []int{1, 2, 4} {
		r := ktraceStream(ctx, work, bin, cluster, brokers, recs, n, len(ts), members, how{})
		perSpan, perSpanUser := r.cpu.Seconds()/float64(n), r.used.user.Seconds()/float64(n)
		if members == 1 {
			one, oneUser = perSpan, perSpanUser
		}
		record(fmt.Sprintf("ktrace stream, %d member(s), from a topic", members), fmt.Sprintf("%.0f spans/CPU-s", float64(n)/r.cpu.Seconds()),
			fmt.Sprintf("%.2f× Jaeger's per CPU (goal ≥ 3); CPU per span %.2f× one member's (goal ≤ 1.2); user time alone: %.2f× Jaeger's, %.2f× one member's; %s of CPU (%s), %s wall (trace-idle 1s and window 1s included); internal topics %.0f%% of the input's %d MiB (goal ≤ 10%%); peak %d MiB resident per member; %d late spans",
				float64(n)/r.cpu.Seconds()/jaegerRate, perSpan/one, j.user.Seconds()/r.used.user.Seconds(), perSpanUser/oneUser,
				r.cpu.Round(time.Millisecond), r.used, r.wall.Round(time.Millisecond),
				100*float64(r.internal)/float64(r.input), r.input>>20, r.rss>>20, r.late)+r.caveat())
	}
	// The exporter's partition_traces_by_id: a record per trace, keyed by
	// its ID; ktrace reads it with --partitioned-by-trace.
	keyed := byTrace(ts)
	// A rest first. On these VMs a process's page faults cost more after
	// minutes of load (perf: up to 70% of the keyed member's CPU in the
	// kernel clearing pages, against 15–25% when rested), and the keyed
	// runs came out from 130k to 480k spans/CPU-s; rested, as the runs
	// above start, they agree with runs made alone.
	fmt.Fprintln(os.Stderr, "resting 90s before the keyed runs")
	time.Sleep(90 * time.Second)
	jk := jaegerSpanmetrics(ctx, work, cluster, brokers, "keyed", keyed, n)
	r := ktraceStream(ctx, work, bin, cluster, brokers, keyed, n, len(ts), 1, how{byTraceID: true})
	record("keyed by trace ID: Jaeger, then ktrace stream --partitioned-by-trace (1 member)",
		fmt.Sprintf("%.0f, %.0f spans/CPU-s", float64(n)/jk.cpu().Seconds(), float64(n)/r.cpu.Seconds()),
		fmt.Sprintf("%.2f× Jaeger's per CPU (user time alone: %.2f×); Jaeger %s, ktrace %s; internal topics %.0f%% of the input's %d MiB; peak %d MiB resident",
			jk.cpu().Seconds()/r.cpu.Seconds(), jk.user.Seconds()/r.used.user.Seconds(), jk, r.used,
			100*float64(r.internal)/float64(r.input), r.input>>20, r.rss>>20)+r.caveat())
}

// newBroker starts an in-process broker, which the caller closes.
func newBroker() (*kfake.Cluster, []string) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	check(err)
	return cluster, cluster.ListenAddrs()
}

// byTrace encodes each trace as a record of its own keyed by its ID, as
// the exporter's partition_traces_by_id does.
func byTrace(ts []trace.Trace) []*kgo.Record {
	out := make([]*kgo.Record, len(ts))
	for i := range ts {
		data, err := file.MarshalOTLPProto(ts[i : i+1])
		check(err)
		out[i] = &kgo.Record{Key: []byte(ts[i].ID.String()), Value: data}
	}
	return out
}

// exporterRecords encodes the spans as a collector's kafka exporter
// writes them by default: OTLP protobuf records of about perRecord spans
// each, in the order the spans come, keyed by nothing.
func exporterRecords(ts []trace.Trace, perRecord int) ([]*kgo.Record, int) {
	var out []*kgo.Record
	var batch []trace.Trace
	n, inBatch := 0, 0
	flush := func() {
		if inBatch > 0 {
			data, err := file.MarshalOTLPProto(batch)
			check(err)
			out = append(out, &kgo.Record{Value: data})
		}
		batch, inBatch = nil, 0
	}
	for i := range ts {
		spans := ts[i].Spans
		for len(spans) > 0 {
			k := min(len(spans), perRecord-inBatch)
			batch = append(batch, trace.Trace{ID: ts[i].ID, Spans: spans[:k]})
			spans, inBatch, n = spans[k:], inBatch+k, n+k
			if inBatch == perRecord {
				flush()
			}
		}
	}
	flush()
	return out, n
}

// produceRecords writes recs to topic: keyed ones by their key, the
// others spread over its partitions.
func produceRecords(ctx context.Context, brokers []string, topic string, recs []*kgo.Record) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	check(err)
	defer cl.Close()
	for _, r := range recs {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value}, func(_ *kgo.Record, err error) { check(err) })
	}
	check(cl.Flush(ctx))
}

type streamResult struct {
	cpu, wall                          time.Duration
	used                               procStat
	internal, input, rss, instructions int64
	late                               int64 // spans that came after their trace was complete
	idle                               int64 // of the instructions, what the members would have executed idle as long
	// Spans read and traces analysed more than were sent: work done again
	// after an aborted transaction or a lost group (under callgrind a
	// member fifty times slower can miss its session's heartbeats).
	spansAgain, tracesAgain int64
}

// caveat is what a row must say of a run whose members did work again:
// its figures count that work twice.
func (r streamResult) caveat() string {
	if r.spansAgain <= 0 && r.tracesAgain <= 0 {
		return ""
	}
	return fmt.Sprintf("; NOT COMPARABLE: the members read %d spans and analysed %d traces more than were sent (work done again after an aborted transaction or a lost group): run again",
		max(r.spansAgain, 0), max(r.tracesAgain, 0))
}

func topicBytes(cluster *kfake.Cluster, topic string) int64 {
	var n int64
	for _, p := range cluster.PartitionInfos(topic) {
		n += p.NumBytes
	}
	return n
}

// ktraceStream runs members `ktrace stream` processes on a topic of their
// own, writes the records once they are ready, and waits until their
// merged results hold every trace.
func ktraceStream(ctx context.Context, work, bin string, cluster *kfake.Cluster, brokers []string, recs []*kgo.Record, spans, traces, members int, h how) streamResult {
	topic, group := fmt.Sprintf("spans-%d-%v-%v", members, h.byTraceID, h.callgrind), fmt.Sprintf("bench%d-%v-%v", members, h.byTraceID, h.callgrind)
	check(cluster.CreateTopic(topic, 6, nil))
	// Under callgrind a member runs about fifty times slower, and a poll's
	// records can take longer than a second to handle: traces whose later
	// spans are still unread would be taken as complete, and their late
	// spans analysed again, work a member at full speed does not do.
	// There the window is the default, a minute, as members run in
	// production: what a member does once a window (a transaction on
	// each partition it holds, a result per segment) is then a small
	// part of its work, as it is in production.
	idle, window := "1s", "1s"
	if h.callgrind {
		idle, window = "30s", "1m"
	}
	var ms []*member
	for i := 0; i < members; i++ {
		m := startMember(ctx, work, bin, brokers, topic, group, fmt.Sprintf("%s-%d", topic, i), h, "--trace-idle", idle, "--window", window)
		defer m.stop()
		ms = append(ms, m)
	}
	groups := []string{group, stream.PairsGroup(group)}
	if !h.byTraceID {
		groups = append(groups, stream.SpansGroup(group))
	}
	settled(ctx, brokers, groups, members)
	stat := func() procStat {
		var s procStat
		for _, m := range ms {
			s = s.add(statOf(m.cmd.Process.Pid))
		}
		return s
	}
	// What members under callgrind execute with nothing to do (timers,
	// heartbeats, polls): their runs last fifty times as long as they
	// would, and this time-driven part grows with them.
	var idleRate float64
	if h.callgrind {
		fmt.Fprintf(os.Stderr, "ktrace stream ×%d under callgrind: settling, then counting what the members execute idle (50 s)\n", members)
		time.Sleep(30 * time.Second) // joining three groups takes that long there
		for _, m := range ms {
			m.zeroInstructions()
		}
		t0 := time.Now()
		time.Sleep(20 * time.Second)
		var idle int64
		for _, m := range ms {
			idle += m.instructions()
		}
		idleRate = float64(idle) / time.Since(t0).Seconds()
	}
	for _, m := range ms {
		m.zeroInstructions()
	}
	before, start := stat(), time.Now()
	produceRecords(ctx, brokers, topic, recs)
	for {
		p, err := stream.ReadResults(ctx, stream.Kafka{Brokers: brokers}, group, time.Time{}, time.Time{}, nil)
		if err == nil {
			if g, _ := p.Finish(); g.Traces >= traces {
				break
			}
		}
		if time.Since(start) > time.Hour {
			check(fmt.Errorf("ktrace stream ×%d: not done after an hour", members))
		}
		time.Sleep(200 * time.Millisecond)
	}
	used := stat().sub(before)
	var instructions int64
	var late, spansIn, analysed float64
	for _, m := range ms {
		instructions += m.instructions()
		late += m.metric("ktrace_stream_late_spans_total")
		spansIn += m.metric("ktrace_stream_spans_in_total")
		analysed += m.metric("ktrace_stream_traces_total")
	}
	wall := time.Since(start)
	r := streamResult{cpu: used.cpu(), used: used, instructions: instructions, idle: int64(idleRate * wall.Seconds()), late: int64(late), wall: wall, input: topicBytes(cluster, topic),
		internal: topicBytes(cluster, stream.SpansTopic(group)) + topicBytes(cluster, stream.ResultsTopic(group)) +
			topicBytes(cluster, stream.SegmentsTopic(group)) + topicBytes(cluster, stream.PairsTopic(group))}
	for _, m := range ms {
		r.rss = max(r.rss, residentPeak(m.cmd.Process.Pid))
	}
	r.spansAgain, r.tracesAgain = int64(spansIn)-int64(spans), int64(analysed)-int64(traces)
	fmt.Fprintf(os.Stderr, "ktrace stream ×%d: %s CPU for %d spans (%s)%s\n", members, r.cpu, spans, used, r.caveat())
	return r
}

// settled waits until each of groups is stable, with members members and
// every partition of its topics assigned: a member that joins while the
// records flow makes the others abort their transactions and read again
// (with cooperative rebalancing, twice), work the run must not count.
func settled(ctx context.Context, brokers []string, groups []string, members int) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	check(err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	stable := func() bool {
		ds, err := adm.DescribeGroups(ctx, groups...)
		if err != nil {
			return false
		}
		for _, g := range groups {
			d := ds[g]
			if d.Err != nil || d.State != "Stable" || len(d.Members) != members {
				return false
			}
			topics, err := adm.ListTopics(ctx, d.JoinTopics()...)
			if err != nil || len(topics) == 0 {
				return false
			}
			assigned := d.AssignedPartitions()
			for _, t := range topics {
				if len(assigned[t.Topic]) != len(t.Partitions) {
					return false
				}
			}
		}
		return true
	}
	for start := time.Now(); !stable(); time.Sleep(100 * time.Millisecond) {
		if time.Since(start) > 5*time.Minute {
			check(fmt.Errorf("groups %v: not stable with %d members after five minutes", groups, members))
		}
	}
}

// member is a `ktrace stream` process.
type member struct {
	cmd       *exec.Cmd
	listen    string // its /metrics, /healthz and /readyz
	callgrind string // where callgrind writes its counts, "" when the member runs bare
	dumps     int    // how many times they were written
	stop      func()
}

// how members run: on a topic keyed by trace ID (read with
// --partitioned-by-trace) or not, and bare or under callgrind.
type how struct{ byTraceID, callgrind bool }

// startMember starts a member reading topic in group, logging to
// work/name.log, with the flags given, and waits until it is ready.
func startMember(ctx context.Context, work, bin string, brokers []string, topic, group, name string, h how, flags ...string) *member {
	listen := freeAddr()
	log, err := os.Create(filepath.Join(work, name+".log"))
	check(err)
	args := append([]string{bin, "stream", "--kafka-brokers", strings.Join(brokers, ","), "--topic", topic, "--group", group,
		"--listen", listen}, flags...)
	if h.byTraceID {
		args = append(args, "--partitioned-by-trace")
	}
	m := &member{listen: listen}
	if h.callgrind {
		m.callgrind = filepath.Join(work, name+".callgrind")
		args = append([]string{"valgrind", "--tool=callgrind", "--callgrind-out-file=" + m.callgrind}, args...)
	}
	m.cmd = exec.Command(args[0], args[1:]...)
	if h.callgrind {
		// Callgrind fails on the signals that preempt goroutines
		// (valgrind 3.19); the scheduler still switches them at calls.
		m.cmd.Env = append(os.Environ(), "GODEBUG=asyncpreemptoff=1")
	}
	m.cmd.Stderr = log
	check(m.cmd.Start())
	waitHTTP(ctx, "http://"+listen+"/readyz")
	m.stop = started(func() { m.cmd.Process.Signal(syscall.SIGTERM); m.cmd.Wait(); log.Close() })
	return m
}

// metric is the value of a counter or gauge a member serves, 0 when it
// does not answer.
func (m *member) metric(name string) float64 {
	resp, err := http.Get("http://" + m.listen + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}
