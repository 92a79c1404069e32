package cli

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ktrace-dev/ktrace/render"
	"github.com/ktrace-dev/ktrace/stack"
	"github.com/ktrace-dev/ktrace/stack/jaeger"
	"github.com/ktrace-dev/ktrace/stack/services"
)

// StackOptions are the flags of `ktrace stack up` and `ktrace demo`.
type StackOptions struct {
	stack.Options
	Brokers    string
	Kafka      KafkaOptions
	Replicas   []string
	Foreground bool
}

func (o *StackOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.StateDir, "state-dir", "", "directory for the stack's state and logs (default "+stack.DefaultStateDir()+")")
	f.IntVar(&o.KafkaPort, "kafka-port", 9092, "port of the embedded Kafka broker (127.0.0.1)")
	f.StringVar(&o.Brokers, "kafka-brokers", "", "use this existing Kafka cluster (`host:port,...`) instead of the embedded broker")
	o.Kafka.addFlags(f)
	f.StringVar(&o.JaegerBin, "jaeger-bin", "", "Jaeger v2 binary (default: $KTRACE_JAEGER_BIN, the cached build, PATH, else build it)")
	f.BoolVar(&o.Persist, "persist", false, "keep traces in Badger on disk instead of memory")
	f.StringVar(&o.JaegerEndpoint, "jaeger-endpoint", "", "use this existing Jaeger (query gRPC `host:port`) instead of starting one")
	f.StringVar(&o.OTLPEndpoint, "otlp-endpoint", "", "send spans to this existing OTLP gRPC collector (`host:port`)")
	f.IntVar(&o.JaegerGRPCPort, "jaeger-grpc-port", 16685, "query gRPC port of the Jaeger the stack starts")
	f.IntVar(&o.JaegerUIPort, "jaeger-ui-port", 16686, "UI port of the Jaeger the stack starts")
	f.IntVar(&o.OTLPPort, "otlp-port", 4317, "OTLP gRPC port of the Jaeger the stack starts")
	f.IntVar(&o.APIPort, "api-port", 3100, "port of stargazers-api")
	f.StringVar(&o.Propagation, "propagation", "lost", "join's trace propagation: lost (like ksqlDB), links (the fix) or parent")
	f.Float64Var(&o.Sample, "sample", 0, "every service keeps this share of traces (`RATIO`, parent-based as SDKs sample; 0: all)")
	f.Float64Var(&o.TailSample, "tail-sample", 0, "the stack's Jaeger keeps this share of whole traces (`RATIO`, tail_sampling; 0: all)")
	f.BoolVar(&o.SpansViaKafka, "spans-via-kafka", false, "spans go through Kafka: a Jaeger collector writes them to otlp_spans, a Jaeger ingester stores them, ktrace stream members analyse them")
	f.IntVar(&o.StreamReplicas, "stream-replicas", 0, "with --spans-via-kafka: how many ktrace stream members (default 3, at most 6)")
	f.BoolVar(&o.SpansByTrace, "spans-by-trace", false, "with --spans-via-kafka: the collector keys spans by trace ID (partition_traces_by_id) and the members read them so (--partitioned-by-trace), as in production")
	f.BoolVar(&o.Live, "live", false, "github-source pages the real GitHub API (needs GITHUB_TOKEN) instead of the bundled fixture")
	f.DurationVar(&o.Timeout, "wait", 60*time.Second, "how long to wait for each component to become healthy")
	f.StringArrayVar(&o.Replicas, "replicas", nil, "run `service=N` instances of stargazers-flatten or stargazers-join in one consumer group (repeatable)")
}

func (o *StackOptions) prepare(ios *IOStreams) error {
	// Without --kafka-brokers, stack.Up refuses the TLS and SASL flags.
	o.KafkaAuth = jaeger.KafkaAuth{TLS: o.Kafka.TLS, CA: o.Kafka.CA, Cert: o.Kafka.Cert, Key: o.Kafka.Key,
		ServerName: o.Kafka.ServerName, SASL: strings.ToLower(o.Kafka.SASL), User: o.Kafka.User}
	o.KafkaPasswordFile = o.Kafka.PasswordFile
	if o.Brokers != "" {
		k, err := o.Kafka.connect(ios, o.Brokers)
		if err != nil {
			return err
		}
		o.Cluster = k
	}
	for _, r := range o.Replicas {
		name, n, ok := strings.Cut(r, "=")
		count, err := strconv.Atoi(n)
		if !ok || err != nil {
			return usagef("--replicas %q: want service=N, such as stargazers-join=2", r)
		}
		if o.Options.Replicas == nil {
			o.Options.Replicas = map[string]int{}
		}
		o.Options.Replicas[name] = count
	}
	if o.Live && ios.Getenv("GITHUB_TOKEN") == "" {
		return usagef("--live needs a GitHub token in GITHUB_TOKEN")
	}
	if !(o.Sample >= 0 && o.Sample <= 1) {
		return usagef("--sample %v: want a ratio from 0 to 1 (0: keep every trace)", o.Sample)
	}
	if !(o.TailSample >= 0 && o.TailSample <= 1) {
		return usagef("--tail-sample %v: want a ratio from 0 to 1 (0: keep every trace)", o.TailSample)
	}
	o.Progress = ios.ErrOut
	return nil
}

