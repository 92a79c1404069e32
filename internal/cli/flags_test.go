package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// parse runs a command's flag parsing and validation only: runF stands in
// for the work (as cli/cli's commands are tested).
func parse(t *testing.T, cmd *cobra.Command, args ...string) {
	t.Helper()
	cmd.SetArgs(args)
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("%s %v: %v", cmd.Name(), args, err)
	}
}

func quietIO() *IOStreams {
	return &IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}, Getenv: func(k string) string {
		if k == "KTRACE_JAEGER_TOKEN" {
			return "from-env"
		}
		return ""
	}}
}

// Flags reach each command's options as given, defaults where not.
func TestFlagsReachOptions(t *testing.T) {
	var g *GraphOptions
	parse(t, NewCmdGraph(quietIO(), func(_ context.Context, o *GraphOptions) error { g = o; return nil }),
		"--jaeger", "jaeger.internal", "-o", "html", "--ui-url", "http://ui", "--lookback", "15m", "--service", "a", "--service", "b")
	if g.Output != "html" || g.UIURL != "http://ui" || g.Source.Jaeger != "jaeger.internal:16685" || g.Source.Lookback != 15*time.Minute ||
		strings.Join(g.Source.Services, ",") != "a,b" || g.Source.Token != "from-env" || g.Source.Parallel != 4 {
		t.Errorf("graph: %+v", *g)
	}
	var r *ReportOptions
	parse(t, NewCmdReport(quietIO(), func(_ context.Context, o *ReportOptions) error { r = o; return nil }),
		"--broken", "--fixture", "kafka-e2e", "--fail", "-o", "markdown", "--skew-tolerance", "5ms")
	if !r.Broken || !r.Fail || r.Output != "markdown" || r.Skew != 5*time.Millisecond || strings.Join(r.Source.Fixtures, ",") != "kafka-e2e" {
		t.Errorf("report: %+v", *r)
	}
	var c *CheckOptions
	parse(t, NewCmdCheck(quietIO(), func(_ context.Context, o *CheckOptions) error { c = o; return nil }),
		"--fixture", "kafka-e2e", "--min-continuity", "0.5", "--min-traces", "3", "--github", "--junit", "j.xml")
	if c.MinContinuity != 0.5 || c.MinTraces != 3 || !c.GitHub || c.JUnit != "j.xml" || c.Wait != 60*time.Second {
		t.Errorf("check: %+v", *c)
	}
	var s *SPOFOptions
	parse(t, NewCmdSPOF(quietIO(), func(_ context.Context, o *SPOFOptions) error { s = o; return nil }),
		"--fixture", "kafka-e2e", "--entry", "web-client", "--fail-on", "articulation,dominator")
	if strings.Join(s.Entries, ",") != "web-client" || s.FailOn != "articulation,dominator" {
		t.Errorf("spof: %+v", *s)
	}
	var p *PullOptions
	parse(t, NewCmdPull(quietIO(), func(_ context.Context, o *PullOptions) error { p = o; return nil }),
		"--fixture", "kafka-e2e", "--force", "out.ktrace")
	if p.Path != "out.ktrace" || !p.Force {
		t.Errorf("pull: %+v", *p)
	}
	var sv *ServeOptions
	parse(t, NewCmdServe(quietIO(), func(_ context.Context, o *ServeOptions) error { sv = o; return nil }),
		"--fixture", "kafka-e2e", "--interval", "5s")
	if sv.Listen != "127.0.0.1:16690" || sv.Interval != 5*time.Second {
		t.Errorf("serve: %+v", *sv)
	}
	var d *DiffOptions
	parse(t, NewCmdDiff(quietIO(), func(_ context.Context, o *DiffOptions) error { d = o; return nil }),
		"a.json", "b.json", "--fail-on-change", "--latency-threshold", "0.5")
	if d.A != "a.json" || d.B != "b.json" || !d.FailOnChange || d.Threshold != 0.5 {
		t.Errorf("diff: %+v", *d)
	}
	var st *StreamOptions
	parse(t, NewCmdStream(quietIO(), func(_ context.Context, o *StreamOptions) error { st = o; return nil }),
		"--kafka-brokers", "k1:9092,k2:9092", "--group", "g", "--partitioned-by-trace", "--encoding", "otlp_json", "--trace-idle", "2s",
		"--results-retention", "72h", "--stop-timeout", "45s", "--max-series", "500", "--instance", "m-1", "--trace-max-age", "3m")
	if st.StopTimeout != 45*time.Second || st.MaxSeries != 500 || st.Instance != "m-1" || st.MaxAge != 3*time.Minute || st.Brokers != "k1:9092,k2:9092" || st.Group != "g" || !st.ByTraceID || st.Encoding != "otlp_json" || st.Idle != 2*time.Second ||
		st.Topic != "otlp_spans" || st.Window != time.Minute || st.Listen != "" || st.Retention != 72*time.Hour {
		t.Errorf("stream: %+v", *st)
	}
}

