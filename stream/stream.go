// Package stream is `ktrace stream`: ktrace as members of one Kafka
// consumer group reading the span topic a collector's kafka exporter
// writes, each instance analysing its share and publishing partial results
// that any reader merges into the whole graph and report.
//
// The work is spread by Kafka alone: instances never talk to each other.
//
//	span topic (any partitioning) ──> decode ──> ktrace.GROUP.spans, keyed by trace ID
//	ktrace.GROUP.spans ──> gather each trace on its partition until idle
//	    ──> the engine, per segment of a partition ──> ktrace.GROUP.results
//	ktrace.GROUP.results ──> ReadResults: the partials merged (engine.Partial)
//
// (With Config.ByTraceID, the span topic is already partitioned by trace
// ID and is gathered directly.)
//
// Repartitioning by trace ID brings a trace's spans to one partition,
// whatever partition the exporter wrote them to (by default it does not
// key them by trace). A trace is complete once none of its spans has come
// for the idle time. A partition's complete traces are analysed as they
// complete, into the partial (the engine's mergeable result) of the
// segment being gathered, so that a member holds only open traces as
// spans; the partial is published once a window, keyed by the
// partition and the offset the segment starts at, in a transaction with
// the commit of the offset after it: a trace is published only when every
// record before its last one is covered, so a member that takes the
// partition over reads no published trace again. A reader keeps the last
// value of every key: that is how late spans (come after their trace was
// analysed) are merged: their trace's segment is read again from the
// topic and published again with them. Which traces each segment holds is
// written to ktrace.GROUP.segments with it (SegmentsTopic), so that a
// partition's next owner knows them.
//
// The repartitioning is Kafka's consume-transform-produce in transactions:
// the span records written and the span topic's offsets committed
// together (group GROUP), and the spans topic read committed only (group
// SpansGroup), so a member killed half way through a batch leaves no
// record written twice.
//
// Pairing across traces (a consumer's producer in another trace, links,
// pass-throughs) happens twice. Where the partials merge, for the results:
// a partial carries what pairing needs. And for the members' metrics,
// through ktrace.GROUP.pairs (PairsTopic): with each segment, a member
// writes what of it pairs across traces, a part per pairing key on that
// key's partition, in the same transaction; the members of group
// PairsGroup judge each part once the parts it may pair with had time to
// come (Config.PairWait) and count what it adds, so that the members'
// /metrics, summed, count what the merged results count.
package stream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/ktrace-dev/ktrace/internal/engine"
	sj "github.com/ktrace-dev/ktrace/source/jaeger"
	"github.com/ktrace-dev/ktrace/trace"
)

// Encodings of the span topic.
const (
	EncodingProto = "otlp_proto"
	EncodingJSON  = "otlp_json"
	// A Jaeger span a record, keyed by its trace ID: the kafka exporter's
	// jaeger_proto and jaeger_json, and Jaeger v1's collector's.
	EncodingJaegerProto = "jaeger_proto"
	EncodingJaegerJSON  = "jaeger_json"
)

// Encodings are the span topic's encodings a member reads.
var Encodings = []string{EncodingProto, EncodingJSON, EncodingJaegerProto, EncodingJaegerJSON}

// Kafka is where the brokers are, and how to reach them.
type Kafka struct {
	Brokers []string
	// TLS, when not nil, encrypts every connection (and, with
	// certificates, authenticates the client).
	TLS *tls.Config
	// SASL, when not nil, authenticates every connection.
	SASL sasl.Mechanism
}

// Opts are the client options that reach k (seed brokers, TLS, SASL),
// then extra.
func (k Kafka) Opts(extra ...kgo.Opt) []kgo.Opt {
	opts := append([]kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, k.Auth()...)
	return append(opts, extra...)
}

// Auth are the client options of k's TLS and SASL: none when it has
// neither.
func (k Kafka) Auth() []kgo.Opt {
	var opts []kgo.Opt
	if k.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(k.TLS.Clone()))
	}
	if k.SASL != nil {
		opts = append(opts, kgo.SASL(k.SASL))
	}
	return opts
}

// Unreachable says Kafka at k did not answer: err, with a hint where the
// broker hung up on a client that logs in (a broker may refuse a SASL
// login so).
func (k Kafka) Unreachable(err error) error {
	if k.SASL != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
		return fmt.Errorf("cannot reach Kafka at %s: %w (the broker hung up on the SASL login: is the user or password wrong?)", strings.Join(k.Brokers, ","), err)
	}
	return fmt.Errorf("cannot reach Kafka at %s: %w", strings.Join(k.Brokers, ","), err)
}

