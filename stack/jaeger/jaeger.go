// Package jaeger runs the real Jaeger v2 binary for ktrace's stack and
// tests: it writes a config that binds loopback only, starts the process,
// waits until it is healthy and stops it.
package jaeger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Version is the Jaeger release scripts/install-jaeger builds.
const Version = "v1.76.0"

// ErrNoBinary is returned by FindBinary when no Jaeger binary is found.
var ErrNoBinary = errors.New("no Jaeger binary found (run scripts/install-jaeger, or pass --jaeger-bin)")

// FindBinary returns the Jaeger binary to run: explicit if not empty, else
// $KTRACE_JAEGER_BIN, else the one scripts/install-jaeger caches, else
// "jaeger" on PATH.
func FindBinary(explicit string) (string, error) {
	for _, p := range []string{explicit, os.Getenv("KTRACE_JAEGER_BIN"), CachedPath()} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
		if p == explicit {
			return "", fmt.Errorf("jaeger binary %s: not an executable file", p)
		}
	}
	if p, err := exec.LookPath("jaeger"); err == nil {
		return p, nil
	}
	return "", ErrNoBinary
}

// CachedPath is where scripts/install-jaeger puts the binary.
func CachedPath() string {
	dir := os.Getenv("XDG_CACHE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".cache")
	}
	return filepath.Join(dir, "ktrace", "jaeger-"+Version, "jaeger")
}

// Options configure a Jaeger process. Zero ports are picked free.
type Options struct {
	Bin string
	// Dir holds the config, the log and (with Persist) the Badger data.
	Dir string
	// Host to bind; default 127.0.0.1.
	Host                                                          string
	OTLPGRPCPort, OTLPHTTPPort, QueryGRPCPort, UIPort, HealthPort int
	// Persist keeps traces in Badger under Dir/badger instead of memory.
	Persist bool
	// MaxTraces bounds the in-memory store; default 100000.
	MaxTraces int
	// TailSample, between 0 and 1, keeps that share of whole traces with
	// the collector's tail_sampling processor (a probabilistic policy,
	// decided after a trace has been quiet for 2 s); 0 keeps all.
	TailSample float64
	// Role is "" (all in one: OTLP in, the store, the query API),
	// RoleCollector (OTLP in, spans out to SpanTopic on KafkaBrokers with
	// the kafka exporter, otlp_proto, not keyed by trace) or RoleIngester
	// (spans in from SpanTopic with the kafka receiver, the store, the
	// query API).
	Role         string
	KafkaBrokers []string
	SpanTopic    string
	// SpanEncoding is the span topic's encoding (default otlp_proto;
	// jaeger_proto and jaeger_json write a span a record, keyed by trace).
	SpanEncoding string
	// SpansByTrace has the collector key its records by trace ID
	// (partition_traces_by_id: a record per trace).
	SpansByTrace bool
	// KafkaAuth is how the collector and the ingester reach brokers that
	// take TLS or SASL.
	KafkaAuth KafkaAuth
}

// KafkaAuth is how a client reaches Kafka brokers that take only TLS, or
// SASL logins: ktrace's --kafka-* flags.
type KafkaAuth struct {
	TLS bool
	// CA, Cert and Key are PEM files (the system's CAs when CA is empty;
	// Cert and Key for mutual TLS); ServerName overrides the name the
	// broker's certificate is checked against.
	CA, Cert, Key, ServerName string
	// SASL is plain, scram-sha-256 or scram-sha-512, with User. The
	// password is in no file: Jaeger reads it from its environment, a
	// configuration of its own (AuthEnv, PasswordConfig).
	SASL, User string
}

// PasswordEnv holds the SASL password in the environment of the ktrace
// processes that log in to Kafka.
const PasswordEnv = "KTRACE_KAFKA_PASSWORD"

// AuthEnv holds, in the environment of a Jaeger that logs in to Kafka, the
// configuration that gives its kafka exporter or receiver the password
// (PasswordConfig); Prepare's command line reads it.
const AuthEnv = "KTRACE_JAEGER_KAFKA_AUTH"

// PasswordConfig is the configuration that sets the SASL password of the
// kafka exporter (RoleCollector) or receiver (RoleIngester), for AuthEnv.
// The collector reads a value such as ${env:...} as YAML, which would
// turn a password like "a: b" into a map, or "#x" into nothing; the
// password is a quoted string here, its "$" escaped.
func PasswordConfig(role, password string) string {
	kind := "exporters"
	if role == RoleIngester {
		kind = "receivers"
	}
	return fmt.Sprintf("%s: {kafka: {auth: {sasl: {password: %s}}}}\n", kind, yamlString(password))
}