// Bad values stop at parsing, before any work (runF is never called).
func TestFlagsRejected(t *testing.T) {
	called := false
	run := func(context.Context, *GraphOptions) error { called = true; return nil }
	for _, args := range [][]string{
		{"-o", "svg", "--fixture", "kafka-e2e"}, {"--jaeger", "a b"}, {"--fixture", "x", "--lookback", "0s"},
		{"--fixture", "x", "--max-record-mib", "0"}, {},
	} {
		cmd := NewCmdGraph(quietIO(), run)
		cmd.SetArgs(args)
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		if err := cmd.ExecuteContext(context.Background()); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	if called {
		t.Error("the command ran despite a bad flag")
	}
}

// A flag that the sources given would not read is a usage error that
// names it, not silently ignored; the same flags with a source that reads
// them are taken.
func TestFlagsForOtherSources(t *testing.T) {
	for _, c := range []struct {
		args []string
		flag string // "" when accepted
	}{
		{[]string{"--fixture", "kafka-e2e", "--service", "a"}, "--service"},
		{[]string{"--file", "x.json", "--since", "15m"}, "--since"},
		{[]string{"--fixture", "kafka-e2e", "--jaeger-token", "t"}, "--jaeger-token"},
		{[]string{"--kafka", "k:9092", "--group", "g", "--page-size", "10"}, "--page-size"},
		{[]string{"--kafka", "k:9092", "--group", "g", "--max-record-mib", "8"}, "--max-record-mib"},
		{[]string{"--kafka", "k:9092", "--group", "g", "--since", "15m"}, ""},
		{[]string{"--jaeger", "j:16685", "--file", "x.json", "--service", "a", "--since", "15m"}, ""},
		{[]string{"--fixture", "kafka-e2e", "--max-record-mib", "8"}, ""},
		{[]string{"--fixture", "kafka-e2e", "--kafka-tls"}, "--kafka-tls"},
		{[]string{"--jaeger", "j:16685", "--kafka-user", "u"}, "--kafka-user"},
		{[]string{"--kafka", "k:9092", "--group", "g", "--kafka-tls"}, ""},
	} {
		called := false
		cmd := NewCmdGraph(quietIO(), func(context.Context, *GraphOptions) error { called = true; return nil })
		cmd.SetArgs(c.args)
		var stderr bytes.Buffer
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&stderr)
		err := cmd.ExecuteContext(context.Background())
		switch {
		case c.flag == "" && (err != nil || !called):
			t.Errorf("%v: refused: %v", c.args, err)
		case c.flag != "" && (err == nil || called || !strings.Contains(err.Error(), c.flag+" applies to")):
			t.Errorf("%v: want a usage error naming %s, got %v (ran: %v)", c.args, c.flag, err, called)
		}
	}
	oneLineErr(t, run(t, "", nil, "graph", "--fixture", "kafka-e2e", "--service", "a"), ExitUsage, "--service applies to --jaeger and --kafka only")
}