// ReadPasswordFile reads a SASL password from a file: its first line (of
// at most its first 64 KiB), which must not be empty. Errors name the
// file, never its content.
func ReadPasswordFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if line = strings.TrimSuffix(line, "\r"); line == "" {
		return "", fmt.Errorf("%s: its first line is empty", path)
	}
	return line, nil
}

// Config configures a member.
type Config struct {
	Kafka Kafka
	// Topic is the span topic; Group the consumer group, which also names
	// the internal topics (SpansTopic, ResultsTopic).
	Topic, Group string
	// Encoding is one of Encodings; default EncodingProto.
	Encoding string
	// ByTraceID says the span topic is partitioned by trace ID (the
	// exporter's partition_traces_by_id): members gather it directly, in
	// group Group, with no re-keying and no spans topic.
	ByTraceID bool
	// TraceIdle: a trace is complete once none of its spans came for this
	// long (default 5s), by the wall clock or by the timestamps of its
	// partition's records, whichever says so first (a member reading a
	// backlog holds this much of it). Window: how often partials are
	// published (default 1m).
	TraceIdle, Window time.Duration
	// TraceMaxAge: a trace whose spans have been coming for this long is
	// analysed as it is, before it is quiet, and its later spans as a
	// trace of their own (default a minute): until a trace is published,
	// so is none whose records come after its first, and one that never
	// stops (a span every second under one trace ID) would hold its
	// partition's results back, and its spans in memory, for ever.
	TraceMaxAge time.Duration
	// PairWait: a member judges what pairs across traces (a hop whose
	// producer and consumer are in different traces) once the segments of
	// both halves had this long to be published (default a window and
	// the trace-idle time), and every partition gathered published what
	// the span topic was given up to the wait, less a window and the
	// trace-idle time, after the part (by default, up to the part). Raise
	// it where exporters send one half of a hop long after the other.
	PairWait time.Duration
	// SkewTolerance is the break analysis' (default 10ms).
	SkewTolerance time.Duration
	// ResultsRetention is how long the results topic keeps a result
	// (default 7 days), set when the topic is made: every segment has a
	// key of its own, so compaction alone would keep them all.
	ResultsRetention time.Duration
	// MetadataMaxAge is how often a member looks for partitions added to
	// the topics it reads (default 5m, as Kafka's clients).
	MetadataMaxAge time.Duration
	// StopTimeout is how long a member asked to stop has to publish what
	// it holds (default 20s); a partition it cannot publish in that time
	// is read again by its next owner, from its committed offset.
	StopTimeout time.Duration
	// Listen serves /metrics, /healthz and /readyz there ("": not).
	Listen string
	// MaxSeries bounds the label sets of each metric whose labels come
	// from the traces (default 10,000): past it, observations are counted
	// under one overflow set.
	MaxSeries int
	// Instance names the member in its log and its transactional IDs:
	// each member of a group needs its own, and a member started again
	// under the same name fences its earlier self, so that what that one
	// left open is aborted at once (default host-pid).
	Instance string
	// Log receives progress and problems (nil: stderr).
	Log io.Writer
}

// SpansTopic is the group's repartitioned span topic.
func SpansTopic(group string) string { return "ktrace." + group + ".spans" }

// SpansGroup is the consumer group, beside the group itself, whose members
// gather the spans topic's traces.
func SpansGroup(group string) string { return "ktrace." + group + ".spans" }

// ResultsTopic is the group's topic of partial results (compacted).
func ResultsTopic(group string) string { return "ktrace." + group + ".results" }

// metadataAge and metadataMinAge are how often a group's client looks for
// partitions added (MetadataMaxAge), and at most how often it may (the
// client's 5s, or less when MetadataMaxAge is).
func (c *Config) metadataAge() kgo.Opt { return kgo.MetadataMaxAge(c.MetadataMaxAge) }
func (c *Config) metadataMinAge() kgo.Opt {
	return kgo.MetadataMinAge(min(c.MetadataMaxAge, 5*time.Second))
}

