package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/fixtures"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/render"
	"github.com/ktrace-dev/ktrace/source"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/source/jaeger"
	"github.com/ktrace-dev/ktrace/stream"
	"github.com/ktrace-dev/ktrace/trace"
)

// SourceOptions are the flags that choose where traces come from.
type SourceOptions struct {
	Jaeger     string
	Kafka      string // brokers of a ktrace stream's results
	Group      string // its consumer group
	Files      []string
	Fixtures   []string
	Services   []string
	ByService  bool
	Operation  string
	Tags       []string
	Since      string
	Until      string
	Lookback   time.Duration
	Limit      int
	PageSize   int
	Parallel   int
	Timeout    time.Duration
	MaxRecvMiB int
	JaegerConn
	MaxRecord int
	// KafkaConn says how to reach --kafka; validate makes kafka of it.
	KafkaConn KafkaOptions
	kafka     stream.Kafka

	now  func() time.Time
	dial func(jaeger.Config) (jaegerClient, error) // nil: jaeger.Dial
	// changed says whether a flag was given (nil: no flags, as for
	// diff's sides).
	changed func(name string) bool
}

func (o *SourceOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	o.changed = func(name string) bool { return f.Changed(name) }
	f.StringVar(&o.Jaeger, "jaeger", "", "Jaeger query gRPC `host:port` (Jaeger's default port is 16685)")
	f.StringVar(&o.Kafka, "kafka", "", "read what `ktrace stream` published: Kafka brokers `host:port,...` (with --group)")
	f.StringVar(&o.Group, "group", "", "--kafka: the stream's consumer group `name`")
	f.StringArrayVar(&o.Files, "file", nil, "read traces from a Jaeger JSON, OTLP JSON or snapshot `file` (repeatable, - for stdin)")
	f.StringArrayVar(&o.Fixtures, "fixture", nil, "read a bundled trace set by `name` (repeatable; see README)")
	f.StringArrayVar(&o.Services, "service", nil, "Jaeger: search this `service` (repeatable; default every service)")
	f.BoolVar(&o.ByService, "by-service", false, "Jaeger: ask each service in turn, not all at once (faster for a short window on a Badger store with a long history)")
	f.StringVar(&o.Operation, "operation", "", "Jaeger: only traces with this operation")
	f.StringArrayVar(&o.Tags, "tag", nil, "Jaeger: only traces with this tag, `k=v` (repeatable)")
	f.StringVar(&o.Since, "since", "", "Jaeger and --kafka: window start, an RFC 3339 `time` or a duration back from --until such as 15m (default --lookback)")
	f.StringVar(&o.Until, "until", "", "Jaeger: window end, RFC 3339 `time` (default now)")
	f.DurationVar(&o.Lookback, "lookback", time.Hour, "Jaeger: window length when --since is not given")
	f.IntVar(&o.Limit, "limit", 0, "Jaeger: stop after this many traces (0: no limit)")
	f.IntVar(&o.PageSize, "page-size", 500, "Jaeger: traces per FindTraces call; full pages are split")
	f.IntVar(&o.Parallel, "parallel", 4, "Jaeger: calls in flight")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Second, "Jaeger: deadline for each call")
	f.IntVar(&o.MaxRecvMiB, "jaeger-max-recv", 64, "Jaeger: gRPC receive limit in `MiB`")
	o.JaegerConn.addFlags(f)
	f.IntVar(&o.MaxRecord, "max-record-mib", file.DefaultMaxRecord>>20, "files: the longest snapshot record to accept, in `MiB`")
	o.KafkaConn.addFlags(f)
}

