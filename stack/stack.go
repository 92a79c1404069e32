package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktrace-dev/ktrace/stack/jaeger"
	"github.com/ktrace-dev/ktrace/stack/services"
	"github.com/ktrace-dev/ktrace/stream"
)

// Component names, in start order.
const (
	Broker  = "kafka"
	Jaeger  = "jaeger"
	Source  = services.SourceName
	Flatten = services.FlattenName
	Join    = services.JoinName
	API     = services.APIName
	// Map is `ktrace serve` on the stack's Jaeger: the live service map.
	Map = "map"
	// With --spans-via-kafka: the Jaeger that writes spans to Kafka (the
	// one named Jaeger reads them back and serves the query API), and the
	// ktrace stream members, Stream-1, Stream-2, ...
	JaegerCollector = "jaeger-collector"
	Stream          = "ktrace-stream"
)

// Services are the stack's own services.
var Services = []string{Source, Flatten, Join, API}

// Options configure Up.
type Options struct {
	// Exe is the ktrace executable that runs components; default os.Executable().
	Exe string
	// StateDir holds state.json and logs; default DefaultStateDir().
	StateDir string
	// KafkaPort is the embedded broker's port (default 9092). Cluster,
	// when it names brokers, is an existing cluster used instead, and how
	// the stack's own clients reach it.
	KafkaPort int
	Cluster   stream.Kafka
	// KafkaAuth is how every process of the stack reaches an existing
	// cluster that takes only TLS, or SASL logins, as flags and
	// configuration (Cluster holds the same for the stack's own clients).
	// The SASL password is the first line of KafkaPasswordFile, else
	// jaeger.PasswordEnv in the environment; each process the stack
	// starts gets it in its environment (Component.environ): it is in no
	// file and on no command line the stack writes.
	KafkaAuth         jaeger.KafkaAuth
	KafkaPasswordFile string
	// JaegerBin is the Jaeger v2 binary; found or built when empty.
	JaegerBin string
	// Persist keeps traces in Badger under the state directory.
	Persist bool
	// JaegerEndpoint (query gRPC host:port) and OTLPEndpoint use an existing
	// Jaeger or collector instead of starting one.
	JaegerEndpoint, OTLPEndpoint string
	// Ports of the Jaeger the stack starts, and of the API.
	JaegerGRPCPort, JaegerUIPort, OTLPPort, APIPort int
	// Propagation is the join's mode: lost, links or parent.
	Propagation string
	// Sample makes every service keep this share of traces, deciding at
	// each root and following the parent elsewhere (0: all).
	Sample float64
	// TailSample makes the stack's Jaeger keep this share of whole traces
	// (tail sampling in the collector; 0: all).
	TailSample float64
	// SpansViaKafka sends the spans through Kafka: a Jaeger collector
	// writes them (kafka exporter, not keyed by trace) to SpanTopic, of six
	// partitions; a Jaeger ingester stores them for the query API; and
	// StreamReplicas `ktrace stream` members (default 3) analyse them in
	// the consumer group StreamGroup.
	SpansViaKafka  bool
	StreamReplicas int
	// SpansByTrace has the collector key the spans by trace ID
	// (partition_traces_by_id), and the members read them so
	// (--partitioned-by-trace), without re-keying: the wiring for
	// production.
	SpansByTrace bool
	// Live makes github-source page the real GitHub API (GITHUB_TOKEN).
	Live bool
	// Replicas runs several instances of a consumer service in one consumer
	// group, each its own process and service.instance.id (stargazers-flatten
	// and stargazers-join only).
	Replicas map[string]int
	// Progress receives progress lines; nil discards them.
	Progress io.Writer
	// Timeout bounds waiting for health; default 60s.
	Timeout time.Duration
}

// Errors Up and the other operations return.
var (
	ErrRunning    = errors.New("the stack is already running (ktrace stack down stops it)")
	ErrNotRunning = errors.New("the stack is not running (ktrace stack up starts it)")
)

