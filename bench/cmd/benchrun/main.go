// Command benchrun measures ktrace side by side with what users would
// otherwise run, on the same machine in the same run, and prints one table
// of figures and ratios. See BENCHMARKS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/source/jaeger"
	sj "github.com/ktrace-dev/ktrace/stack/jaeger"
	"github.com/ktrace-dev/ktrace/trace"
)

type row struct{ what, figure, note string }

var rows []row

func record(what, figure, note string) {
	rows = append(rows, row{what, figure, note})
	fmt.Fprintf(os.Stderr, "%s: %s %s\n", what, figure, note)
}

func rate(n int, d time.Duration) string {
	return fmt.Sprintf("%.0f spans/s", float64(n)/d.Seconds())
}

func main() {
	spans := flag.Int("spans", 1_000_000, "spans in the ordinary set")
	perTrace := flag.Int("spans-per-trace", 20, "spans per trace in the ordinary set")
	single := flag.Int("single", 1_000_000, "spans in the single large trace")
	withJaeger := flag.Bool("jaeger", true, "also measure against a real Jaeger v2 (memory and Badger)")
	badger := flag.Bool("badger", true, "also measure Jaeger with the Badger store")
	memory := flag.Bool("memory", true, "also measure Jaeger with the memory store")
	flag.IntVar(&pageSize, "page-size", 1000, "FindTraces depth per call for the Jaeger drains and graphs")
	fanOut := flag.Int("fanout", 1, "calls or hops each step makes from one span (1: chains)")
	linkShare := flag.Float64("link-share", 0.3, "share of broken hops whose consumer links to its producer")
	withStream := flag.Bool("stream", true, "also measure ktrace stream against Jaeger's kafka receiver → spanmetrics")
	onlyStream := flag.Bool("only-stream", false, "measure ktrace stream only")
	streamSpans := flag.Int("stream-spans", 500_000, "spans written to the span topic for the stream runs")
	soak := flag.Duration("soak", 0, "with -only-stream: also run one member this long at -soak-rate spans/s and record its memory")
	soakRate := flag.Int("soak-rate", 20_000, "spans per second in the -soak run")
	steady := flag.Duration("steady", 0, "with -only-stream: instead, run Jaeger and one member side by side this long at -steady-rate spans/s, re-keyed and keyed")
	steadyRate := flag.Int("steady-rate", 100_000, "spans per second in the -steady runs")
	instructions := flag.Bool("instructions", false, "with -only-stream: instead, count the instructions per span of 1, 2 and 4 members under callgrind (valgrind), on -stream-spans spans")
	flag.StringVar(&callgrindKeep, "keep-callgrind", "", "with -instructions: keep the members' callgrind counts in this directory (read them with callgrind_annotate)")
	flag.Parse()
	ctx := context.Background()
	stopOnSignal()
	if *onlyStream {
		work, err := os.MkdirTemp("", "ktrace-bench-")
		check(err)
		defer os.RemoveAll(work)
		bin := buildKtrace(work)
		switch {
		case *soak > 0:
			cfg := synth.Standard(100_000)
			streamSoak(ctx, work, bin, synth.Generate(cfg), *soakRate, *soak)
		case *steady > 0:
			ts := synth.Generate(synth.Standard(100_000))
			streamSteady(ctx, work, bin, ts, *steadyRate, *steady, false)
			streamSteady(ctx, work, bin, ts, *steadyRate, *steady, true)
		case *instructions:
			cfg := synth.Standard(*streamSpans)
			cfg.Traces, cfg.SpansPerTrace, cfg.LinkShare = *streamSpans / *perTrace, *perTrace, *linkShare
			instructionRuns(ctx, work, bin, synth.Generate(cfg), 300)
		default:
			streamSet(ctx, work, bin, *streamSpans, *perTrace, *linkShare)
		}
		table()
		return
	}
	work, err := os.MkdirTemp("", "ktrace-bench-")
	check(err)
	defer os.RemoveAll(work)

	fmt.Fprintf(os.Stderr, "generating %d spans (%d per trace, fan-out %d, 10%% broken hops, %.0f%% of those linked)...\n", *spans, *perTrace, *fanOut, *linkShare*100)
	cfg := synth.Standard(*spans)
	cfg.Traces, cfg.SpansPerTrace, cfg.LinkShare, cfg.FanOut = *spans / *perTrace, *perTrace, *linkShare, *fanOut
	ts := synth.Generate(cfg)
	n := 0
	for i := range ts {
		n += len(ts[i].Spans)
	}

	// 1. In process: graph + break analysis, in one pass on every CPU (what
	// the CLI runs) and on one.
	var g *graph.Graph
	var rep analyze.Report
	// ktrace and the connector (1b) take turns, three rounds, so that a
	// slow spell of the machine does not fall on one side only. Each runs
	// once untimed first: a process's first run faults in the memory its
	// heap grows to, which later runs reuse (ktrace's first run here takes
	// about a third longer than its later ones), and both are measured as
	// they run once warm.
	batches := toPtrace(ts, 2000)
	run(ts, 0)
	runtime.GC()
	_, err = spanmetrics(context.Background(), batches)
	check(err)
	var d, dm time.Duration
	for round := 0; round < 3; round++ {
		dk := best1(func() { g, rep = run(ts, 0) })
		runtime.GC()
		dc, err := spanmetrics(context.Background(), batches)
		check(err)
		if round == 0 || dk < d {
			d = dk
		}
		if round == 0 || dc < dm {
			dm = dc
		}
	}
	record("graph + break analysis, in process", rate(n, d), fmt.Sprintf("%d spans in %s on %d CPUs; %d edges, %d findings", n, d.Round(time.Millisecond), runtime.GOMAXPROCS(0), len(g.Edges), len(rep.Findings)))
	d1 := best(func() { run(ts, 1) })
	record("graph + break analysis, one CPU", rate(n, d1), fmt.Sprintf("%d spans in %s", n, d1.Round(time.Millisecond)))
	// Stores return a trace's spans in no useful order: the same set with
	// each trace shuffled.
	cfg.Shuffle = true
	shuffled := synth.Generate(cfg)
	ds := best(func() { run(shuffled, 0) })
	record("graph + break analysis, spans shuffled", rate(n, ds), fmt.Sprintf("%d spans in %s on %d CPUs", n, ds.Round(time.Millisecond), runtime.GOMAXPROCS(0)))
	shuffled = nil

	// 1b. The collector-contrib spanmetrics connector on the identical
	// spans (timed in the rounds above).
	record("spanmetrics connector (collector-contrib v0.165.1), in process", rate(n, dm),
		fmt.Sprintf("ktrace graph + breaks is %.2f× its throughput (target ≥ 5); on one CPU %.2f×; shuffled %.2f×", dm.Seconds()/d.Seconds(), dm.Seconds()/d1.Seconds(), dm.Seconds()/ds.Seconds()))

	// 1c. The floor: a pass that only reads what the analysis reads of each
	// span (its refs, attribute names and values, operation and resource),
	// with no work on it, on every CPU. No analysis of these spans, laid out
	// as they are, can run faster.
	df := best(func() { floor(ts) })
	record("floor: reading each span's fields once, no analysis", rate(n, df),
		fmt.Sprintf("%s on %d CPUs; 5× the connector needs %s", df.Round(time.Millisecond), runtime.GOMAXPROCS(0), rate(n, dm/5)))

	// 2. The CLI on a snapshot: wall time and peak resident memory per span.
	snap := filepath.Join(work, "set.ktrace")
	writeSnapshot(snap, ts)
	bin := buildKtrace(work)
	cmd := exec.Command(bin, "graph", "--file", snap, "-o", "json")
	start := time.Now()
	rss := peakRSS(cmd)
	d = time.Since(start)
	record("ktrace graph --file snapshot (CLI)", rate(n, d), fmt.Sprintf("%s wall", d.Round(time.Millisecond)))
	record("peak resident bytes per span", fmt.Sprintf("%.0f B/span", float64(rss)/float64(n)), fmt.Sprintf("%d MiB peak for %d spans (ktrace graph --file streams a single snapshot into the graph)", rss>>20, n))
	cmd = exec.Command(bin, "report", "--broken", "--file", snap, "-o", "json")
	start = time.Now()
	rss = peakRSS(cmd)
	d = time.Since(start)
	record("ktrace report --broken --file snapshot (CLI)", rate(n, d), fmt.Sprintf("%s wall; peak %.0f B/span (%d MiB)", d.Round(time.Millisecond), float64(rss)/float64(n), rss>>20))

	// 3. One huge trace against a small one scaled up.
	big := synth.SingleTrace(*single, 3)
	dBig := best(func() { run([]trace.Trace{big}, 0) })
	reps := *single / 1000
	// Distinct traces in distinct memory, as a store returns them (one
	// trace repeated would be read from cache after the first time).
	smalls := make([]trace.Trace, reps)
	for i := range smalls {
		smalls[i] = synth.SingleTrace(1000, 3+uint64(i))
		reID(&smalls[i], trace.TraceID{High: 1, Low: uint64(i)})
	}
	nBig, nSmall := len(big.Spans), 0
	for i := range smalls {
		nSmall += len(smalls[i].Spans)
	}
	dSmall := best(func() { run(smalls, 1) })
	perBig, perSmall := dBig.Seconds()/float64(nBig), dSmall.Seconds()/float64(nSmall)
	record(fmt.Sprintf("one %d-span trace", nBig), dBig.Round(time.Millisecond).String(),
		fmt.Sprintf("%.0f ns/span, vs %.0f ns/span for %d distinct traces of up to 1000 spans (%d spans, %s): ratio %.2f (1.0 = the same cost per span)",
			perBig*1e9, perSmall*1e9, reps, nSmall, dSmall.Round(time.Millisecond), perBig/perSmall))
	// Linear time: the cost per span of one trace as it grows tenfold.
	var per []string
	for size := 1000; size <= *single; size *= 10 {
		one := synth.SingleTrace(size, 3)
		d := best(func() { run([]trace.Trace{one}, 0) })
		per = append(per, fmt.Sprintf("%d spans %.0f ns", size, float64(d.Nanoseconds())/float64(size)))
	}
	record("cost per span of one trace as it grows", "", strings.Join(per, ", ")+" (flat = linear)")
	// Memory: what the analysis allocates per span, in process, and the
	// CLI's peak on a snapshot of the one trace (a trace is analysed whole,
	// so its spans are all held at once; a set of small traces streams).
	abig, asmall := allocated(func() { run([]trace.Trace{big}, 0) }),
		allocated(func() { run(smalls, 1) })
	bigSnap := filepath.Join(work, "single.ktrace")
	writeSnapshot(bigSnap, []trace.Trace{big})
	rssBig := peakRSS(exec.Command(bin, "report", "--broken", "--file", bigSnap, "-o", "json"))
	record(fmt.Sprintf("memory of one %d-span trace", nBig), fmt.Sprintf("%.0f B/span", float64(rssBig)/float64(nBig)),
		fmt.Sprintf("peak resident, ktrace report --broken --file (%d MiB); the analysis allocates %.0f B/span against %.0f B/span for the small traces",
			rssBig>>20, float64(abig)/float64(nBig), float64(asmall)/float64(nSmall)))

	if *withJaeger {
		jaegerRuns(ctx, work, ts, n, len(g.Edges), *memory, *badger, bin)
	}

	if *withStream {
		streamSet(ctx, work, bin, *streamSpans, *perTrace, *linkShare)
	}
	table()
}