func (o *SourceOptions) hasSource() bool {
	return o.Jaeger != "" || o.Kafka != "" || len(o.Files) > 0 || len(o.Fixtures) > 0
}

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// validate checks flag values before any work starts.
func (o *SourceOptions) validate(ios *IOStreams) error {
	if !o.hasSource() {
		return usagef("no trace source: give --jaeger host:port, --file path, --fixture name or --kafka host:port --group name")
	}
	if o.Kafka != "" {
		groupErr := stream.CheckGroup(o.Group)
		switch {
		case o.Group == "":
			return usagef("--kafka needs --group, the consumer group of the ktrace stream to read")
		case groupErr != nil:
			return usagef("--group: %v", groupErr)
		case o.Jaeger != "" || len(o.Files)+len(o.Fixtures) > 0:
			return usagef("--kafka reads a stream's results alone: give no --jaeger, --file or --fixture with it")
		}
		conn, err := o.KafkaConn.connect(ios, o.Kafka)
		if err != nil {
			return err
		}
		o.kafka = conn
	} else if o.Group != "" {
		return usagef("--group goes with --kafka")
	}
	if err := o.noStrayFlags(); err != nil {
		return err
	}
	if o.Jaeger != "" {
		addr, err := jaegerAddr(o.Jaeger)
		if err != nil {
			return err
		}
		o.Jaeger = addr
	}
	if err := o.JaegerConn.check(ios); err != nil {
		return err
	}
	for _, t := range o.Tags {
		if k, _, ok := strings.Cut(t, "="); !ok || k == "" {
			return usagef("--tag %q: want key=value", t)
		}
	}
	if o.Lookback <= 0 {
		return usagef("--lookback must be positive")
	}
	if o.Timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	if o.MaxRecord <= 0 || o.MaxRecord > 1<<14 {
		return usagef("--max-record-mib %d: want 1 to 16384", o.MaxRecord)
	}
	file.MaxRecord = o.MaxRecord << 20
	if o.PageSize <= 0 || o.Parallel <= 0 || o.MaxRecvMiB <= 0 || o.Limit < 0 {
		return usagef("--page-size, --parallel and --jaeger-max-recv must be positive, --limit not negative")
	}
	_, _, err := o.window()
	return err
}

// Flags that only one kind of source reads.
var (
	jaegerOnlyFlags = append([]string{"service", "by-service", "operation", "tag", "limit", "page-size", "parallel", "timeout",
		"jaeger-max-recv"}, jaegerConnFlags...)
	windowFlags = []string{"since", "until", "lookback"} // Jaeger's and --kafka's
)

// noStrayFlags refuses a flag that the sources given would not read, so
// that nothing the user asked for is silently ignored.
func (o *SourceOptions) noStrayFlags() error {
	if o.changed == nil {
		return nil
	}
	for _, n := range kafkaFlags {
		if o.Kafka == "" && o.changed(n) {
			return usagef("--%s applies to --kafka only", n)
		}
	}
	if o.Jaeger != "" {
		return nil
	}
	names, reader := jaegerOnlyFlags, "--jaeger"
	if o.Kafka == "" {
		names, reader = append(slices.Clone(names), windowFlags...), "--jaeger and --kafka"
	}
	for _, n := range names {
		if o.changed(n) {
			return usagef("--%s applies to %s only: it would have no effect on %s", n, reader, o.describeKind())
		}
	}
	if o.changed("max-record-mib") && len(o.Files)+len(o.Fixtures) == 0 {
		return usagef("--max-record-mib applies to --file and --fixture only")
	}
	return nil
}

// describeKind names the kind of source given, for messages.
func (o *SourceOptions) describeKind() string {
	if o.Kafka != "" {
		return "--kafka"
	}
	return "--file and --fixture"
}

func (o *SourceOptions) window() (time.Time, time.Time, error) {
	now := time.Now
	if o.now != nil {
		now = o.now
	}
	end := now()
	if o.Until != "" {
		t, err := time.Parse(time.RFC3339, o.Until)
		if err != nil {
			return time.Time{}, time.Time{}, usagef("--until %q: want an RFC 3339 time like 2026-01-02T15:04:05Z", o.Until)
		}
		end = t
	}
	start := end.Add(-o.Lookback)
	if o.Since != "" {
		if d, err := time.ParseDuration(o.Since); err == nil && d > 0 {
			start = end.Add(-d)
		} else if t, err := time.Parse(time.RFC3339, o.Since); err == nil {
			start = t
		} else {
			return time.Time{}, time.Time{}, usagef("--since %q: want an RFC 3339 time like 2026-01-02T15:04:05Z, or a duration such as 15m", o.Since)
		}
	}
	if !end.After(start) {
		return time.Time{}, time.Time{}, usagef("--since must be before --until")
	}
	return start, end, nil
}