func (c *Config) defaults() error {
	switch {
	case len(c.Kafka.Brokers) == 0:
		return errors.New("no Kafka brokers")
	case c.Topic == "":
		return errors.New("no span topic")
	}
	if err := CheckTopic(c.Topic); err != nil {
		return err
	}
	if err := CheckGroup(c.Group); err != nil {
		return err
	}
	if c.Encoding == "" {
		c.Encoding = EncodingProto
	}
	if !slices.Contains(Encodings, c.Encoding) {
		return fmt.Errorf("encoding %q: want %s", c.Encoding, strings.Join(Encodings, ", "))
	}
	if c.TraceIdle <= 0 {
		c.TraceIdle = 5 * time.Second
	}
	if c.Window <= 0 {
		c.Window = time.Minute
	}
	if c.TraceMaxAge <= 0 {
		c.TraceMaxAge = max(time.Minute, 2*c.TraceIdle)
	}
	if c.TraceMaxAge <= c.TraceIdle {
		return fmt.Errorf("trace max age %s: must be longer than the trace-idle time %s", c.TraceMaxAge, c.TraceIdle)
	}
	if c.PairWait <= 0 {
		c.PairWait = c.Window + c.TraceIdle
	}
	if c.SkewTolerance == 0 {
		c.SkewTolerance = 10 * time.Millisecond
	}
	if c.ResultsRetention <= 0 {
		c.ResultsRetention = 7 * 24 * time.Hour
	}
	if c.MetadataMaxAge <= 0 {
		c.MetadataMaxAge = 5 * time.Minute
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 20 * time.Second
	}
	if c.MaxSeries <= 0 {
		c.MaxSeries = 10000
	}
	if c.Instance == "" {
		host, _ := os.Hostname()
		c.Instance = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.Log == nil {
		c.Log = os.Stderr
	}
	return nil
}

// member is one running member of the group.
type member struct {
	cfg Config
	log *log.Logger
	// sess gathers the spans topic and writes results, in transactions
	// with the commits of its offsets (set under mu: the pings read it);
	sess           *kgo.GroupTransactSession
	gatherRestarts restarts
	spans          string // SpansTopic (with ByTraceID, the span topic)
	// gatherGroup is the group that gathers spans: SpansGroup (with
	// ByTraceID, Group).
	gatherGroup string
	// Decoding state: the span topic's (read by repartition) and the
	// spans topic's (read by gather), each used by one goroutine.
	inRes, res   trace.Resources
	inStrs, strs trace.Strings
	// inJaeger and jaeger decode Jaeger's encodings; inSplit and split
	// cut records per trace; otlp decodes the traces gathered, when they
	// are analysed (with res and strs).
	inJaeger, jaeger sj.SpanDecoder
	inSplit, split   engine.OTLPSplitter
	otlp             engine.OTLPDecoder

	mu         sync.Mutex
	assemblers map[int32]*assembler // by partition of the spans topic
	// owned are the partitions of the spans topic the group gave this
	// member and has not taken back: records a poll brought for one
	// taken back meanwhile are left to its new owner.
	owned    map[int32]bool
	poisoned map[string]bool // topic/partition already logged
	// said is what the counters said when the log last told of them
	// (progress).
	said    tally
	metrics *metrics
	// Ready while Kafka answers: the last polls (of the span topic and of
	// the spans topic) fetched without error and the last ping (once a
	// second) was answered.
	fetchedIn, fetched, reachable atomic.Bool
	// restoringSegments counts the assignments reading the segments
	// topic back, restoringPairs those of the pairs topic reading the
	// parts judged before: not ready meanwhile.
	restoringSegments, restoringPairs atomic.Int32
	// overdueSaid: parts judged overdue were logged (once); cutOpenSaid: a
	// trace cut while open (once).
	overdueSaid, cutOpenSaid atomic.Bool
	// pairKeys is how many partitions the pairs topic has: a part each;
	// gatheredParts how many the topic gathered has (it grows when
	// partitions are added: grown).
	pairKeys      int
	gatheredParts atomic.Int32
	// spanRecordMax is the largest record the re-keying writes: the spans
	// topic's limit (made by an earlier member, it may be Kafka's
	// default), less room for its batch.
	spanRecordMax int
	// valueMax is the largest value the member writes in one record of
	// the results, segments and pairs topics, and batchMax the largest
	// batch: under the smallest limit of the three (cut).
	valueMax, batchMax int
	// known is what the member knows of the whole set (engine.Facts),
	// learnt from all it counted.
	knownMu   sync.Mutex
	known     *engine.Partial
	knownFull bool // known reached maxKnown edges (learn)
	maxKnown  int  // maxKnownEdges
}

// Run runs a member until ctx ends, then publishes what it may and
// leaves the group.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	m := &member{cfg: cfg, log: log.New(cfg.Log, "ktrace stream "+cfg.Instance+" ", log.LstdFlags|log.Lmsgprefix),
		spans: SpansTopic(cfg.Group), assemblers: map[int32]*assembler{}, owned: map[int32]bool{}, poisoned: map[string]bool{}}
	m.metrics, m.maxKnown = newMetrics(cfg.MaxSeries, m.log, func() bool { return m.notReady() == "" }), maxKnownEdges
	m.gatherGroup = SpansGroup(cfg.Group)
	if cfg.ByTraceID {
		m.spans, m.gatherGroup = cfg.Topic, cfg.Group
	}
	if err := m.ensureTopics(ctx); err != nil {
		return err
	}
	m.reachable.Store(true) // it answered ensureTopics
	// Listening first: an address taken fails the member before it joins
	// a group (a client left in it would hold partitions it never reads).
	if cfg.Listen != "" {
		stop, err := m.serve(cfg.Listen)
		if err != nil {
			return err
		}
		defer stop()
	}
	sess, err := m.gathering()
	if err != nil {
		return err
	}
	m.setSession(sess)
	m.log.Printf("reading %s (%s) in group %s", cfg.Topic, cfg.Encoding, cfg.Group)
	ctx, stopAll := context.WithCancel(ctx)
	defer stopAll()
	var failed error
	var failOnce sync.Once
	fail := func(err error) { failOnce.Do(func() { failed = err; stopAll() }) }
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := m.judging(ctx); err != nil {
			fail(err)
		}
	})
	if !cfg.ByTraceID {
		wg.Go(func() {
			if err := m.repartition(ctx); err != nil {
				fail(err)
			}
		})
	} else {
		m.fetchedIn.Store(true) // nothing to re-key
	}
	// One loop: poll (for at most a tick), gather, complete the idle
	// traces, publish when a window has passed.
	tick := min(cfg.TraceIdle/2, time.Second)
	wg.Go(func() { m.watch(ctx) })
	lastPublish, asked := time.Now(), time.Time{}
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, tick)
		fs := m.sess.PollFetches(pctx)
		cancel()
		if fs.IsClientClosed() {
			break
		}
		m.gather(fs)
		now := time.Now()
		if cfg.ByTraceID && now.Sub(asked) >= tick {
			asked = now
			m.askEnds(ctx, tick)
		}
		m.completeIdle(now)
		err := m.foldAll(ctx)
		if err == nil && now.Sub(lastPublish) >= cfg.Window {
			lastPublish = now
			if _, err = m.publishAll(ctx); err == nil {
				m.progress()
			}
		}
		if err != nil && ctx.Err() == nil {
			if err := m.restart(ctx, err); err != nil {
				fail(err)
			}
		}
	}
	wg.Wait()
	if failed != nil {
		m.sess.Close()
		return failed
	}
	return m.stop()
}