// buildKtrace builds the CLI into work, in ktrace's own module (bench/run
// starts in bench/), with its own go.sum, as users build it.
func buildKtrace(work string) string {
	bin := filepath.Join(work, "ktrace")
	build := exec.Command("go", "build", "-o", bin, "./cmd/ktrace")
	build.Dir = ".."
	build.Stderr = os.Stderr
	check(build.Run())
	return bin
}

// streamSet measures the stream runs on a set of their own.
func streamSet(ctx context.Context, work, bin string, spans, perTrace int, linkShare float64) {
	cfg := synth.Standard(spans)
	cfg.Traces, cfg.SpansPerTrace, cfg.LinkShare = spans/perTrace, perTrace, linkShare
	streamRuns(ctx, work, bin, synth.Generate(cfg), 300)
}

// table prints the rows recorded.
func table() {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "MEASURE\tFIGURE\tNOTE\n")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.what, r.figure, r.note)
	}
	tw.Flush()
	fmt.Printf("\nmachine: %s/%s, %d CPUs, %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
}

// compareEdges says what Jaeger's dependencies and ktrace's graph each
// find: Jaeger counts service pairs from parent spans only; ktrace also has
// topics, and hops found through span links or by stitching, which a
// parent-only count cannot see.
func compareEdges(deps []jaeger.Dependency, g *graph.Graph) string {
	self := 0
	for _, d := range deps {
		if d.Parent == d.Child {
			self++
		}
	}
	kinds := map[graph.EdgeKind]int{}
	hops := map[graph.Relation]int{}
	for _, e := range g.Edges {
		kinds[e.Kind]++
		if e.Kind == graph.EdgeConsume {
			hops[e.Relation] += e.Count
		}
	}
	return fmt.Sprintf("Jaeger: %d service pairs, %d of them self-loops, no topics; ktrace: %d call, %d produce, %d consume edges; Kafka hops by parent %d, by span link %d, by stitching %d (the last two unseen by Jaeger)",
		len(deps), self, kinds[graph.EdgeCall], kinds[graph.EdgeProduce], kinds[graph.EdgeConsume], hops[graph.RelParent], hops[graph.RelLink], hops[graph.RelStitched])
}

