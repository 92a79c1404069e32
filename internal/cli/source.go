package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/fixtures"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/render"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/source/jaeger"
	"github.com/ktrace-dev/ktrace/trace"
)

// SourceOptions are the flags that choose where traces come from.
type SourceOptions struct {
	Jaeger     string
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
	TLS        bool
	CA         string
	Cert       string
	Key        string
	ServerName string
	Token      string
	MaxRecord  int

	now func() time.Time
}

func (o *SourceOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.Jaeger, "jaeger", "", "Jaeger query gRPC `host:port` (Jaeger's default port is 16685)")
	f.StringArrayVar(&o.Files, "file", nil, "read traces from a Jaeger JSON, OTLP JSON or snapshot `file` (repeatable, - for stdin)")
	f.StringArrayVar(&o.Fixtures, "fixture", nil, "read a bundled trace set by `name` (repeatable; see README)")
	f.StringArrayVar(&o.Services, "service", nil, "Jaeger: search this `service` (repeatable; default every service)")
	f.BoolVar(&o.ByService, "by-service", false, "Jaeger: ask each service in turn, not all at once (faster for a short window on a Badger store with a long history)")
	f.StringVar(&o.Operation, "operation", "", "Jaeger: only traces with this operation")
	f.StringArrayVar(&o.Tags, "tag", nil, "Jaeger: only traces with this tag, `k=v` (repeatable)")
	f.StringVar(&o.Since, "since", "", "Jaeger: window start, RFC 3339 `time` (default now minus --lookback)")
	f.StringVar(&o.Until, "until", "", "Jaeger: window end, RFC 3339 `time` (default now)")
	f.DurationVar(&o.Lookback, "lookback", time.Hour, "Jaeger: window length when --since is not given")
	f.IntVar(&o.Limit, "limit", 0, "Jaeger: stop after this many traces (0: no limit)")
	f.IntVar(&o.PageSize, "page-size", 500, "Jaeger: traces per FindTraces call; full pages are split")
	f.IntVar(&o.Parallel, "parallel", 4, "Jaeger: calls in flight")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Second, "Jaeger: deadline for each call")
	f.IntVar(&o.MaxRecvMiB, "jaeger-max-recv", 64, "Jaeger: gRPC receive limit in `MiB`")
	f.BoolVar(&o.TLS, "jaeger-tls", false, "Jaeger: use TLS")
	f.StringVar(&o.CA, "jaeger-ca", "", "Jaeger: CA certificate `file` (PEM) for TLS")
	f.StringVar(&o.Cert, "jaeger-cert", "", "Jaeger: client certificate `file` (PEM) for mutual TLS")
	f.StringVar(&o.Key, "jaeger-key", "", "Jaeger: client key `file` (PEM) for mutual TLS")
	f.StringVar(&o.ServerName, "jaeger-server-name", "", "Jaeger: TLS server name override")
	f.StringVar(&o.Token, "jaeger-token", "", "Jaeger: bearer token (or set KTRACE_JAEGER_TOKEN); never printed")
	f.IntVar(&o.MaxRecord, "max-record-mib", file.DefaultMaxRecord>>20, "files: the longest snapshot record to accept, in `MiB`")
}

func (o *SourceOptions) hasSource() bool {
	return o.Jaeger != "" || len(o.Files) > 0 || len(o.Fixtures) > 0
}

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// jaegerAddr gives an address without a port Jaeger's query gRPC port,
// 16685, rather than let gRPC dial 443.
func jaegerAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	switch {
	case err == nil && port != "":
		return addr, nil
	case err == nil: // "host:"
		addr = host
	}
	host = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
	if host == "" || strings.ContainsAny(host, "/ \t") {
		return "", usagef("--jaeger %q: want host:port (Jaeger's query gRPC port is 16685)", addr)
	}
	return net.JoinHostPort(host, "16685"), nil
}

// validate checks flag values before any work starts.
func (o *SourceOptions) validate(ios *IOStreams) error {
	if !o.hasSource() {
		return usagef("no trace source: give --jaeger host:port, --file path or --fixture name")
	}
	if o.Jaeger != "" {
		addr, err := jaegerAddr(o.Jaeger)
		if err != nil {
			return err
		}
		o.Jaeger = addr
	}
	if o.Token == "" && ios.Getenv != nil {
		o.Token = ios.Getenv("KTRACE_JAEGER_TOKEN")
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
	if (o.Cert == "") != (o.Key == "") {
		return usagef("--jaeger-cert and --jaeger-key go together")
	}
	if !o.TLS && (o.CA != "" || o.Cert != "" || o.ServerName != "") {
		return usagef("--jaeger-ca, --jaeger-cert and --jaeger-server-name need --jaeger-tls")
	}
	_, _, err := o.window()
	return err
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
		t, err := time.Parse(time.RFC3339, o.Since)
		if err != nil {
			return time.Time{}, time.Time{}, usagef("--since %q: want an RFC 3339 time like 2026-01-02T15:04:05Z", o.Since)
		}
		start = t
	}
	if !end.After(start) {
		return time.Time{}, time.Time{}, usagef("--since must be before --until")
	}
	return start, end, nil
}