// load reads every trace the flags name into one set, reporting progress
// and warnings on stderr.
func (o *SourceOptions) load(ctx context.Context, ios *IOStreams) (*trace.Set, error) {
	if o.Kafka != "" {
		return nil, usagef("this needs the traces themselves; --kafka gives a stream's merged graph and breaks (graph, report, spof, docs, diff, and check without --spec read it)")
	}
	set := &trace.Set{}
	for t, err := range o.inputs(ios) {
		if err != nil {
			return nil, err
		}
		if err := set.Add(*t); err != nil {
			return nil, err
		}
	}
	if o.Jaeger != "" {
		// Find merges the copies of a trace read from several windows
		// or services.
		err := o.searchJaeger(ctx, ios, func(c jaegerClient, q jaeger.Query, progress func(jaeger.Stats)) (jaeger.Stats, error) {
			return c.Find(ctx, q, set, progress)
		})
		if err != nil {
			return nil, err
		}
	}
	if set.Len() == 0 {
		fmt.Fprintln(ios.ErrOut, "ktrace: warning: no traces found")
	}
	return set, nil
}

// progress writes a self-overwriting status line on a terminal and a single
// closing line otherwise.
type progress struct {
	ios  *IOStreams
	last time.Time
	used bool
}

func newProgress(ios *IOStreams) *progress { return &progress{ios: ios} }

func (p *progress) update(format string, args ...any) {
	if !p.ios.ErrTTY || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.used = true
	fmt.Fprintf(p.ios.ErrOut, "\r\033[K"+format, args...)
}

// clear removes the status line, if one was drawn.
func (p *progress) clear() {
	if p.used {
		fmt.Fprint(p.ios.ErrOut, "\r\033[K")
		p.used = false
	}
}

func (p *progress) done(format string, args ...any) {
	p.clear()
	fmt.Fprintf(p.ios.ErrOut, format+"\n", args...)
}

// inputs yields every trace of the --fixture and --file inputs, in that
// order, as it is read. A trace ID may come more than once (load merges
// the parts).
func (o *SourceOptions) inputs(ios *IOStreams) source.Traces {
	return func(yield func(*trace.Trace, error) bool) {
		var res trace.Resources
		for _, name := range o.Fixtures {
			r, err := fixtures.Open(name)
			if err != nil {
				yield(nil, usagef("--fixture %s: %v", name, err))
				return
			}
			more := pass(file.Traces(r, "fixture "+name, &res), yield)
			r.Close()
			if !more {
				return
			}
		}
		for _, path := range o.Files {
			if !pass(readFile(ios, path, &res), yield) {
				return
			}
		}
	}
}

// pass yields what seq yields, and reports whether to go on: not once
// yield says stop or seq has yielded an error.
func pass(seq source.Traces, yield func(*trace.Trace, error) bool) bool {
	for t, err := range seq {
		if !yield(t, err) || err != nil {
			return false
		}
	}
	return true
}

// readFile yields the traces of one file, with progress on stderr: a
// running count on a terminal, and a closing line when the read took long
// enough to wonder.
func readFile(ios *IOStreams, path string, res *trace.Resources) source.Traces {
	return func(yield func(*trace.Trace, error) bool) {
		p := newProgress(ios)
		start := time.Now()
		traces, spans := 0, 0
		for t, err := range file.FileTraces(path, ios.In, res) {
			if err != nil {
				p.clear()
				yield(nil, err)
				return
			}
			traces++
			spans += len(t.Spans)
			p.update("reading %s: %d traces, %d spans", path, traces, spans)
			if !yield(t, nil) {
				p.clear()
				return
			}
		}
		if time.Since(start) < 2*time.Second {
			p.clear()
			return
		}
		p.done("read %s (%s) from %s in %s", render.N(traces, "trace"), render.N(spans, "span"), path, time.Since(start).Round(100*time.Millisecond))
	}
}