// reID gives t, its spans and their references within it the trace ID id.
func reID(t *trace.Trace, id trace.TraceID) {
	old := t.ID
	t.ID = id
	for j := range t.Spans {
		s := &t.Spans[j]
		s.TraceID = id
		for k := range s.Refs {
			if s.Refs[k].TraceID == old {
				s.Refs[k].TraceID = id
			}
		}
	}
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// best1 is one run of f after a collection.
func best1(f func()) time.Duration {
	runtime.GC()
	start := time.Now()
	f()
	return time.Since(start)
}

// best runs f three times after a collection each and returns the fastest
// run: noise only ever adds time.
func best(f func()) time.Duration {
	var min time.Duration
	for i := 0; i < 3; i++ {
		runtime.GC()
		start := time.Now()
		f()
		d := time.Since(start)
		if i == 0 || d < min {
			min = d
		}
	}
	return min
}

func writeSnapshot(path string, ts []trace.Trace) {
	af, err := file.CreateAtomic(path, true)
	check(err)
	check(file.WriteSnapshot(af, "bench", ts))
	check(af.Commit())
}

func jaegerRuns(ctx context.Context, work string, ts []trace.Trace, n, ktraceEdges int, memory, badger bool, cli string) {
	bin, err := sj.FindBinary("")
	check(err)
	var stores []bool
	if memory {
		stores = append(stores, false)
	}
	if badger {
		stores = append(stores, true)
	}
	for _, persist := range stores {
		name := "memory"
		if persist {
			name = "badger"
		}
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		p, err := sj.Start(sctx, sj.Options{Bin: bin, Dir: filepath.Join(work, "jaeger-"+name), Persist: persist, MaxTraces: len(ts) + 1000})
		cancel()
		check(err)
		started(p.Stop)
		fmt.Fprintf(os.Stderr, "loading %d spans into Jaeger (%s)...\n", n, name)
		t0 := time.Now()
		check(load(ctx, p.OTLPAddr(), ts, os.Stderr))
		c, err := jaeger.Dial(jaeger.Config{Addr: p.QueryAddr(), Timeout: 5 * time.Minute, MaxRecvBytes: 512 << 20})
		check(err)
		first, last := ts[0].Spans[0].Start, ts[len(ts)-1].Spans[0].Start
		q := jaeger.Query{Start: first.Add(-time.Hour), End: last.Add(time.Hour), PageSize: pageSize, Concurrency: 4}
		// Wait until Jaeger holds every span.
		for {
			qd := q
			qd.Discard = true
			st, err := c.Find(ctx, qd, &trace.Set{}, nil)
			check(err)
			if st.Spans >= n || time.Since(t0) > 10*time.Minute {
				break
			}
			time.Sleep(2 * time.Second)
		}
		record("load into Jaeger ("+name+") over OTLP", rate(n, time.Since(t0)), "until every span is queryable")

		qd := q
		qd.Discard = true
		start := time.Now()
		st, err := c.Find(ctx, qd, &trace.Set{}, nil)
		check(err)
		drain := time.Since(start)
		// What ktrace graph --jaeger does: the same search, each trace
		// folded into the graph as it arrives.
		start = time.Now()
		gj, _, err := engine.Run(ctx, jaegerTraces(ctx, c, q, nil, nil), engine.Options{})
		check(err)
		full := time.Since(start)
		how := "all services at once"
		if st.PerService {
			how = "service by service"
		}
		record("bare drain of the FindTraces windows ("+name+")", drain.Round(time.Millisecond).String(), fmt.Sprintf("%d spans read in %d calls of depth %d, %s", st.Spans, st.Calls, pageSize, how))
		record("ktrace graph --jaeger ("+name+"), in process", full.Round(time.Millisecond).String(), fmt.Sprintf("ratio to the drain %.2f (target ≤ 1.25); %d edges", full.Seconds()/drain.Seconds(), len(gj.Edges)))
		if cli != "" {
			cmd := exec.Command(cli, "graph", "-o", "json", "--jaeger", p.QueryAddr(), "--since", q.Start.Format(time.RFC3339),
				"--until", q.End.Format(time.RFC3339), "--page-size", strconv.Itoa(pageSize), "--jaeger-max-recv", "512", "--timeout", "5m")
			start = time.Now()
			rss := peakRSS(cmd)
			record("ktrace graph --jaeger ("+name+"), CLI", time.Since(start).Round(time.Millisecond).String(),
				fmt.Sprintf("peak %.0f B/span (%d MiB): traces stream into the graph", float64(rss)/float64(n), rss>>20))
		}

		var deps []jaeger.Dependency
		dd := best(func() {
			var err error
			deps, err = c.Dependencies(ctx, q.Start, q.End)
			check(err)
		})
		self, calls := 0, uint64(0)
		for _, l := range deps {
			if l.Parent == l.Child {
				self++
			}
			calls += l.CallCount
		}
		record("edges: Jaeger vs ktrace ("+name+")", "", compareEdges(deps, gj))
		record("Jaeger GetDependencies ("+name+")", dd.Round(time.Millisecond).String(),
			fmt.Sprintf("ktrace/Jaeger time ratio %.2f; Jaeger finds %d links (%d self-loops, no topics, no span links) from %d parent→child pairs; ktrace %d edges from %d spans",
				full.Seconds()/dd.Seconds(), len(deps), self, calls, ktraceEdges, n))
		if persist {
			// Badger's GetDependencies runs one unfiltered FindTraces with its
			// default limit, 100 traces, and counts pairs in those. ktrace on
			// the same data: one call of depth 100 over the same window (the
			// narrowest split is the whole window, so it is not split).
			one := jaeger.Query{Start: q.Start, End: q.End, PageSize: 100, MinWindow: q.End.Sub(q.Start), Concurrency: 1}
			dk, g100, st100, _ := jaegerGraph(ctx, c, one)
			spans100 := st100.Spans
			calls100 := 0
			for _, e := range g100.Edges {
				if e.Kind == graph.EdgeCall && e.Relation == graph.RelParent {
					calls100 += e.Count
				}
			}
			record("ktrace graph on the traces Badger's GetDependencies reads", dk.Round(time.Millisecond).String(),
				fmt.Sprintf("%d traces, %d spans in one FindTraces call: %.2f× GetDependencies' time (target < 1); %d edges, %d cross-service calls",
					g100.Traces, spans100, dk.Seconds()/dd.Seconds(), len(g100.Edges), calls100))
			recentRuns(ctx, c, ts)
		}
		c.Close()
		p.Stop()
	}
}

// pageSize is the FindTraces depth per call of the Jaeger runs.
var pageSize int

var (
	runMu   sync.Mutex
	running []func()
)

// started notes how to stop a process this run started (a Jaeger, a
// member), should the run be interrupted or fail, and returns that stop,
// which may then be called again.
func started(stop func()) func() {
	stop = sync.OnceFunc(stop)
	runMu.Lock()
	running = append(running, stop)
	runMu.Unlock()
	return stop
}

func stopAll() {
	runMu.Lock()
	defer runMu.Unlock()
	for _, stop := range running {
		stop()
	}
	running = nil
}

// stopOnSignal stops the processes this run started when it is
// interrupted, so nothing outlives it.
func stopOnSignal() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		stopAll()
		os.Exit(1)
	}()
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		stopAll()
		os.Exit(1)
	}
}