// config is the TLS and SASL settings of the kafka receiver's and exporter's settings, indented
// for their block.
func (a KafkaAuth) config() string {
	var b strings.Builder
	if a.TLS {
		b.WriteString("    tls:\n      insecure: false\n")
		for _, f := range []struct{ key, value string }{{"ca_file", a.CA}, {"cert_file", a.Cert}, {"key_file", a.Key}, {"server_name_override", a.ServerName}} {
			if f.value != "" {
				fmt.Fprintf(&b, "      %s: %s\n", f.key, yamlString(f.value))
			}
		}
	}
	if a.SASL != "" {
		fmt.Fprintf(&b, "    auth:\n      sasl:\n        mechanism: %s\n        username: %s\n",
			yamlString(strings.ToUpper(a.SASL)), yamlString(a.User))
	}
	return b.String()
}

// Roles of a Jaeger through Kafka.
const (
	RoleCollector = "collector"
	RoleIngester  = "ingester"
)

// Process is a running Jaeger.
type Process struct {
	Options
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// FreePort returns a loopback TCP port free now, for a process started
// next to listen on. It is picked at random below the ports systems hand
// out for outgoing connections (Linux from 32768, macOS and Windows from
// 49152): one the kernel picked would be among them, and an outgoing
// connection could take it before the process listens.
func FreePort() (int, error) {
	var err error
	for range 200 {
		var l net.Listener
		if l, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))); err == nil {
			l.Close()
			return l.Addr().(*net.TCPAddr).Port, nil
		}
	}
	return 0, fmt.Errorf("no free loopback port between 20000 and 32000: %w", err)
}

func (o *Options) defaults() error {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.MaxTraces == 0 {
		o.MaxTraces = 100000
	}
	if o.SpanEncoding == "" {
		o.SpanEncoding = "otlp_proto"
	}
	for _, p := range []*int{&o.OTLPGRPCPort, &o.OTLPHTTPPort, &o.QueryGRPCPort, &o.UIPort, &o.HealthPort} {
		if *p == 0 {
			port, err := FreePort()
			if err != nil {
				return err
			}
			*p = port
		}
	}
	return nil
}

func (o *Options) addr(port int) string { return net.JoinHostPort(o.Host, strconv.Itoa(port)) }

// QueryAddr is the query gRPC address (api_v2).
func (o *Options) QueryAddr() string { return o.addr(o.QueryGRPCPort) }

// OTLPAddr is the OTLP gRPC address.
func (o *Options) OTLPAddr() string { return o.addr(o.OTLPGRPCPort) }

// UIURL is the Jaeger UI.
func (o *Options) UIURL() string { return "http://" + o.addr(o.UIPort) }

// Config renders the Jaeger v2 (OpenTelemetry Collector) configuration of
// o's role.
func (o *Options) Config() string {
	storage := fmt.Sprintf("        memory:\n          max_traces: %d\n", o.MaxTraces)
	if o.Persist {
		data := filepath.Join(o.Dir, "badger")
		storage = fmt.Sprintf("        badger:\n          directories:\n            keys: %q\n            values: %q\n          ephemeral: false\n", data+"/keys", data+"/values")
	}
	name, extensions := "jaeger", "[jaeger_storage, jaeger_query, healthcheckv2]"
	query := fmt.Sprintf(`  jaeger_query:
    enable_tracing: false
    storage:
      traces: store
    grpc:
      endpoint: %q
    http:
      endpoint: %q
  jaeger_storage:
    backends:
      store:
%s`, o.QueryAddr(), o.addr(o.UIPort), storage)
	exporters, exporter := "[jaeger_storage_exporter]", "  jaeger_storage_exporter:\n    trace_storage: store\n"
	if o.Role == RoleCollector {
		byTrace := ""
		if o.SpansByTrace {
			byTrace = "    partition_traces_by_id: true\n"
		}
		name, extensions, query = "jaeger-collector", "[healthcheckv2]", ""
		exporters, exporter = "[kafka]", fmt.Sprintf(`  kafka:
    brokers: %s
    traces:
      topic: %q
      encoding: %s
%s%s`, quoteList(o.KafkaBrokers), o.SpanTopic, o.SpanEncoding, o.KafkaAuth.config(), byTrace)
	}
	receivers, receiver := "[otlp]", fmt.Sprintf(`  otlp:
    protocols:
      grpc:
        endpoint: %q
      http:
        endpoint: %q
`, o.OTLPAddr(), o.addr(o.OTLPHTTPPort))
	if o.Role == RoleIngester {
		receivers, receiver = "[kafka]", fmt.Sprintf(`  kafka:
    brokers: %s
    group_id: jaeger-ingester
    initial_offset: earliest
    traces:
      topic: %q
      encoding: %s
%s`, quoteList(o.KafkaBrokers), o.SpanTopic, o.SpanEncoding, o.KafkaAuth.config())
	}
	processors, tail := "[batch]", ""
	if o.TailSample > 0 && o.TailSample < 1 {
		processors = "[tail_sampling, batch]"
		tail = fmt.Sprintf(`  tail_sampling:
    decision_wait: 2s
    policies:
      - name: keep-a-share
        type: probabilistic
        probabilistic:
          sampling_percentage: %g
`, 100*o.TailSample)
	}
	return fmt.Sprintf(`service:
  extensions: %s
  pipelines:
    traces:
      receivers: %s
      processors: %s
      exporters: %s
  telemetry:
    resource:
      service.name: %s
    metrics:
      level: none
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: %q
%sreceivers:
%sprocessors:
  batch:
    timeout: 200ms
%sexporters:
%s`, extensions, receivers, processors, exporters, name, o.addr(o.HealthPort), query, receiver, tail, exporter)
}