// progress says in the log, once a window, what the member did since it
// last said (nothing when it did nothing), so that a member watched by
// hand shows that it works.
func (m *member) progress() {
	now, was := m.metrics.tally(), m.said
	if now == was {
		return
	}
	m.said = now
	m.log.Printf("since the last window: %d spans read, %d traces published, %d late spans, %d undecodable records; holding %s, %d spans pending",
		now.spans-was.spans, now.traces-was.traces, now.late-was.late, now.undecodable-was.undecodable, m.holding(), value(m.metrics.pending))
}

// restarts counts a client's restarts after transactions that could not
// end (Kafka fenced them, or failed them).
type restarts struct {
	n    int
	last time.Time
}

// again says whether to start again, after a second: not after the fifth
// failure in a row within a minute, nor once ctx has ended.
func (r *restarts) again(ctx context.Context) bool {
	if time.Since(r.last) > time.Minute {
		r.n = 0
	}
	r.n++
	r.last = time.Now()
	if r.n > 5 {
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Second):
		return true
	}
}

// restart starts the gathering again with a new session after a
// transaction could not end: the member leaves the group and joins again,
// and reads every partition it is given from its committed offset.
func (m *member) restart(ctx context.Context, why error) error {
	why = m.fenced(why)
	m.log.Printf("a transaction of results could not end (%v): starting the gathering again, from the committed offsets", why)
	m.sess.Close()
	m.mu.Lock()
	m.assemblers = map[int32]*assembler{}
	m.mu.Unlock()
	if !m.gatherRestarts.again(ctx) {
		if ctx.Err() != nil {
			return nil
		}
		return why
	}
	sess, err := m.gathering()
	if err != nil {
		return err
	}
	m.setSession(sess)
	return nil
}

