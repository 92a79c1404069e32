package cli

import (
	"context"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ktrace-dev/ktrace/stream"
)

// StreamOptions are `ktrace stream`'s.
type StreamOptions struct {
	IO        *IOStreams
	Brokers   string
	Topic     string
	Group     string
	Encoding  string
	ByTraceID bool
	Listen    string
	Idle      time.Duration
	MaxAge    time.Duration // 0: stream.Config's default
	Window    time.Duration
	PairWait  time.Duration
	Retention time.Duration
	// StopTimeout, MaxSeries and Instance: stream.Config's.
	StopTimeout time.Duration
	MaxSeries   int
	Instance    string
	Kafka       KafkaOptions
	conn        stream.Kafka // made from Brokers and Kafka
}

// NewCmdStream builds `ktrace stream`.
func NewCmdStream(ios *IOStreams, runF func(context.Context, *StreamOptions) error) *cobra.Command {
	opts := &StreamOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "stream",
		Short: "Analyse the span topic on Kafka, as one member of a consumer group",
		Long: `Reads the topic a collector's kafka exporter writes spans to, as one
member of a Kafka consumer group: run as many as the topic has partitions,
and Kafka spreads the work. Spans are re-keyed by trace ID through
ktrace.GROUP.spans, gathered per partition until a trace has been quiet for
--trace-idle, analysed, and published every --window as partial results to
ktrace.GROUP.results, which graph, report, spof, docs, diff and check (without
--spec) read with --kafka and --group. Spans that come after their trace was
analysed are merged: their segment is read again and published again with
them at the next window; ktrace.GROUP.segments keeps which traces each segment
holds, so a member given a partition merges them too. What pairs across
traces (a consumer that lost its context and its producer, links,
pass-throughs) goes through ktrace.GROUP.pairs, keyed by where the two halves
meet, so that the member holding that key counts the hop. Undecodable records are counted,
logged once per partition, and skipped. /metrics (Prometheus, with the
OpenTelemetry servicegraph connector's metric names), /healthz and /readyz
are served on --listen. A cluster that takes TLS and SASL logins is reached
with --kafka-tls and --kafka-sasl; the password comes from
KTRACE_KAFKA_PASSWORD or --kafka-password-file and is never printed.`,
		Example: `  ktrace stream --kafka-brokers 127.0.0.1:9092 --topic otlp_spans --group ktrace --listen 127.0.0.1:9464
  ktrace report --broken --kafka 127.0.0.1:9092 --group ktrace --since 15m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Brokers == "" || opts.Topic == "" || opts.Group == "" {
				return usagef("stream needs --kafka-brokers, --topic and --group")
			}
			if err := stream.CheckTopic(opts.Topic); err != nil {
				return usagef("--topic: %v", err)
			}
			if err := stream.CheckGroup(opts.Group); err != nil {
				return usagef("--group: %v", err)
			}
			if !slices.Contains(stream.Encodings, opts.Encoding) {
				return usagef("--encoding %q: want %s", opts.Encoding, strings.Join(stream.Encodings, ", "))
			}
			if opts.Idle <= 0 || opts.Window <= 0 || opts.Retention <= 0 || opts.StopTimeout <= 0 || opts.PairWait < 0 {
				return usagef("--trace-idle, --window, --results-retention and --stop-timeout must be positive, --pair-wait not negative")
			}
			if opts.MaxAge < 0 || opts.MaxAge > 0 && opts.MaxAge <= opts.Idle {
				return usagef("--trace-max-age must be longer than --trace-idle (%s against %s)", opts.MaxAge, opts.Idle)
			}
			if opts.MaxSeries <= 0 {
				return usagef("--max-series must be positive")
			}
			conn, err := opts.Kafka.connect(ios, opts.Brokers)
			if err != nil {
				return err
			}
			opts.conn = conn
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return streamRun(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Brokers, "kafka-brokers", "", "Kafka brokers `host:port,...`")
	f.StringVar(&opts.Topic, "topic", "otlp_spans", "the span `topic` the collector writes")
	f.StringVar(&opts.Group, "group", "", "consumer group `name`; it also names the internal topics, so only letters, digits, '.', '_' and '-'")
	f.StringVar(&opts.Encoding, "encoding", stream.EncodingProto, "the span topic's encoding: otlp_proto, otlp_json, or a Jaeger span a record (keyed by trace: with --partitioned-by-trace), jaeger_proto or jaeger_json")
	f.BoolVar(&opts.ByTraceID, "partitioned-by-trace", false, "the span topic is partitioned by trace ID (the exporter's partition_traces_by_id): read it directly, without re-keying")
	f.StringVar(&opts.Listen, "listen", "", "serve /metrics, /healthz and /readyz on `host:port` (none by default)")
	f.DurationVar(&opts.Idle, "trace-idle", 5*time.Second, "a trace is complete once quiet this long, by the clock or by its partition's record timestamps")
	f.DurationVar(&opts.MaxAge, "trace-max-age", 0, "a trace whose spans have come for this long is analysed as it is, and its later spans as a trace of their own (0: a minute, or twice --trace-idle if longer)")
	f.DurationVar(&opts.Window, "window", time.Minute, "publish partial results this often")
	f.DurationVar(&opts.PairWait, "pair-wait", 0, "count a hop across traces once its halves' segments had this long to be published (0: a window and the trace-idle time)")
	f.IntVar(&opts.MaxSeries, "max-series", 10000, "at most this many label sets per metric whose labels come from the traces (services, topics, breaks); past it, counted under one set labelled _overflow")
	f.StringVar(&opts.Instance, "instance", "", "this member's `name`, its own in the group: it names the member's transactions, so a member started again under it takes over what its earlier self left (default host-pid)")
	f.DurationVar(&opts.StopTimeout, "stop-timeout", 20*time.Second, "once asked to stop (SIGTERM, Ctrl-C), publish what is held within this; what is not is read again by the next member")
	f.DurationVar(&opts.Retention, "results-retention", 7*24*time.Hour, "how long ktrace.GROUP.results keeps results (set when it is made)")
	opts.Kafka.addFlags(f)
	return cmd
}

func streamRun(ctx context.Context, opts *StreamOptions) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := stream.Run(ctx, stream.Config{Kafka: opts.conn, Topic: opts.Topic, Group: opts.Group,
		Encoding: opts.Encoding, ByTraceID: opts.ByTraceID, TraceIdle: opts.Idle, TraceMaxAge: opts.MaxAge, Window: opts.Window, Listen: opts.Listen, Log: opts.IO.ErrOut,
		ResultsRetention: opts.Retention, PairWait: opts.PairWait, StopTimeout: opts.StopTimeout, MaxSeries: opts.MaxSeries, Instance: opts.Instance})
	if err != nil && ctx.Err() == nil {
		return withCode(ExitBackend, aclHint(err, "member"))
	}
	return nil
}