// quoteList is a YAML flow list of quoted strings.
func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = yamlString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// yamlString quotes s for the collector's configuration: a YAML
// double-quoted string whose "$" cannot start a ${...} reference.
func yamlString(s string) string { return strconv.Quote(strings.ReplaceAll(s, "$", "$$")) }

// Prepare picks free ports for the ports left zero, writes the config into
// Dir and returns the command line that runs Jaeger with it.
func (o *Options) Prepare() ([]string, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	cfg := filepath.Join(o.Dir, "jaeger.yaml")
	if err := os.WriteFile(cfg, []byte(o.Config()), 0o644); err != nil {
		return nil, err
	}
	argv := []string{o.Bin, "--config", cfg}
	if o.KafkaAuth.SASL != "" && o.Role != "" {
		argv = append(argv, "--config", "env:"+AuthEnv)
	}
	return argv, nil
}

// HealthURL answers 200 once Jaeger is up.
func (o *Options) HealthURL() string { return "http://" + o.addr(o.HealthPort) + "/status" }

// Start writes the config, starts Jaeger and waits (up to the context's
// deadline) until its health endpoint answers. On failure it stops the
// process and returns an error that quotes the end of Jaeger's log.
//
// Ports left zero are picked free; one can be taken by another program
// before Jaeger binds it, so a start-up that fails with "address already in
// use" is tried again, up to three times, with those ports picked anew.
func Start(ctx context.Context, o Options) (*Process, error) {
	picked := o // the ports to pick again
	for attempt := 1; ; attempt++ {
		p, err := start(ctx, o)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return p, err
		}
		o.OTLPGRPCPort, o.OTLPHTTPPort, o.QueryGRPCPort, o.UIPort, o.HealthPort =
			picked.OTLPGRPCPort, picked.OTLPHTTPPort, picked.QueryGRPCPort, picked.UIPort, picked.HealthPort
	}
}

func start(ctx context.Context, o Options) (*Process, error) {
	argv, err := o.Prepare()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(o.Dir, "jaeger.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	groupOwn(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting jaeger %s: %w", o.Bin, err)
	}
	p := &Process{Options: o, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	if err := p.waitHealthy(ctx); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%w; log tail: %s", err, tail(filepath.Join(o.Dir, "jaeger.log"), 400))
	}
	return p, nil
}

// Pid returns the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

func (p *Process) waitHealthy(ctx context.Context) error {
	url := p.HealthURL()
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-p.done:
			return fmt.Errorf("jaeger exited during start-up: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("jaeger not healthy at %s: %w", url, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := client.Get(url)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			// The query port opens with the extension; check it too (a
			// collector serves no queries).
			if p.Role == RoleCollector {
				return nil
			}
			if c, err := net.DialTimeout("tcp", p.QueryAddr(), time.Second); err == nil {
				c.Close()
				return nil
			}
		}
	}
}

// Stop sends SIGTERM, waits up to 10s, then kills.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	stopGroup(p.cmd, false)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		stopGroup(p.cmd, true)
		<-p.done
	}
}

func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log)"
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		f.Seek(-n, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