// fenced adds to err, when Kafka fenced the transaction, the likely cause:
// another member under the same instance name, which names the
// transactional IDs (a member started again under its name fences its
// earlier self, as it should).
func (m *member) fenced(err error) error {
	if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) {
		return fmt.Errorf("%w: fenced by another member under the instance name %q? give each member its own --instance", err, m.cfg.Instance)
	}
	return err
}

// setSession makes sess the gathering session.
func (m *member) setSession(sess *kgo.GroupTransactSession) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sess = sess
}

// gathering is the client that gathers the spans topic and writes the
// results: in group SpansGroup (or, with ByTraceID, the span topic itself
// in group Group), committed records only, results written in
// transactions with the commits of the offsets after them.
func (m *member) gathering() (*kgo.GroupTransactSession, error) {
	cfg := m.cfg
	return kgo.NewGroupTransactSession(cfg.Kafka.Opts(
		kgo.ConsumerGroup(m.gatherGroup),
		kgo.TransactionalID("ktrace-stream-"+cfg.Group+"-"+cfg.Instance+"-results"),
		// A member killed in a transaction holds readers of the results
		// back until it times out.
		kgo.TransactionTimeout(20*time.Second),
		kgo.SessionTimeout(10*time.Second), // a member that died gives its partitions up within seconds
		kgo.RebalanceTimeout(15*time.Second),
		// Rebalances are not held back until a poll's records are
		// handled (BlockRebalanceOnPoll): a transaction's end waits for
		// the group, which would wait for it. Instead the session aborts
		// the transaction after a rebalance, and every partition is read
		// again from what was committed.
		kgo.ConsumeTopics(m.spans),
		cfg.metadataAge(), cfg.metadataMinAge(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transactions' ends come as records too, so that a partition's
		// offsets are all seen: restoring ends at the last stable offset.
		kgo.KeepControlRecords(),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.ProducerBatchMaxBytes(int32(m.batchMax)),
		internalCompression(),
		kgo.RecordPartitioner(partitioner(SegmentsTopic(cfg.Group), PairsTopic(cfg.Group))),
		kgo.OnPartitionsAssigned(m.assigned),
		kgo.OnPartitionsRevoked(m.forget),
		kgo.OnPartitionsLost(m.forget),
	)...)
}

// stop publishes what may be published and commits, before leaving,
// within StopTimeout; it says which partitions it left to their next
// owner, which reads them again from their committed offsets.
func (m *member) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.StopTimeout)
	defer cancel()
	m.completeIdle(time.Now())
	left, err := m.publishAll(ctx)
	if len(left) > 0 {
		m.log.Printf("stopping: partitions %s of %s not published: their next owner reads them again from the committed offsets", joinInts(left), m.spans)
	}
	m.sess.Close() // leaves the group
	return err
}

// fetchErrors logs a poll's errors, and says whether there were none.
func (m *member) fetchErrors(fs kgo.Fetches) bool {
	healthy := true
	fs.EachError(func(topic string, p int32, err error) {
		switch {
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		case topic == "": // not of one partition: the group's, the client's
			m.log.Printf("polling: %v", err)
			healthy = false
		default:
			m.log.Printf("fetching %s/%d: %v", topic, p, err)
			healthy = false
		}
	})
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if n := len(p.Records); n > 0 {
			m.metrics.lag.WithLabelValues(p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(max(0, p.HighWatermark-p.Records[n-1].Offset-1)))
		}
	})
	return healthy
}

// watch asks Kafka for its metadata once a second until ctx ends, and
// says when the answer stops or comes back, and when the member has not
// been ready for long (readiness).
func (m *member) watch(ctx context.Context) {
	var ready readiness
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		m.mu.Lock()
		cl := m.sess.Client()
		m.mu.Unlock()
		err := cl.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		was := m.reachable.Swap(err == nil)
		switch {
		case err != nil && was:
			m.log.Printf("Kafka at %v does not answer: %v (not ready until it does)", m.cfg.Kafka.Brokers, err)
		case err == nil && !was:
			m.log.Printf("Kafka at %v answers", m.cfg.Kafka.Brokers)
		}
		if say := ready.note(time.Now(), m.notReady()); say != "" {
			m.log.Print(say)
		}
	}
}