// PortInUseError names a port something else holds.
type PortInUseError struct {
	Port int
	What string
	Flag string
}

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("port %d (%s) is already in use; free it or choose another with %s", e.Port, e.What, e.Flag)
}

// KafkaUnreachableError is returned when no broker of an existing cluster
// (--kafka-brokers) answers; Err says so (stream.Kafka.Unreachable).
type KafkaUnreachableError struct{ Err error }

func (e *KafkaUnreachableError) Error() string { return e.Err.Error() }

func (e *KafkaUnreachableError) Unwrap() error { return e.Err }

func (o *Options) defaults() error {
	if o.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.Exe = exe
	}
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir()
	}
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&o.KafkaPort, 9092)
	def(&o.JaegerGRPCPort, 16685)
	def(&o.JaegerUIPort, 16686)
	def(&o.OTLPPort, 4317)
	def(&o.APIPort, 3100)
	if o.Propagation == "" {
		o.Propagation = services.PropagationLost
	}
	switch o.Propagation {
	case services.PropagationLost, services.PropagationLinks, services.PropagationParent:
	default:
		return fmt.Errorf("--propagation %q: want lost, links or parent", o.Propagation)
	}
	if !(o.Sample >= 0 && o.Sample <= 1) {
		return fmt.Errorf("--sample %v: want a ratio from 0 to 1 (0: keep every trace)", o.Sample)
	}
	if a := o.KafkaAuth; a != (jaeger.KafkaAuth{}) || o.KafkaPasswordFile != "" {
		if len(o.Cluster.Brokers) == 0 {
			return fmt.Errorf("the --kafka-tls and --kafka-sasl flags go with --kafka-brokers (the embedded broker takes neither)")
		}
		for _, f := range []*string{&o.KafkaAuth.CA, &o.KafkaAuth.Cert, &o.KafkaAuth.Key, &o.KafkaPasswordFile} {
			// Components may be started again from another directory.
			if *f != "" {
				abs, err := filepath.Abs(*f)
				if err != nil {
					return err
				}
				*f = abs
			}
		}
	}
	if o.SpansViaKafka {
		if o.JaegerEndpoint != "" || o.OTLPEndpoint != "" {
			return fmt.Errorf("--spans-via-kafka runs the stack's own Jaeger collector and ingester, not an existing one")
		}
		if o.StreamReplicas == 0 {
			o.StreamReplicas = 3
		}
		if o.StreamReplicas < 1 || o.StreamReplicas > SpanPartitions {
			return fmt.Errorf("--stream-replicas %d: want 1 to %d (the span topic's partitions)", o.StreamReplicas, SpanPartitions)
		}
	} else if o.StreamReplicas != 0 || o.SpansByTrace {
		return fmt.Errorf("--stream-replicas and --spans-by-trace go with --spans-via-kafka")
	}
	if !(o.TailSample >= 0 && o.TailSample <= 1) {
		return fmt.Errorf("--tail-sample %v: want a ratio from 0 to 1 (0: keep every trace)", o.TailSample)
	}
	if o.TailSample > 0 && o.TailSample < 1 && (o.JaegerEndpoint != "" || o.OTLPEndpoint != "") {
		return fmt.Errorf("--tail-sample configures the Jaeger the stack starts, not an existing one")
	}
	for name, n := range o.Replicas {
		if name != Flatten && name != Join {
			return fmt.Errorf("--replicas %s=%d: only %s and %s run as several instances", name, n, Flatten, Join)
		}
		if n < 1 || n > services.Partitions {
			// A member beyond the topics' partitions would hold none: idle,
			// and never ready.
			return fmt.Errorf("--replicas %s=%d: want 1 to %d (the topics' partitions)", name, n, services.Partitions)
		}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	return nil
}