// How to reach Kafka: flags that do not go together, files that do not
// read and a missing password are usage errors that name the problem,
// before anything starts, and never print the password; the password is
// taken from KTRACE_KAFKA_PASSWORD or the first line of a file, and
// plain SASL without TLS is warned of.
func TestKafkaConnFlags(t *testing.T) {
	notPEM := write(t, "ca.txt", []byte("not a certificate"))
	passFile := write(t, "pass", []byte("from-a-file\nsecond line\n"))
	stream := []string{"stream", "--kafka-brokers", "127.0.0.1:1", "--group", "g"}
	graph := []string{"graph", "--kafka", "127.0.0.1:1", "--group", "g"}
	env := map[string]string{"KTRACE_KAFKA_PASSWORD": "pw-in-env"}
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{append(stream, "--kafka-ca", notPEM), nil, "need --kafka-tls"},
		{append(stream, "--kafka-tls", "--kafka-cert", notPEM), nil, "--kafka-cert and --kafka-key go together"},
		{append(stream, "--kafka-tls", "--kafka-ca", notPEM), nil, "no PEM certificates"},
		{append(stream, "--kafka-tls", "--kafka-ca", notPEM+".gone"), nil, "reading --kafka-ca"},
		{append(stream, "--kafka-sasl", "plain"), env, "--kafka-sasl needs --kafka-user"},
		{append(stream, "--kafka-user", "u"), env, "need --kafka-sasl"},
		{append(stream, "--kafka-sasl", "gssapi", "--kafka-user", "u"), env, "want plain, scram-sha-256 or scram-sha-512"},
		{append(stream, "--kafka-sasl", "gssapi", "--kafka-user", "u"), nil, "want plain, scram-sha-256 or scram-sha-512"},
		{append(stream, "--kafka-sasl", "scram-sha-512", "--kafka-user", "u"), nil, "KTRACE_KAFKA_PASSWORD"},
		{append(stream, "--kafka-sasl", "scram-sha-512", "--kafka-user", "u", "--kafka-password-file", passFile+".gone"), nil, "reading --kafka-password-file"},
		{append(stream, "--kafka-sasl", "scram-sha-512", "--kafka-user", "u", "--kafka-password-file", t.TempDir()), nil, "reading --kafka-password-file"},
		{append(graph, "--kafka-sasl", "scram-sha-256", "--kafka-user", "u"), nil, "KTRACE_KAFKA_PASSWORD"},
		{append(graph, "--kafka-ca", notPEM), nil, "need --kafka-tls"},
		{[]string{"diff", "a.json", "b.json", "--kafka-tls"}, nil, "--kafka-tls applies to --kafka only"},
		{append(stream, "--stop-timeout", "0s"), nil, "--stop-timeout must be positive"},
		{append(stream, "--pair-wait", "-1s"), nil, "--pair-wait not negative"},
		{append(stream, "--max-series", "0"), nil, "--max-series must be positive"},
		{append(stream, "--trace-max-age", "5s"), nil, "--trace-max-age must be longer than --trace-idle"},
		// The group names the internal topics, which Kafka must take.
		{[]string{"stream", "--kafka-brokers", "127.0.0.1:1", "--group", "my group"}, nil, `--group: group "my group" names the internal topics`},
		{[]string{"graph", "--kafka", "127.0.0.1:1", "--group", strings.Repeat("g", 234)}, nil, "take at most 249 characters"},
		{[]string{"stream", "--kafka-brokers", "127.0.0.1:1", "--group", "g", "--topic", "spans/1"}, nil, `--topic: topic "spans/1": Kafka topic names take only`},
	} {
		r := run(t, "", c.env, c.args...)
		oneLineErr(t, r, ExitUsage, c.want)
		if strings.Contains(r.err, "pw-in-env") {
			t.Errorf("%v: the password printed: %q", c.args, r.err)
		}
	}

	var got *StreamOptions
	for _, c := range []struct {
		args []string
		env  map[string]string
		warn bool
	}{
		{append(stream, "--kafka-sasl", "PLAIN", "--kafka-user", "u"), env, true},
		{append(stream, "--kafka-sasl", "scram-sha-256", "--kafka-user", "u", "--kafka-password-file", passFile), nil, false},
	} {
		ios := quietIO()
		var stderr bytes.Buffer
		ios.ErrOut, ios.Getenv = &stderr, func(k string) string { return c.env[k] }
		parse(t, NewCmdStream(ios, func(_ context.Context, o *StreamOptions) error { got = o; return nil }), c.args[1:]...)
		if got.conn.SASL == nil || got.conn.TLS != nil || len(got.conn.Brokers) != 1 {
			t.Errorf("%v: %+v", c.args, got.conn)
		}
		if warned := strings.Contains(stderr.String(), "in the clear"); warned != c.warn {
			t.Errorf("%v: warned %v: %q", c.args, warned, stderr.String())
		}
	}
	o := KafkaOptions{PasswordFile: passFile}
	if p, err := o.password(quietIO()); p != "from-a-file" || err != nil {
		t.Errorf("the password file's first line: %q, %v", p, err)
	}
	o = KafkaOptions{}
	if p, err := o.password(&IOStreams{Getenv: func(k string) string { return env[k] }}); p != "pw-in-env" || err != nil {
		t.Errorf("the password from the environment: %q, %v", p, err)
	}
}