// stackErr maps stack errors to exit codes: a Kafka cluster that does not
// answer is a backend (4); everything else — a port in use, a bad flag, a
// stack already running — keeps the default, usage (2).
func stackErr(err error) error {
	var ke *stack.KafkaUnreachableError
	if errors.As(err, &ke) {
		return withCode(ExitBackend, err)
	}
	return err
}

// stackSupported says whether the stack runs on this system (a seam, so
// that tests on Linux can see what Windows users see).
var stackSupported = stack.Supported

// NewCmdStack builds `ktrace stack`.
func NewCmdStack(ios *IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stack",
		Short: "Run the instrumented stargazers stack (Kafka, Jaeger v2, four services)",
		Long: `The stargazers stack: github-source writes STARGAZERS events of two
repositories to two topics; stargazers-flatten (stateless, context survives)
and stargazers-join (a 10-day windowed join on login, context lost by
default, like ksqlDB) feed stargazers-results; stargazers-api serves the
result. An embedded Kafka-protocol broker and a real Jaeger v2 by default,
all on 127.0.0.1.`,
		PersistentPreRunE: func(*cobra.Command, []string) error { return stackSupported() },
	}
	cmd.AddCommand(newCmdStackUp(ios), newCmdStackDown(ios), newCmdStackStatus(ios), newCmdStackLogs(ios),
		newCmdStackTraffic(ios), newCmdStackRestart(ios), newCmdStackServe(ios))
	return cmd
}

func printEndpoints(ios *IOStreams, st *stack.State) {
	e := st.Endpoints
	sampling := ""
	if st.Sample > 0 && st.Sample < 1 {
		sampling = fmt.Sprintf(", services keeping %g of traces", st.Sample)
	}
	if st.TailSample > 0 && st.TailSample < 1 {
		sampling += fmt.Sprintf(", Jaeger keeping %g of traces", st.TailSample)
	}
	fmt.Fprintf(ios.Out, "stargazers stack is up (join propagation: %s%s)\n", st.Propagation, sampling)
	if e.JaegerUI != "" {
		fmt.Fprintf(ios.Out, "  Jaeger UI          %s\n", e.JaegerUI)
	}
	if e.JaegerQuery != "" {
		fmt.Fprintf(ios.Out, "  Jaeger query gRPC  %s   (ktrace graph --jaeger %s)\n", e.JaegerQuery, e.JaegerQuery)
	}
	if e.Map != "" {
		fmt.Fprintf(ios.Out, "  service map        %s   (ktrace serve)\n", e.Map)
	}
	fmt.Fprintf(ios.Out, "  stargazers API     %s\n", e.API)
	fmt.Fprintf(ios.Out, "  Kafka              %s\n", e.Kafka)
	fmt.Fprintf(ios.Out, "  OTLP               %s\n", e.OTLP)
	for i, m := range e.Streams {
		fmt.Fprintf(ios.Out, "  ktrace stream %d    %s\n", i+1, m)
	}
	if len(e.Streams) > 0 {
		fmt.Fprintf(ios.Out, "  spans via Kafka    %s → ktrace graph --kafka %s --group %s\n", stack.SpanTopic, e.Kafka,
			strings.Join(append([]string{stack.StreamGroup}, st.KafkaArgs...), " "))
	}
}

func newCmdStackUp(ios *IOStreams) *cobra.Command {
	opts := &StackOptions{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the stack and wait until every component is healthy",
		Example: `  ktrace stack up
  ktrace stack up --propagation links --api-port 3200
  ktrace stack up --kafka-brokers broker1:9092 --jaeger-endpoint jaeger:16685`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.prepare(ios); err != nil {
				return err
			}
			st, err := stack.Up(cmd.Context(), opts.Options)
			if err != nil {
				return stackErr(err)
			}
			printEndpoints(ios, st)
			if !opts.Foreground {
				fmt.Fprintln(ios.Out, "  stop it with: ktrace stack down")
				return nil
			}
			fmt.Fprintln(ios.ErrOut, "running in the foreground; Ctrl-C stops the stack")
			<-cmd.Context().Done()
			return stackErr(stack.Down(opts.StateDir, ios.ErrOut))
		},
	}
	opts.register(cmd)
	cmd.Flags().BoolVar(&opts.Foreground, "foreground", false, "stay attached; Ctrl-C stops the stack")
	return cmd
}

func stateDirFlag(cmd *cobra.Command, dir *string) {
	cmd.Flags().StringVar(dir, "state-dir", "", "directory of the stack's state (default "+stack.DefaultStateDir()+")")
}

func newCmdStackDown(ios *IOStreams) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop every component of the stack",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := stack.Down(dir, ios.ErrOut); err != nil {
				if errors.Is(err, stack.ErrNotRunning) {
					fmt.Fprintln(ios.ErrOut, "the stack is not running")
					return nil
				}
				return err
			}
			fmt.Fprintln(ios.ErrOut, "stack stopped")
			return nil
		},
	}
	stateDirFlag(cmd, &dir)
	return cmd
}