func portFree(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// Up starts the stack and waits until every component is healthy. On any
// failure it stops what it started and returns an error naming the cause.
func Up(ctx context.Context, o Options) (st *State, err error) {
	if err := Supported(); err != nil {
		return nil, err
	}
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if old, lerr := Load(o.StateDir); lerr == nil {
		for i := range old.Components {
			if old.Components[i].Alive() {
				return nil, ErrRunning
			}
		}
		fmt.Fprintln(o.Progress, "removing stale state of a stack that is no longer running")
		os.Remove(filepath.Join(o.StateDir, "state.json"))
	}
	if err := os.MkdirAll(filepath.Join(o.StateDir, "logs"), 0o755); err != nil {
		return nil, err
	}
	embedded := len(o.Cluster.Brokers) == 0
	ownJaeger := o.JaegerEndpoint == "" && o.OTLPEndpoint == ""
	type port struct {
		n          int
		what, flag string
	}
	ports := []port{{o.APIPort, "stargazers-api", "--api-port"}}
	if embedded {
		ports = append(ports, port{o.KafkaPort, "kafka", "--kafka-port"})
	}
	if ownJaeger {
		ports = append(ports, port{o.JaegerGRPCPort, "jaeger query gRPC", "--jaeger-grpc-port"},
			port{o.JaegerUIPort, "jaeger UI", "--jaeger-ui-port"}, port{o.OTLPPort, "jaeger OTLP", "--otlp-port"})
	}
	for _, p := range ports {
		if !portFree(p.n) {
			return nil, &PortInUseError{Port: p.n, What: p.what, Flag: p.flag}
		}
	}
	var jbin string
	if ownJaeger {
		if jbin, err = jaeger.FindBinary(o.JaegerBin); err != nil {
			if o.JaegerBin != "" || !errors.Is(err, jaeger.ErrNoBinary) {
				return nil, err
			}
			if jbin, err = jaeger.Build(ctx, o.Progress); err != nil {
				return nil, err
			}
		}
	}

	st = &State{dir: o.StateDir, Propagation: o.Propagation, Sample: o.Sample, TailSample: o.TailSample}
	defer func() {
		if err != nil {
			for i := len(st.Components) - 1; i >= 0; i-- {
				st.Components[i].stop(false)
			}
			os.Remove(filepath.Join(o.StateDir, "state.json"))
		}
	}()
	logPath := func(name string) string { return filepath.Join(o.StateDir, "logs", name+".log") }
	launch := func(c Component) error {
		c.Log = logPath(c.Name)
		if c.Name != Map && c.Name != Broker {
			c.KafkaPasswordFile = o.KafkaPasswordFile
		}
		fmt.Fprintf(o.Progress, "starting %s...\n", c.Name)
		if err := c.start(); err != nil {
			return err
		}
		st.Components = append(st.Components, c)
		if err := st.save(); err != nil {
			return err
		}
		return st.Components[len(st.Components)-1].waitHealthy(ctx, o.Timeout)
	}
	healthURL := func(port int) string { return "http://" + addr(port) + "/healthz" }

	kafka := o.Cluster // how the stack's own clients reach the brokers
	if embedded {
		hp, err := jaeger.FreePort()
		if err != nil {
			return st, err
		}
		kafka.Brokers = []string{addr(o.KafkaPort)}
		if err := launch(Component{Name: Broker, Health: healthURL(hp),
			Argv: []string{o.Exe, "stack", "serve", Broker, "--port", strconv.Itoa(o.KafkaPort), "--health", addr(hp)}}); err != nil {
			return st, err
		}
	} else if err := ensureTopics(ctx, kafka); err != nil {
		return st, err
	}
	brokers := kafka.Brokers
	st.Endpoints.Kafka = strings.Join(brokers, ",")
	st.KafkaArgs = kafkaArgs(o.KafkaAuth)

	otlp := o.OTLPEndpoint
	st.Endpoints.JaegerQuery = o.JaegerEndpoint
	if ownJaeger {
		jo := jaeger.Options{Bin: jbin, Dir: filepath.Join(o.StateDir, "jaeger"), Persist: o.Persist,
			OTLPGRPCPort: o.OTLPPort, QueryGRPCPort: o.JaegerGRPCPort, UIPort: o.JaegerUIPort, TailSample: o.TailSample}
		if o.SpansViaKafka {
			// The collector takes the services' OTLP on the stack's OTLP
			// port; the ingester serves the query API and the UI.
			if err := ensureSpanTopic(ctx, kafka); err != nil {
				return st, err
			}
			co := jaeger.Options{Bin: jbin, Dir: filepath.Join(o.StateDir, "jaeger-collector"), OTLPGRPCPort: o.OTLPPort,
				Role: jaeger.RoleCollector, KafkaBrokers: brokers, SpanTopic: SpanTopic, SpansByTrace: o.SpansByTrace, KafkaAuth: o.KafkaAuth,
				TailSample: o.TailSample}
			argv, err := co.Prepare()
			if err != nil {
				return st, err
			}
			if err := launch(Component{Name: JaegerCollector, Argv: argv, Health: co.HealthURL(), JaegerKafkaRole: saslRole(&o, co.Role)}); err != nil {
				return st, err
			}
			jo.OTLPGRPCPort, jo.Role, jo.KafkaBrokers, jo.SpanTopic, jo.TailSample = 0, jaeger.RoleIngester, brokers, SpanTopic, 0
			jo.KafkaAuth = o.KafkaAuth
		}
		argv, err := jo.Prepare()
		if err != nil {
			return st, err
		}
		if err := launch(Component{Name: Jaeger, Argv: argv, Health: jo.HealthURL(), JaegerKafkaRole: saslRole(&o, jo.Role)}); err != nil {
			return st, err
		}
		otlp = jo.OTLPAddr()
		if o.SpansViaKafka {
			otlp = addr(o.OTLPPort)
		}
		st.Endpoints.JaegerQuery = jo.QueryAddr()
		st.Endpoints.JaegerUI = jo.UIURL()
		for r := 1; r <= o.StreamReplicas; r++ {
			hp, err := jaeger.FreePort()
			if err != nil {
				return st, err
			}
			name := fmt.Sprintf("%s-%d", Stream, r) // its instance name too: started again, it takes over its transactions
			c := Component{Name: name, Health: healthURL(hp),
				Argv: []string{o.Exe, "stream", "--kafka-brokers", strings.Join(brokers, ","), "--topic", SpanTopic,
					"--group", StreamGroup, "--listen", addr(hp), "--trace-idle", "2s", "--window", "5s",
					"--stop-timeout", stopGrace.String(), "--instance", name}}
			c.Argv = append(c.Argv, st.KafkaArgs...)
			if o.SpansByTrace {
				c.Argv = append(c.Argv, "--partitioned-by-trace")
			}
			if err := launch(c); err != nil {
				return st, err
			}
			st.Endpoints.Streams = append(st.Endpoints.Streams, "http://"+addr(hp)+"/metrics")
		}
	} else if otlp == "" {
		otlp = jaegerOTLPGuess(o.JaegerEndpoint)
	}
	st.Endpoints.OTLP = otlp

	for _, name := range Services {
		for r := 1; r <= max(1, o.Replicas[name]); r++ {
			c, err := serviceComponent(&o, st, name, r, brokers, otlp)
			if err != nil {
				return st, err
			}
			if err := launch(c); err != nil {
				return st, err
			}
		}
	}
	if st.Endpoints.JaegerQuery != "" {
		port, err := jaeger.FreePort()
		if err != nil {
			return st, err
		}
		listen := addr(port)
		if err := launch(Component{Name: Map, Health: "http://" + listen + "/healthz",
			Argv: []string{o.Exe, "serve", "--jaeger", st.Endpoints.JaegerQuery, "--lookback", "1h", "--interval", "10s", "--listen", listen}}); err != nil {
			return st, err
		}
		st.Endpoints.Map = "http://" + listen + "/"
	}
	return st, st.save()
}

// serviceComponent describes replica r of a service.
func serviceComponent(o *Options, st *State, name string, r int, brokers []string, otlp string) (Component, error) {
	hp := o.APIPort
	if name != API {
		var err error
		if hp, err = jaeger.FreePort(); err != nil {
			return Component{}, err
		}
	}
	component := name
	if r > 1 {
		component = fmt.Sprintf("%s-%d", name, r)
	}
	argv := []string{o.Exe, "stack", "serve", name, "--brokers", strings.Join(brokers, ","), "--otlp", otlp,
		"--health", addr(hp), "--instance", fmt.Sprintf("%s-%d", name, r)}
	argv = append(argv, st.KafkaArgs...)
	if o.Sample > 0 && o.Sample < 1 {
		argv = append(argv, "--sample", strconv.FormatFloat(o.Sample, 'g', -1, 64))
	}
	switch name {
	case Join:
		argv = append(argv, "--propagation", o.Propagation)
	case Source:
		if o.Live {
			argv = append(argv, "--live")
		}
		st.Endpoints.SourceAdmin = "http://" + addr(hp)
	case API:
		st.Endpoints.API = "http://" + addr(hp) + "/stargazers"
	}
	return Component{Name: component, Argv: argv, Health: "http://" + addr(hp) + "/healthz"}, nil
}

// jaegerOTLPGuess assumes an existing Jaeger takes OTLP on 4317 of the
// query endpoint's host.
func jaegerOTLPGuess(query string) string {
	host, _, err := net.SplitHostPort(query)
	if err != nil {
		host = query
	}
	return net.JoinHostPort(host, "4317")
}

// Spans through Kafka (--spans-via-kafka).
const (
	SpanTopic      = "otlp_spans" // the collector's kafka exporter's default topic
	SpanPartitions = 6
	StreamGroup    = "ktrace"
)

// saslRole is the role of a Jaeger that logs in to the stack's cluster
// with SASL, "" for one that does not.
func saslRole(o *Options, role string) string {
	if o.KafkaAuth.SASL == "" {
		return ""
	}
	return role
}

// kafkaArgs are the ktrace flags of a: how the stack's processes, and
// its user's commands, reach the cluster.
func kafkaArgs(a jaeger.KafkaAuth) []string {
	var args []string
	if a.TLS {
		args = append(args, "--kafka-tls")
	}
	for _, f := range []struct{ flag, value string }{{"--kafka-ca", a.CA}, {"--kafka-cert", a.Cert}, {"--kafka-key", a.Key},
		{"--kafka-server-name", a.ServerName}, {"--kafka-sasl", a.SASL}, {"--kafka-user", a.User}} {
		if f.value != "" {
			args = append(args, f.flag, f.value)
		}
	}
	return args
}

// ensureSpanTopic creates the span topic, of SpanPartitions partitions.
func ensureSpanTopic(ctx context.Context, kafka stream.Kafka) error {
	cl, err := kgo.NewClient(kafka.Opts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	res, err := kadm.NewClient(cl).CreateTopics(ctx, SpanPartitions, -1, nil, SpanTopic)
	if err != nil {
		return fmt.Errorf("creating topic %s: %w", SpanTopic, err)
	}
	for _, r := range res.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// ensureTopics checks an existing cluster answers and creates the stack's
// topics on it when missing.
func ensureTopics(ctx context.Context, kafka stream.Kafka) error {
	brokers := kafka.Brokers
	cl, err := kgo.NewClient(kafka.Opts()...)
	if err != nil {
		return fmt.Errorf("--kafka-brokers %s: %w", strings.Join(brokers, ","), err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		return &KafkaUnreachableError{Err: kafka.Unreachable(err)}
	}
	res, err := kadm.NewClient(cl).CreateTopics(pctx, services.Partitions, -1, nil, services.StackTopics...)
	if err != nil {
		return fmt.Errorf("creating topics on %s: %w", strings.Join(brokers, ","), err)
	}
	for _, r := range res.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}