func (o *SourceOptions) jaegerConfig() jaeger.Config {
	return jaeger.Config{Addr: o.Jaeger, Timeout: o.Timeout, MaxRecvBytes: o.MaxRecvMiB << 20, TLS: o.TLS,
		CAFile: o.CA, CertFile: o.Cert, KeyFile: o.Key, ServerName: o.ServerName, Token: o.Token}
}

// load reads every trace the flags name into one set, reporting progress
// and warnings on stderr.
func (o *SourceOptions) load(ctx context.Context, ios *IOStreams) (*trace.Set, error) {
	set := &trace.Set{}
	if err := o.readInputs(ios, set.Add); err != nil {
		return nil, err
	}
	if o.Jaeger != "" {
		if err := o.loadJaeger(ctx, ios, set); err != nil {
			return nil, err
		}
	}
	if set.Len() == 0 {
		fmt.Fprintln(ios.ErrOut, "ktrace: warning: no traces found")
	}
	return set, nil
}

func (o *SourceOptions) loadJaeger(ctx context.Context, ios *IOStreams, set *trace.Set) error {
	return o.searchJaeger(ctx, ios, func(c *jaeger.Client, q jaeger.Query, progress func(jaeger.Stats)) (jaeger.Stats, error) {
		return c.Find(ctx, q, set, progress)
	})
}

// eachJaeger hands each trace Jaeger has for the flags to each as it
// arrives, keeping none.
func (o *SourceOptions) eachJaeger(ctx context.Context, ios *IOStreams, each func(*trace.Trace)) error {
	return o.searchJaeger(ctx, ios, func(c *jaeger.Client, q jaeger.Query, progress func(jaeger.Stats)) (jaeger.Stats, error) {
		return c.FindEach(ctx, q, func(t *trace.Trace) error { each(t); return nil }, progress)
	})
}