func newCmdStackStatus(ios *IOStreams) *cobra.Command {
	var dir, output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each component's health (exit 1 when any is not healthy)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := checkFormat(output, []string{"text", "json"}); err != nil {
				return err
			}
			_, list, err := stack.Status(dir)
			if err != nil {
				return stackErr(err)
			}
			if output == "json" {
				if err := render.JSON(ios.Out, list); err != nil {
					return err
				}
			} else {
				for _, s := range list {
					status := s.Status
					if s.Reason != "" {
						status += " (" + s.Reason + ")"
					}
					if s.Detail != "" {
						status += " (" + s.Detail + ")"
					}
					fmt.Fprintf(ios.Out, "%s\t%s\tpid %d\t%s\n", s.Name, status, s.Pid, s.Health)
				}
			}
			for _, s := range list {
				if s.Status != "healthy" {
					return withCode(ExitFindings, errSilent)
				}
			}
			return nil
		},
	}
	stateDirFlag(cmd, &dir)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func newCmdStackLogs(ios *IOStreams) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "logs [component]",
		Short: "Print the logs of one component, or of all",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return stackErr(stack.Logs(dir, name, ios.Out))
		},
	}
	stateDirFlag(cmd, &dir)
	return cmd
}

func newCmdStackTraffic(ios *IOStreams) *cobra.Command {
	var dir string
	var events int
	var rate float64
	cmd := &cobra.Command{
		Use:   "traffic",
		Short: "Replay stargazer events from github-source",
		Example: `  ktrace stack traffic                 # every event that remains, as fast as possible
  ktrace stack traffic --events 50 --rate 10`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if events < 0 || rate < 0 {
				return usagef("--events and --rate must not be negative")
			}
			what := "every remaining event"
			if events > 0 {
				what = render.N(events, "event")
			}
			if _, err := stack.Load(dir); err != nil {
				return stackErr(err)
			}
			fmt.Fprintf(ios.ErrOut, "replaying %s...\n", what)
			res, err := stack.Traffic(cmd.Context(), dir, events, rate)
			if err != nil {
				return stackErr(err)
			}
			fmt.Fprintf(ios.Out, "sent %s, %d remain\n", render.N(res.Sent, "event"), res.Remaining)
			return nil
		},
	}
	stateDirFlag(cmd, &dir)
	cmd.Flags().IntVar(&events, "events", 0, "events to send (0: all that remain)")
	cmd.Flags().Float64Var(&rate, "rate", 0, "events per second (0: as fast as possible)")
	return cmd
}

func newCmdStackRestart(ios *IOStreams) *cobra.Command {
	var dir string
	var kill bool
	cmd := &cobra.Command{
		Use:   "restart COMPONENT",
		Short: "Stop one component and start it again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := stack.Restart(cmd.Context(), dir, args[0], kill, 0); err != nil {
				return stackErr(err)
			}
			fmt.Fprintf(ios.ErrOut, "%s restarted\n", args[0])
			return nil
		},
	}
	stateDirFlag(cmd, &dir)
	cmd.Flags().BoolVar(&kill, "kill", false, "stop it with SIGKILL instead of SIGTERM")
	return cmd
}

// newCmdStackServe runs one component in this process; `stack up` starts
// each component this way.
func newCmdStackServe(ios *IOStreams) *cobra.Command {
	var cfg services.Config
	var kafka KafkaOptions
	var brokers, propagation string
	var port int
	var live bool
	cmd := &cobra.Command{
		Use:    "serve COMPONENT",
		Short:  "Run one component of the stack in the foreground (used by stack up)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			if brokers != "" {
				k, err := kafka.connect(ios, brokers)
				if err != nil {
					return err
				}
				cfg.Kafka = k
			}
			cfg.Log = ios.ErrOut
			switch args[0] {
			case stack.Broker:
				return services.RunBroker(ctx, port, cfg.Health)
			case stack.Source:
				return services.RunSource(ctx, cfg, services.SourceOptions{Live: live, Token: ios.Getenv("GITHUB_TOKEN")})
			case stack.Flatten:
				return services.RunFlatten(ctx, cfg)
			case stack.Join:
				return services.RunJoin(ctx, cfg, services.JoinOptions{Propagation: propagation})
			case stack.API:
				return services.RunAPI(ctx, cfg)
			}
			return usagef("unknown component %q", args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&brokers, "brokers", "", "Kafka seed brokers")
	kafka.addFlags(f)
	f.StringVar(&cfg.OTLP, "otlp", "", "OTLP gRPC endpoint")
	f.StringVar(&cfg.Health, "health", "127.0.0.1:0", "health (and API) listen address")
	f.StringVar(&cfg.Instance, "instance", "", "service.instance.id")
	f.StringVar(&propagation, "propagation", "lost", "join propagation")
	f.Float64Var(&cfg.Sample, "sample", 0, "keep this share of traces (parent-based ratio sampler; 0: all)")
	f.IntVar(&port, "port", 9092, "broker port")
	f.BoolVar(&live, "live", false, "page the real GitHub API")
	return cmd
}
