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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktrace-dev/ktrace/source/file"
	sj "github.com/ktrace-dev/ktrace/stack/jaeger"
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
			fmt.Sprintf("%.2f× Jaeger's per CPU (goal ≥ 3); CPU per span %.2f× one member's (goal ≤ 1.2); user time alone: %.2f× Jaeger's, %.2f× one member's; %s of CPU (%s), %s wall (trace-idle 1s and window 1s included); internal topics %.0f%% of the input's %d MiB (goal ≤ 10%%); peak %d MiB resident per member",
				float64(n)/r.cpu.Seconds()/jaegerRate, perSpan/one, j.user.Seconds()/r.used.user.Seconds(), perSpanUser/oneUser,
				r.cpu.Round(time.Millisecond), r.used, r.wall.Round(time.Millisecond),
				100*float64(r.internal)/float64(r.input), r.input>>20, r.rss>>20))
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
			100*float64(r.internal)/float64(r.input), r.input>>20, r.rss>>20))
}

// instructionRuns counts the instructions members execute per span, with
// 1, 2 and 4 members under callgrind on the same records: the scale-out
// cost in a measure that, unlike CPU time, does not move with what the
// VM charges for a page fault or with what else the machine runs.
// Callgrind runs a member about fifty times slower: a run of the
// default 500,000 spans takes about 13 minutes.
func instructionRuns(ctx context.Context, work, bin string, ts []trace.Trace, perRecord int) {
	if _, err := exec.LookPath("callgrind_control"); err != nil {
		check(fmt.Errorf("-instructions needs valgrind (Debian's package valgrind): %w", err))
	}
	cluster, brokers := newBroker()
	defer cluster.Close()
	recs, n := exporterRecords(ts, perRecord)
	fmt.Fprintf(os.Stderr, "instructions: %d spans in %d records of about %d spans, members under callgrind\n", n, len(recs), perRecord)
	var one, oneWork float64
	for _, members := range []int{1, 2, 4} {
		r := ktraceStream(ctx, work, bin, cluster, brokers, recs, n, len(ts), members, how{callgrind: true})
		perSpan, work := float64(r.instructions)/float64(n), float64(r.instructions-r.idle)/float64(n)
		if members == 1 {
			one, oneWork = perSpan, work
		}
		record(fmt.Sprintf("ktrace stream, %d member(s), under callgrind", members), fmt.Sprintf("%.0f instructions/span", perSpan),
			fmt.Sprintf("%.2f× one member's (goal ≤ 1.2); less what the members execute idle as long (%.0f a span): %.0f, %.2f× one member's; %d instructions in all, %s wall; %d late spans",
				perSpan/one, float64(r.idle)/float64(n), work, work/oneWork, r.instructions, r.wall.Round(time.Second), r.late))
	}
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

// procStat is what /proc/PID/stat says of a process's CPU time (user and
// kernel) and its minor page faults.
type procStat struct {
	user, system time.Duration
	faults       int64
}

func (a procStat) cpu() time.Duration { return a.user + a.system }

func (a procStat) String() string {
	return fmt.Sprintf("%s user, %s kernel; %d page faults", a.user, a.system, a.faults)
}

func (a procStat) add(b procStat) procStat {
	return procStat{a.user + b.user, a.system + b.system, a.faults + b.faults}
}

func (a procStat) sub(b procStat) procStat {
	return procStat{a.user - b.user, a.system - b.system, a.faults - b.faults}
}

func statOf(pid int) procStat {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	check(err)
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	minflt, _ := strconv.ParseInt(f[7], 10, 64)
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return procStat{time.Duration(utime) * time.Second / 100, time.Duration(stime) * time.Second / 100, minflt} // USER_HZ
}

// residentPeak is a process's peak resident memory so far.
func residentPeak(pid int) int64 { return statusBytes(pid, "VmHWM") }

// resident is a process's resident memory now.
func resident(pid int) int64 { return statusBytes(pid, "VmRSS") }

// statusBytes reads a field of /proc/PID/status given in kB.
func statusBytes(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	check(err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func waitHTTP(ctx context.Context, url string) {
	deadline := time.Now().Add(3 * time.Minute) // under callgrind, a member starts in about 20 s
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			check(fmt.Errorf("%s did not answer within 3 minutes", url))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeAddr() string {
	p, err := sj.FreePort()
	check(err)
	return "127.0.0.1:" + strconv.Itoa(p)
}

type streamResult struct {
	cpu, wall                          time.Duration
	used                               procStat
	internal, input, rss, instructions int64
	late                               int64 // spans that came after their trace was complete
	idle                               int64 // of the instructions, what the members would have executed idle as long
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
	var ms []member
	for i := 0; i < members; i++ {
		m := startMember(ctx, work, bin, brokers, topic, group, fmt.Sprintf("%s-%d", topic, i), h, "--trace-idle", idle, "--window", window)
		defer m.stop()
		ms = append(ms, m)
	}
	time.Sleep(2 * time.Second) // the group settled
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
	var late float64
	for _, m := range ms {
		instructions += m.instructions()
		late += m.metric("ktrace_stream_late_spans_total")
	}
	wall := time.Since(start)
	r := streamResult{cpu: used.cpu(), used: used, instructions: instructions, idle: int64(idleRate * wall.Seconds()), late: int64(late), wall: wall, input: topicBytes(cluster, topic),
		internal: topicBytes(cluster, stream.SpansTopic(group)) + topicBytes(cluster, stream.ResultsTopic(group)) +
			topicBytes(cluster, stream.SegmentsTopic(group)) + topicBytes(cluster, stream.PairsTopic(group))}
	for _, m := range ms {
		r.rss = max(r.rss, residentPeak(m.cmd.Process.Pid))
	}
	fmt.Fprintf(os.Stderr, "ktrace stream ×%d: %s CPU for %d spans (%s)\n", members, r.cpu, spans, used)
	return r
}

// member is a `ktrace stream` process.
type member struct {
	cmd       *exec.Cmd
	listen    string // its /metrics, /healthz and /readyz
	callgrind string // where callgrind writes its counts, "" when the member runs bare
	dumps     *int   // how many times they were written
	stop      func()
}

// callgrindKeep is where -instructions keeps the members' counts, if
// anywhere.
var callgrindKeep string

// how members run: on a topic keyed by trace ID (read with
// --partitioned-by-trace) or not, and bare or under callgrind.
type how struct{ byTraceID, callgrind bool }

// startMember starts a member reading topic in group, logging to
// work/name.log, with the flags given, and waits until it is ready.
func startMember(ctx context.Context, work, bin string, brokers []string, topic, group, name string, h how, flags ...string) member {
	listen := freeAddr()
	log, err := os.Create(filepath.Join(work, name+".log"))
	check(err)
	args := append([]string{bin, "stream", "--kafka-brokers", strings.Join(brokers, ","), "--topic", topic, "--group", group,
		"--listen", listen}, flags...)
	if h.byTraceID {
		args = append(args, "--partitioned-by-trace")
	}
	m := member{listen: listen, dumps: new(int)}
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

// zeroInstructions sets a member's count of instructions to zero, when it
// runs under callgrind.
func (m member) zeroInstructions() {
	if m.callgrind != "" {
		check(exec.Command("callgrind_control", "-z", strconv.Itoa(m.cmd.Process.Pid)).Run())
	}
}

// instructions is how many instructions a member under callgrind has
// executed since its count was set to zero: callgrind writes them to a
// file of their own (the dumps are numbered from 1); 0 for a bare
// member.
func (m member) instructions() int64 {
	if m.callgrind == "" {
		return 0
	}
	check(exec.Command("callgrind_control", "-d", strconv.Itoa(m.cmd.Process.Pid)).Run())
	*m.dumps++
	name := fmt.Sprintf("%s.%d", m.callgrind, *m.dumps)
	b, err := os.ReadFile(name)
	check(err)
	if callgrindKeep != "" { // for callgrind_annotate: exact counts per line
		check(os.WriteFile(filepath.Join(callgrindKeep, filepath.Base(name)), b, 0o644))
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "totals: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			check(err)
			return n
		}
	}
	check(fmt.Errorf("%s: no totals line", name))
	return 0
}

// metric is the value of a counter or gauge a member serves, 0 when it
// does not answer.
func (m member) metric(name string) float64 {
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

// jaegerSpanmetrics runs the Jaeger v2 binary as a kafka receiver feeding
// the spanmetrics connector (metrics out to a Prometheus endpoint, no
// trace storage), writes the records once it is ready, and waits until its
// receiver has accepted every span.
func jaegerSpanmetrics(ctx context.Context, work string, cluster *kfake.Cluster, brokers []string, name string, recs []*kgo.Record, spans int) procStat {
	topic := "spans-jaeger-" + name
	check(cluster.CreateTopic(topic, 6, nil))
	j := startJaegerSpanmetrics(ctx, work, brokers, topic)
	defer j.stop()
	before, start := statOf(j.pid), time.Now()
	produceRecords(ctx, brokers, topic, recs)
	j.await(spans, start)
	d := statOf(j.pid).sub(before)
	fmt.Fprintf(os.Stderr, "Jaeger kafka → spanmetrics: %s CPU for %d spans (%s)\n", d.cpu(), spans, d)
	return d
}

// jaegerProc is a Jaeger v2 process reading a topic with its kafka
// receiver into the spanmetrics connector.
type jaegerProc struct {
	pid       int
	telemetry string // its own metrics' address
	stop      func()
}

// startJaegerSpanmetrics starts Jaeger reading topic, in a consumer group
// named as the topic, and waits until it is ready and its group settled.
func startJaegerSpanmetrics(ctx context.Context, work string, brokers []string, topic string) jaegerProc {
	bin, err := sj.FindBinary("")
	check(err)
	health, telemetry, metrics := freeAddr(), freeAddr(), freeAddr()
	th, tp, _ := strings.Cut(telemetry, ":")
	config := fmt.Sprintf(`service:
  extensions: [healthcheckv2]
  pipelines:
    traces:
      receivers: [kafka]
      exporters: [spanmetrics]
    metrics:
      receivers: [spanmetrics]
      exporters: [prometheus]
  telemetry:
    metrics:
      level: normal
      readers:
        - pull:
            exporter:
              prometheus:
                host: %q
                port: %s
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: %q
receivers:
  kafka:
    brokers: [%q]
    group_id: %s
    initial_offset: earliest
    traces:
      topic: %q
      encoding: otlp_proto
connectors:
  spanmetrics: {}
exporters:
  prometheus:
    endpoint: %q
`, th, tp, health, brokers[0], topic, topic, metrics)
	path := filepath.Join(work, topic+".yaml")
	check(os.WriteFile(path, []byte(config), 0o600))
	log, err := os.Create(filepath.Join(work, topic+".log"))
	check(err)
	cmd := exec.Command(bin, "--config", path)
	cmd.Stdout, cmd.Stderr = log, log
	check(cmd.Start())
	stop := started(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait(); log.Close() })
	waitHTTP(ctx, "http://"+health+"/status")
	time.Sleep(2 * time.Second) // the group settled
	return jaegerProc{pid: cmd.Process.Pid, telemetry: telemetry, stop: stop}
}

// await waits until Jaeger's receiver has accepted spans spans.
func (j jaegerProc) await(spans int, start time.Time) {
	for accepted(j.telemetry) < spans {
		if time.Since(start) > 10*time.Minute {
			check(fmt.Errorf("jaeger: %d of %d spans accepted after 10 minutes", accepted(j.telemetry), spans))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// accepted is the spans Jaeger's receivers have accepted, from its own
// telemetry.
func accepted(telemetry string) int {
	resp, err := http.Get("http://" + telemetry + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	n := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "otelcol_receiver_accepted_spans") {
			if f := strings.Fields(line); len(f) >= 2 {
				v, _ := strconv.ParseFloat(f[len(f)-1], 64)
				n += v
			}
		}
	}
	return int(n)
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