// describe says where the traces came from, for a snapshot's header. It
// never includes the token.
func (o *SourceOptions) describe() string {
	var parts []string
	if o.Jaeger != "" {
		start, end, _ := o.window()
		parts = append(parts, fmt.Sprintf("jaeger %s %s..%s", o.Jaeger, start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339)))
	}
	for _, f := range o.Files {
		parts = append(parts, "file "+f)
	}
	for _, f := range o.Fixtures {
		parts = append(parts, "fixture "+f)
	}
	if o.Kafka != "" {
		parts = append(parts, "kafka "+o.Kafka+" group "+o.Group)
	}
	return strings.Join(parts, "; ")
}

// errNotStreamed says a source cannot be streamed: it is several files,
// or Jaeger and files, or a trace ID repeats in a file (its parts must be
// merged first). The set is then loaded whole.
var errNotStreamed = errors.New("not streamed")

// stream yields each trace of Jaeger, or of a single file or fixture, as
// it is read, keeping none, so a command's memory does not grow with the
// input. It yields errNotStreamed (at once, or at a repeated trace ID)
// when the source must be loaded whole instead.
func (o *SourceOptions) stream(ctx context.Context, ios *IOStreams) source.Traces {
	return func(yield func(*trace.Trace, error) bool) {
		var traces source.Traces
		switch {
		case o.Jaeger != "" && len(o.Files)+len(o.Fixtures) == 0:
			traces = o.jaegerTraces(ctx, ios)
		case o.Jaeger == "" && len(o.Files)+len(o.Fixtures) == 1 && (len(o.Files) == 0 || o.Files[0] != "-"):
			traces = o.inputs(ios)
		default:
			yield(nil, errNotStreamed)
			return
		}
		seen := map[trace.TraceID]struct{}{}
		for t, err := range traces {
			if err == nil {
				if _, dup := seen[t.ID]; dup {
					yield(nil, errNotStreamed)
					return
				}
				seen[t.ID] = struct{}{}
			}
			if !yield(t, err) || err != nil {
				return
			}
		}
		if len(seen) == 0 {
			fmt.Fprintln(ios.ErrOut, "ktrace: warning: no traces found")
		}
	}
}

// buildGraph builds the graph of the source, streaming when it can.
func (o *SourceOptions) buildGraph(ctx context.Context, ios *IOStreams) (*graph.Graph, error) {
	g, _, err := o.analyzeSource(ctx, ios, 0, 0)
	return g, err
}

// analyzeSource builds the graph and finds the breaks (clock skew beyond
// skew), streaming when it can. From Jaeger with settle > 0 it reads
// twice, settle apart, keeping only each trace's span count from the first
// read; traces that changed (or are new) are incomplete: analysed for the
// graph, left out of the breaks.
func (o *SourceOptions) analyzeSource(ctx context.Context, ios *IOStreams, skew, settle time.Duration) (*graph.Graph, analyze.Report, error) {
	if o.Kafka != "" {
		if skew != 0 && skew != 10*time.Millisecond {
			fmt.Fprintf(ios.ErrOut, "ktrace: warning: --skew-tolerance %s does not apply to --kafka: the stream judged clock skew with its own 10ms\n", skew)
		}
		return o.readKafka(ctx, ios)
	}
	opts := engine.Options{SkewTolerance: skew}
	if o.Jaeger != "" && len(o.Files)+len(o.Fixtures) == 0 && settle > 0 {
		before := spanCounts{}
		for t, err := range o.jaegerTraces(ctx, ios) {
			if err != nil {
				return nil, analyze.Report{}, err
			}
			before[t.ID] = len(t.Spans)
		}
		if err := wait(ctx, ios, settle); err != nil {
			return nil, analyze.Report{}, err
		}
		opts.Incomplete = before.changed
	}
	g, rep, err := engine.Run(ctx, o.stream(ctx, ios), opts)
	if !errors.Is(err, errNotStreamed) {
		return g, rep, err
	}
	set, incomplete, err := loadSettled(ctx, ios, o, settle)
	if err != nil {
		return nil, analyze.Report{}, err
	}
	opts.Incomplete = func(t *trace.Trace) bool { return incomplete[t.ID] }
	return engine.Run(ctx, engine.Slice(set.Traces()), opts)
}