// diff reaches a Jaeger that takes TLS and a token as every other reader
// does; its Jaeger flags without --jaeger are usage errors.
func TestDiffJaegerConn(t *testing.T) {
	var d *DiffOptions
	parse(t, NewCmdDiff(quietIO(), func(_ context.Context, o *DiffOptions) error { d = o; return nil }),
		"--jaeger", "j:16685", "A..B", "C..D", "--jaeger-tls", "--jaeger-ca", "ca.pem", "--jaeger-token", "t")
	if want := (JaegerConn{tlsFlags{TLS: true, CA: "ca.pem"}, "t"}); d.JaegerConn != want {
		t.Errorf("diff's Jaeger connection: %+v, want %+v", d.JaegerConn, want)
	}
	src := jaegerSource(d.Jaeger, "", "")
	src.JaegerConn = d.JaegerConn
	if c := src.jaegerConfig(); !c.TLS || c.CAFile != "ca.pem" || c.Token != "t" {
		t.Errorf("the Jaeger client's configuration: %+v", c)
	}
	oneLineErr(t, run(t, "", nil, "diff", "a.json", "b.json", "--jaeger-token", "t"), ExitUsage, "--jaeger-token applies to --jaeger only")
	oneLineErr(t, run(t, "", nil, "diff", "a.json", "b.json", "--timeout", "5s"), ExitUsage, "--timeout applies to --jaeger only")
	oneLineErr(t, run(t, "", nil, "diff", "--jaeger", "127.0.0.1:1", "2026-01-01T00:00:00Z..2026-01-01T01:00:00Z",
		"2026-01-02T00:00:00Z..2026-01-02T01:00:00Z", "--jaeger-ca", "ca.pem"), ExitUsage, "need --jaeger-tls")
}

// A sampling ratio outside 0..1 is a usage error, before anything starts.
func TestStackSampleFlag(t *testing.T) {
	for _, cmd := range [][]string{{"stack", "up"}, {"demo"}} {
		for _, flag := range []string{"--sample", "--tail-sample"} {
			for _, bad := range []string{"1.5", "-0.1", "NaN"} {
				r := run(t, "", nil, append(cmd, flag, bad, "--state-dir", t.TempDir())...)
				if r.code != ExitUsage || !strings.Contains(r.err, flag+" ") {
					t.Errorf("%v %s %s: exit %d: %s", cmd, flag, bad, r.code, r.err)
				}
			}
		}
	}
}