// peakRSS runs cmd and returns its peak resident set in bytes, read from
// /proc/PID/status (VmHWM) while it runs. (rusage's maxrss is no good here:
// a child forked from this big process inherits its high-water mark.)
func peakRSS(cmd *exec.Cmd) int64 {
	check(cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peak int64
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	for {
		if b, err := os.ReadFile(status); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					var kb int64
					fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
					if kb*1024 > peak {
						peak = kb * 1024
					}
				}
			}
		}
		select {
		case err := <-done:
			check(err)
			return peak
		case <-time.After(10 * time.Millisecond):
		}
	}
}

var floorSink atomic.Int64

// floor reads, on every CPU, each span's refs, attribute names and values,
// operation and resource, and does nothing with them.
func floor(ts []trace.Trace) {
	var wg sync.WaitGroup
	w := runtime.GOMAXPROCS(0)
	for k := 0; k < w; k++ {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			n := 0
			for i := lo; i < hi; i++ {
				for j := range ts[i].Spans {
					s := &ts[i].Spans[j]
					for _, r := range s.Refs {
						n += int(r.SpanID)
					}
					for _, a := range s.Attributes {
						n += len(a.Key) + len(a.Value)
						if a.Value != "" {
							n += int(a.Value[0])
						}
					}
					if s.Operation != "" {
						n += int(s.Operation[0])
					}
					if s.Resource != nil {
						n += len(s.Resource.Service)
					}
				}
			}
			floorSink.Add(int64(n))
		}(len(ts)*k/w, len(ts)*(k+1)/w)
	}
	wg.Wait()
}

// run builds the graph and finds the breaks of ts as the commands do, on
// workers goroutines (zero: one per CPU).
func run(ts []trace.Trace, workers int) (*graph.Graph, analyze.Report) {
	g, rep, err := engine.Run(context.Background(), engine.Slice(ts), engine.Options{Workers: workers})
	if err != nil {
		panic(err) // a slice yields no errors
	}
	return g, rep
}