// wait sleeps for settle, saying so on stderr, unless ctx ends first.
func wait(ctx context.Context, ios *IOStreams, settle time.Duration) error {
	fmt.Fprintf(ios.ErrOut, "reading again in %s to find traces still arriving...\n", settle)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(settle):
		return nil
	}
}

// loadStable reads the source again and again, poll apart, until the span
// count is unchanged (and not zero) for stablePolls reads in a row, or the
// deadline passes; settled says which. Each read is reported on stderr.
func (o *SourceOptions) loadStable(ctx context.Context, ios *IOStreams, stablePolls int, poll time.Duration, deadline time.Time) (set *trace.Set, settled bool, err error) {
	quiet := &IOStreams{In: ios.In, Out: ios.Out, ErrOut: io.Discard, Getenv: ios.Getenv}
	last, stable := -1, 0
	for reads := 1; ; reads++ {
		if set, err = o.load(ctx, quiet); err != nil {
			return nil, false, err
		}
		n := set.SpanCount()
		if n > 0 && n == last {
			stable++
		} else {
			stable = 0
		}
		last = n
		fmt.Fprintf(ios.ErrOut, "read %d: %d traces, %d spans (stable for %d of %d reads)\n", reads, set.Len(), n, stable, stablePolls)
		if stable >= stablePolls {
			return set, true, nil
		}
		if time.Now().Add(poll).After(deadline) {
			return set, false, nil
		}
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// jaegerSource reads a whole Jaeger window with the default settings of
// the source flags.
func jaegerSource(addr, since, until string) SourceOptions {
	return SourceOptions{Jaeger: addr, Since: since, Until: until, Lookback: time.Hour, PageSize: 500, Parallel: 4,
		Timeout: 30 * time.Second, MaxRecvMiB: 64, MaxRecord: file.DefaultMaxRecord >> 20}
}

// spanCounts are traces' span counts from a first read, to tell at a
// second which traces were still arriving.
type spanCounts map[trace.TraceID]int

// changed reports whether t is new since the first read, or has another
// span count: it was still arriving.
func (c spanCounts) changed(t *trace.Trace) bool {
	n, ok := c[t.ID]
	return !ok || n != len(t.Spans)
}

// loadSettled loads traces; from Jaeger it reads again after settle and
// marks traces whose span count changed (or that are new) as incomplete,
// keeping the later read.
func loadSettled(ctx context.Context, ios *IOStreams, src *SourceOptions, settle time.Duration) (*trace.Set, map[trace.TraceID]bool, error) {
	set, err := src.load(ctx, ios)
	if err != nil || src.Jaeger == "" || settle == 0 {
		return set, nil, err
	}
	before := spanCounts{}
	for _, t := range set.Traces() {
		before[t.ID] = len(t.Spans)
	}
	if err := wait(ctx, ios, settle); err != nil {
		return nil, nil, err
	}
	again, err := src.load(ctx, ios)
	if err != nil {
		return nil, nil, err
	}
	incomplete := map[trace.TraceID]bool{}
	ts := again.Traces()
	for i := range ts {
		if before.changed(&ts[i]) {
			incomplete[ts[i].ID] = true
		}
	}
	return again, incomplete, nil
}