// searchJaeger runs a search for the flags, with progress and warnings on
// stderr.
func (o *SourceOptions) searchJaeger(ctx context.Context, ios *IOStreams, search func(*jaeger.Client, jaeger.Query, func(jaeger.Stats)) (jaeger.Stats, error)) error {
	c, err := jaeger.Dial(o.jaegerConfig())
	if err != nil {
		return err
	}
	defer c.Close()
	start, end, _ := o.window()
	q := jaeger.Query{Services: o.Services, ByService: o.ByService, Operation: o.Operation, Start: start, End: end,
		PageSize: o.PageSize, Limit: o.Limit, Concurrency: o.Parallel}
	if len(o.Tags) > 0 {
		q.Tags = map[string]string{}
		for _, t := range o.Tags {
			k, v, _ := strings.Cut(t, "=")
			q.Tags[k] = v
		}
	}
	p := newProgress(ios)
	st, err := search(c, q, func(s jaeger.Stats) {
		p.update("fetching from %s: %d traces, %d spans, %d calls", o.Jaeger, s.Traces, s.Spans, s.Calls)
	})
	if err != nil {
		p.clear()
		return err
	}
	how := "all services at once"
	if st.PerService {
		how = "service by service"
	}
	p.done("fetched %s (%s) from %s in %s, %s", render.N(st.Traces, "trace"), render.N(st.Spans, "span"), o.Jaeger, render.N(st.Calls, "call"), how)
	if st.Truncated > 0 {
		fmt.Fprintf(ios.ErrOut, "ktrace: warning: %d time windows still returned a full page at the narrowest split; results may be truncated (raise --page-size)\n", st.Truncated)
	}
	if st.LimitReached {
		fmt.Fprintf(ios.ErrOut, "ktrace: warning: stopped at --limit %d traces; more match\n", o.Limit)
	}
	return nil
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

// readInputs hands every trace of the --fixture and --file inputs, in that
// order, to add.
func (o *SourceOptions) readInputs(ios *IOStreams, add func(trace.Trace) error) error {
	var res trace.Resources
	for _, name := range o.Fixtures {
		r, err := fixtures.Open(name)
		if err != nil {
			return usagef("--fixture %s: %v", name, err)
		}
		_, err = file.ReadEach(r, "fixture "+name, add, &res)
		r.Close()
		if err != nil {
			return err
		}
	}
	for _, path := range o.Files {
		if err := readFile(ios, path, add, &res); err != nil {
			return err
		}
	}
	return nil
}

// readFile reads one file with progress on stderr: a running count on a
// terminal, and a closing line when the read took long enough to wonder.
func readFile(ios *IOStreams, path string, add func(trace.Trace) error, res *trace.Resources) error {
	p := newProgress(ios)
	start := time.Now()
	traces, spans := 0, 0
	_, err := file.ReadFileEach(path, ios.In, func(t trace.Trace) error {
		traces++
		spans += len(t.Spans)
		p.update("reading %s: %d traces, %d spans", path, traces, spans)
		return add(t)
	}, res)
	if err != nil || time.Since(start) < 2*time.Second {
		p.clear()
		return err
	}
	p.done("read %s (%s) from %s in %s", render.N(traces, "trace"), render.N(spans, "span"), path, time.Since(start).Round(100*time.Millisecond))
	return nil
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
	return strings.Join(parts, "; ")
}

// streamTraces hands each trace of Jaeger, or of a single file or fixture,
// to add as it is read, keeping none, so a command's memory does not grow
// with the input. ok is false, with nothing read that matters, when the
// source is several files or Jaeger and files, or when a trace ID repeats
// in a file (its parts must be merged first): the caller then loads the set.
func (o *SourceOptions) streamTraces(ctx context.Context, ios *IOStreams, add func(*trace.Trace)) (ok bool, err error) {
	if o.Jaeger != "" {
		if len(o.Files)+len(o.Fixtures) > 0 {
			return false, nil
		}
		n := 0
		err := o.eachJaeger(ctx, ios, func(t *trace.Trace) { n++; add(t) })
		if err == nil && n == 0 {
			fmt.Fprintln(ios.ErrOut, "ktrace: warning: no traces found")
		}
		return err == nil, err
	}
	if len(o.Files)+len(o.Fixtures) != 1 || (len(o.Files) == 1 && o.Files[0] == "-") {
		return false, nil
	}
	seen := map[trace.TraceID]struct{}{}
	repeated := false
	err = o.readInputs(ios, func(t trace.Trace) error {
		if _, dup := seen[t.ID]; dup {
			repeated = true
			return fmt.Errorf("trace %s appears twice", t.ID)
		}
		seen[t.ID] = struct{}{}
		add(&t)
		return nil
	})
	if repeated {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if len(seen) == 0 {
		fmt.Fprintln(ios.ErrOut, "ktrace: warning: no traces found")
	}
	return true, nil
}

// buildGraph builds the graph of the source, streaming when it can.
func (o *SourceOptions) buildGraph(ctx context.Context, ios *IOStreams) (*graph.Graph, error) {
	b := graph.NewBuilder()
	ok, err := o.streamTraces(ctx, ios, b.Add)
	if err != nil || ok {
		return b.Graph(), err
	}
	set, err := o.load(ctx, ios)
	if err != nil {
		return nil, err
	}
	return graph.Build(set.Traces()), nil
}

// analyzeSource builds the graph and finds the breaks, streaming when it
// can. From Jaeger with settle > 0 it reads twice, settle apart, keeping
// only each trace's span count from the first read; traces that changed
// (or are new) are incomplete: analysed for the graph, left out of the
// breaks.
func (o *SourceOptions) analyzeSource(ctx context.Context, ios *IOStreams, opts analyze.Options, settle time.Duration) (*graph.Graph, analyze.Report, error) {
	var before spanCounts
	if o.Jaeger != "" && len(o.Files)+len(o.Fixtures) == 0 && settle > 0 {
		before = spanCounts{}
		if err := o.eachJaeger(ctx, ios, func(t *trace.Trace) { before[t.ID] = len(t.Spans) }); err != nil {
			return nil, analyze.Report{}, err
		}
		if err := wait(ctx, ios, settle); err != nil {
			return nil, analyze.Report{}, err
		}
		opts.Incomplete = map[trace.TraceID]bool{}
	}
	a := analyze.NewAnalyzer(opts)
	ok, err := o.streamTraces(ctx, ios, func(t *trace.Trace) {
		if before != nil && before.changed(t) {
			opts.Incomplete[t.ID] = true
		}
		a.Add(t)
	})
	if err != nil {
		return nil, analyze.Report{}, err
	}
	if ok {
		g, rep := a.Finish()
		return g, rep, nil
	}
	set, incomplete, err := loadSettled(ctx, ios, o, settle)
	if err != nil {
		return nil, analyze.Report{}, err
	}
	opts.Incomplete = incomplete
	g, rep := analyze.Run(set.Traces(), opts)
	return g, rep, nil
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
