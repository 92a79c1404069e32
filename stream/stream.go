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
// partition and the offset the segment starts at, and the offset after it
// is committed: a trace is published only when every record before its
// last one is covered, so a member that takes the partition over reads no
// published trace again; a member that stopped between publishing and
// committing is overwritten by its successor's segment of the same key,
// and a reader keeps the last value of every key.
//
// The repartitioning is Kafka's consume-transform-produce in transactions:
// the span records written and the span topic's offsets committed
// together (group GROUP), and the spans topic read committed only (group
// SpansGroup), so a member killed half way through a batch leaves no
// record written twice.
//
// Pairing across traces (a consumer's producer in another trace, links)
// happens where the partials merge: a partial carries what pairing needs.
package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/trace"
)

// Encodings of the span topic.
const (
	EncodingProto = "otlp_proto"
	EncodingJSON  = "otlp_json"
)

// Config configures a member.
type Config struct {
	Brokers []string
	// Topic is the span topic; Group the consumer group, which also names
	// the internal topics (SpansTopic, ResultsTopic).
	Topic, Group string
	// Encoding is EncodingProto (default) or EncodingJSON.
	Encoding string
	// ByTraceID says the span topic is partitioned by trace ID (the
	// exporter's partition_traces_by_id): members gather it directly, in
	// group Group, with no re-keying and no spans topic.
	ByTraceID bool
	// TraceIdle: a trace is complete once none of its spans came for this
	// long (default 5s). Window: how often partials are published
	// (default 1m).
	TraceIdle, Window time.Duration
	// SkewTolerance is the break analysis' (default 10ms).
	SkewTolerance time.Duration
	// Listen serves /metrics, /healthz and /readyz there ("": not).
	Listen string
	// Instance names the member in its log (default host-pid).
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

func (c *Config) defaults() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("no Kafka brokers")
	case c.Topic == "":
		return errors.New("no span topic")
	case c.Group == "":
		return errors.New("no consumer group")
	}
	if c.Encoding == "" {
		c.Encoding = EncodingProto
	}
	if c.Encoding != EncodingProto && c.Encoding != EncodingJSON {
		return fmt.Errorf("encoding %q: want %s or %s", c.Encoding, EncodingProto, EncodingJSON)
	}
	if c.TraceIdle <= 0 {
		c.TraceIdle = 5 * time.Second
	}
	if c.Window <= 0 {
		c.Window = time.Minute
	}
	if c.SkewTolerance == 0 {
		c.SkewTolerance = 10 * time.Millisecond
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
	cfg   Config
	log   *log.Logger
	cl    *kgo.Client
	spans string // SpansTopic (with ByTraceID, the span topic)
	// gatherGroup is the group that gathers spans: SpansGroup (with
	// ByTraceID, Group).
	gatherGroup string
	// Decoding state: the span topic's (read by repartition) and the
	// spans topic's (read by gather), each used by one goroutine.
	inRes, res   trace.Resources
	inStrs, strs trace.Strings

	mu         sync.Mutex
	assemblers map[int32]*assembler // by partition of the spans topic
	poisoned   map[string]bool      // topic/partition already logged
	metrics    *metrics
	// Ready while Kafka answers: the last polls (of the span topic and of
	// the spans topic) fetched without error and the last ping (once a
	// second) was answered.
	fetchedIn, fetched, reachable atomic.Bool
}

// Run runs a member until ctx ends, then publishes what it may and
// leaves the group.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	m := &member{cfg: cfg, log: log.New(cfg.Log, "ktrace stream "+cfg.Instance+" ", log.LstdFlags|log.Lmsgprefix),
		spans: SpansTopic(cfg.Group), assemblers: map[int32]*assembler{}, poisoned: map[string]bool{}, metrics: newMetrics()}
	m.gatherGroup = SpansGroup(cfg.Group)
	if cfg.ByTraceID {
		m.spans, m.gatherGroup = cfg.Topic, cfg.Group
	}
	if err := m.ensureTopics(ctx); err != nil {
		return err
	}
	m.reachable.Store(true) // it answered ensureTopics
	var in *kgo.GroupTransactSession
	if !cfg.ByTraceID {
		var err error
		if in, err = m.rekeying(); err != nil {
			return err
		}
		defer in.Close()
	}
	// The gathering: the spans topic in group SpansGroup (or the span
	// topic itself in group Group), committed records only.
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(m.gatherGroup),
		kgo.SessionTimeout(10*time.Second), // a member that died gives its partitions up within seconds
		kgo.RebalanceTimeout(15*time.Second),
		// Rebalances wait until a poll's records are handled: a partition
		// is never handed over while its records are being gathered.
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeTopics(m.spans),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ProducerBatchMaxBytes(resultMaxBytes),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.OnPartitionsAssigned(m.assigned),
		kgo.OnPartitionsRevoked(m.revoked),
		kgo.OnPartitionsLost(m.lost),
	)
	if err != nil {
		return err
	}
	m.cl = cl
	defer cl.Close()
	if cfg.Listen != "" {
		stop, err := m.serve(cfg.Listen)
		if err != nil {
			return err
		}
		defer stop()
	}
	m.log.Printf("reading %s (%s) in group %s", cfg.Topic, cfg.Encoding, cfg.Group)
	ctx, stopAll := context.WithCancel(ctx)
	defer stopAll()
	var failed error
	var wg sync.WaitGroup
	if in != nil {
		wg.Go(func() {
			if err := m.repartition(ctx, in); err != nil {
				failed = err
				stopAll()
			}
			in.Close() // leaves the group: its partitions go to the others now
		})
	} else {
		m.fetchedIn.Store(true) // nothing to re-key
	}
	// One loop: poll (for at most a tick), gather, complete the idle
	// traces, publish when a window has passed, and only then let a
	// rebalance happen (its callbacks run here, between polls).
	tick := min(cfg.TraceIdle/2, time.Second)
	wg.Go(func() { m.watch(ctx) })
	lastPublish := time.Now()
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, tick)
		fs := cl.PollFetches(pctx)
		cancel()
		if fs.IsClientClosed() {
			break
		}
		m.gather(fs)
		now := time.Now()
		m.completeIdle(now)
		m.foldAll(ctx)
		if now.Sub(lastPublish) >= cfg.Window {
			lastPublish = now
			m.publishAll(ctx)
		}
		cl.AllowRebalance()
	}
	wg.Wait()
	if err := m.stop(); err != nil {
		return err
	}
	return failed
}

// stop publishes what may be published and commits, before leaving.
func (m *member) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.completeIdle(time.Now())
	m.publishAll(ctx)
	m.cl.LeaveGroup()
	return nil
}

// ensureTopics creates the internal topics when missing: the spans topic
// with as many partitions as the span topic, the results topic compacted.
func (m *member) ensureTopics(ctx context.Context) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(m.cfg.Brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	details, err := adm.ListTopics(ctx, m.cfg.Topic)
	if err != nil {
		return fmt.Errorf("cannot reach Kafka at %v: %w", m.cfg.Brokers, err)
	}
	td, ok := details[m.cfg.Topic]
	if !ok || td.Err != nil {
		return fmt.Errorf("span topic %s: not found", m.cfg.Topic)
	}
	parts := int32(len(td.Partitions))
	compact := "compact"
	maxBytes := strconv.Itoa(resultMaxBytes)
	topics := map[string]map[string]*string{ResultsTopic(m.cfg.Group): {"cleanup.policy": &compact, "max.message.bytes": &maxBytes}}
	if !m.cfg.ByTraceID {
		topics[m.spans] = nil
	}
	for topic, cfg := range topics {
		n := parts
		if topic != m.spans {
			n = 1
		}
		resp, err := adm.CreateTopics(ctx, n, -1, cfg, topic)
		if err != nil {
			return err
		}
		if r := resp[topic]; r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating %s: %w", topic, r.Err)
		}
	}
	return nil
}

// rekeying is the client that re-keys the span topic: in group Group,
// reading and writing in transactions. The transactional ID is the
// member's: a member started again under its name fences its earlier self.
func (m *member) rekeying() (*kgo.GroupTransactSession, error) {
	cfg := m.cfg
	return kgo.NewGroupTransactSession(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.TransactionalID("ktrace-stream-"+cfg.Group+"-"+cfg.Instance),
		// A member killed in a transaction holds readers of the spans
		// topic back until the transaction times out.
		kgo.TransactionTimeout(10*time.Second),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.SessionTimeout(10*time.Second),
		kgo.RebalanceTimeout(15*time.Second),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // a trace's records on one partition
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	)
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

// repartition reads the span topic until ctx ends: each poll's records
// decoded and written to the spans topic keyed by trace ID, in one
// transaction with the commit of their offsets. A transaction that
// aborts (a rebalance took the partitions meanwhile) is read again; one
// that cannot end (the member was fenced, or Kafka failed it) ends the
// member with its error.
func (m *member) repartition(ctx context.Context, s *kgo.GroupTransactSession) error {
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := s.PollFetches(pctx)
		cancel()
		if fs.IsClientClosed() {
			return nil
		}
		// A member that holds no partition has nothing to do, and is
		// ready to.
		m.fetchedIn.Store(m.fetchErrors(fs))
		if fs.NumRecords() == 0 {
			continue
		}
		var out []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			if m.cfg.Encoding == EncodingProto {
				// Cut per trace as the spans came, without decoding
				// them: a bad span fails in its trace's piece, which
				// the gathering counts and skips.
				if pieces, ok := engine.SplitOTLP(r.Value); ok {
					for _, p := range pieces {
						m.metrics.spansIn.Add(float64(p.Spans))
						out = append(out, &kgo.Record{Topic: m.spans, Key: []byte(p.ID.String()), Value: p.Data})
					}
					return
				}
			}
			frags, err := decode(r.Value, m.cfg.Encoding, &m.inRes, &m.inStrs)
			if err != nil {
				m.poison(r, err)
				return
			}
			m.metrics.spansIn.Add(float64(countSpans(frags)))
			for _, f := range frags {
				data, err := file.MarshalOTLPProto([]trace.Trace{f})
				if err != nil {
					m.poison(r, err)
					continue
				}
				out = append(out, &kgo.Record{Topic: m.spans, Key: []byte(f.ID.String()), Value: data})
			}
		})
		if err := s.Begin(); err != nil {
			return fmt.Errorf("beginning a transaction: %w", err)
		}
		for _, r := range out {
			s.Produce(ctx, r, func(_ *kgo.Record, err error) {
				if err != nil && ctx.Err() == nil {
					m.log.Printf("writing %s: %v (the transaction aborts; its span records are read again)", m.spans, err)
				}
			})
		}
		committed, err := s.End(ctx, kgo.TryCommit)
		switch {
		case err != nil && ctx.Err() == nil:
			return fmt.Errorf("ending a transaction: %w", err)
		case err == nil && !committed:
			m.log.Printf("a transaction aborted (the group rebalanced): its span records are read again")
		}
	}
	return nil
}

// gather hands a poll of the spans topic (with ByTraceID, of the span
// topic) to its partitions' assemblers.
func (m *member) gather(fs kgo.Fetches) {
	m.fetched.Store(m.fetchErrors(fs))
	now := time.Now()
	encoding := EncodingProto
	if m.cfg.ByTraceID {
		encoding = m.cfg.Encoding
	}
	fs.EachRecord(func(r *kgo.Record) {
		frags, err := decode(r.Value, encoding, &m.res, &m.strs)
		if err != nil {
			m.poison(r, err)
			frags = nil
		}
		if m.cfg.ByTraceID {
			m.metrics.spansIn.Add(float64(countSpans(frags)))
		}
		m.mu.Lock()
		a := m.assemblers[r.Partition]
		if a == nil { // not assigned through the callback (yet): start here
			a = newAssembler(r.Offset)
			m.assemblers[r.Partition] = a
		}
		if late := a.add(r.Offset, frags, now); late > 0 {
			m.metrics.late.Add(float64(late))
		}
		m.mu.Unlock()
	})
}

// watch asks Kafka for its metadata once a second until ctx ends, and
// says when the answer stops or comes back.
func (m *member) watch(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := m.cl.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		was := m.reachable.Swap(err == nil)
		switch {
		case err != nil && was:
			m.log.Printf("Kafka at %v does not answer: %v (not ready until it does)", m.cfg.Brokers, err)
		case err == nil && !was:
			m.log.Printf("Kafka at %v answers", m.cfg.Brokers)
		}
	}
}

// decode decodes a record of the span topic (or, as EncodingProto, of the
// spans topic) with the decoding state of the goroutine that reads it.
func decode(value []byte, encoding string, res *trace.Resources, strs *trace.Strings) ([]trace.Trace, error) {
	if encoding == EncodingJSON {
		var out []trace.Trace
		for t, err := range file.Traces(bytes.NewReader(value), "span record", res) {
			if err != nil {
				return nil, err
			}
			out = append(out, *t)
		}
		return out, nil
	}
	if ts, ok := engine.DecodeOTLP(value, res, strs); ok {
		return ts, nil
	}
	return file.OTLPProto(value, res, strs) // what the fast path declines, and why it is bad
}

func countSpans(ts []trace.Trace) int {
	n := 0
	for i := range ts {
		n += len(ts[i].Spans)
	}
	return n
}

// poison counts an undecodable record, logs it once per partition, and
// skips it.
func (m *member) poison(r *kgo.Record, err error) {
	m.metrics.undecodable.Inc()
	key := fmt.Sprintf("%s/%d", r.Topic, r.Partition)
	m.mu.Lock()
	first := !m.poisoned[key]
	m.poisoned[key] = true
	m.mu.Unlock()
	if first {
		m.log.Printf("skipping an undecodable record at %s offset %d: %v (later ones on this partition are counted, not logged)", key, r.Offset, err)
	}
}

// commit commits the spans topic's partition p up to offset.
func (m *member) commit(ctx context.Context, p int32, offset int64) error {
	var failed error
	m.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{m.spans: {p: {Epoch: -1, Offset: offset}}},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			failed = err
			if resp != nil {
				for _, t := range resp.Topics {
					for _, tp := range t.Partitions {
						if err := kerr.ErrorForCode(tp.ErrorCode); err != nil {
							failed = err
						}
					}
				}
			}
		})
	return failed
}

// completeIdle completes the traces idle for the idle time.
func (m *member) completeIdle(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pending := 0
	for _, a := range m.assemblers {
		a.complete(now.Add(-m.cfg.TraceIdle))
		pending += a.pending()
	}
	m.metrics.pending.Set(float64(pending))
}

// publishAll publishes every partition held.
func (m *member) publishAll(ctx context.Context) {
	for _, p := range m.held() {
		m.publish(ctx, p)
	}
}

// foldSpans is how many spans of complete traces a partition gathers
// before they are analysed ahead of the window: each analysis has a
// fixed cost in time and memory, so it waits for a batch worth it.
const foldSpans = 20000

// fold analyses partition p's complete traces that may be published into
// the partial of the segment being gathered — all of them with force,
// else once they hold foldSpans spans — so that only open traces and a
// batch of complete ones are held as spans: memory follows the trace-idle
// time, not the window.
func (m *member) fold(ctx context.Context, p int32, force bool) error {
	m.mu.Lock()
	a := m.assemblers[p]
	if a == nil || (!force && a.doneSpans() < foldSpans) {
		m.mu.Unlock()
		return nil
	}
	traces, commit := a.cut()
	m.mu.Unlock()
	valid, spans := traces[:0], 0
	for i := range traces {
		spans += len(traces[i].Spans)
		traces[i].Pack()
		if err := trace.Validate(&traces[i]); err != nil {
			m.metrics.invalid.Inc()
			m.log.Printf("leaving out trace %s: %v", traces[i].ID, err)
			continue
		}
		valid = append(valid, traces[i])
	}
	var part *engine.Partial
	if len(valid) > 0 {
		var err error
		if part, err = engine.Collect(ctx, engine.Slice(valid), engine.Options{SkewTolerance: m.cfg.SkewTolerance, Workers: 1}); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.assemblers[p] != a { // rewound or revoked meanwhile
		return nil
	}
	switch {
	case part == nil:
	case a.folded == nil:
		a.folded = part
	default:
		if err := a.folded.Merge(part); err != nil {
			return err
		}
	}
	a.foldedTo, a.foldedTraces, a.foldedSpans = max(a.foldedTo, commit), a.foldedTraces+len(valid), a.foldedSpans+spans
	return nil
}

// publishSpans bounds the spans of a segment: one that has folded as
// many is published without waiting for the window, so that a partial
// stays well inside the largest record Kafka takes (resultMaxBytes; a
// partial costs some 10–20 bytes a span).
const publishSpans = 100_000

// resultMaxBytes is the largest result record, set on the results topic
// and the producer.
const resultMaxBytes = 16 << 20

// foldAll folds every partition held, and publishes those whose segment
// is full.
func (m *member) foldAll(ctx context.Context) {
	for _, p := range m.held() {
		if err := m.fold(ctx, p, false); err != nil {
			m.log.Printf("analysing partition %d: %v (its segment will be read again)", p, err)
			m.rewind(p, m.segmentStart(p))
			continue
		}
		m.mu.Lock()
		full := m.assemblers[p] != nil && m.assemblers[p].foldedSpans >= publishSpans
		m.mu.Unlock()
		if full {
			m.publish(ctx, p)
		}
	}
}

// held lists the partitions held.
func (m *member) held() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var parts []int32
	for p := range m.assemblers {
		parts = append(parts, p)
	}
	return parts
}

// segmentStart is where partition p's segment being gathered starts.
func (m *member) segmentStart(p int32) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.assemblers[p]; a != nil {
		return a.committed
	}
	return 0
}

// publish folds partition p's complete traces, publishes the segment's
// partial, keyed by the partition and the offset the segment starts at,
// and commits the offset after it.
func (m *member) publish(ctx context.Context, p int32) {
	if err := m.fold(ctx, p, true); err != nil {
		m.log.Printf("analysing partition %d: %v (its segment will be read again)", p, err)
		m.rewind(p, m.segmentStart(p))
		return
	}
	m.mu.Lock()
	a := m.assemblers[p]
	if a == nil {
		m.mu.Unlock()
		return
	}
	part, traces, start, commit := a.folded, a.foldedTraces, a.committed, a.foldedTo
	m.mu.Unlock()
	if part != nil {
		if err := m.publishPartial(ctx, p, start, part, traces); err != nil {
			m.log.Printf("publishing partition %d: %v (its traces will be read again)", p, err)
			m.rewind(p, start)
			return
		}
	}
	if commit > start {
		if err := m.commit(ctx, p, commit); err != nil {
			// Published and not committed: read again from the
			// segment's start, it is published again under the same
			// key, whole.
			m.log.Printf("committing partition %d: %v (its segment will be read and published again)", p, err)
			m.rewind(p, start)
			return
		}
	}
	m.mu.Lock()
	a.committed, a.folded, a.foldedTraces, a.foldedSpans = max(commit, start), nil, 0, 0
	m.mu.Unlock()
}

// rewind forgets partition p's traces and reads it again from offset.
func (m *member) rewind(p int32, offset int64) {
	m.mu.Lock()
	delete(m.assemblers, p)
	m.mu.Unlock()
	m.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{m.spans: {p: {Epoch: -1, Offset: offset}}})
}

// publishPartial writes a segment's partial, keyed by the partition and
// the offset the segment starts at.
func (m *member) publishPartial(ctx context.Context, p int32, start int64, part *engine.Partial, traces int) error {
	data, err := part.MarshalBinary()
	if err != nil {
		return err
	}
	m.metrics.observe(part)
	m.metrics.observeBreaks(data)
	rec := &kgo.Record{Topic: ResultsTopic(m.cfg.Group), Key: []byte(fmt.Sprintf("p%05d/%020d", p, start)), Value: data}
	if err := m.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return err
	}
	m.metrics.traces.Add(float64(traces))
	return nil
}

// assigned starts an assembler for each new partition of the spans topic,
// from the group's committed offset.
func (m *member) assigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	parts := assigned[m.spans]
	if len(parts) == 0 {
		return
	}
	committed, err := kadm.NewClient(cl).FetchOffsetsForTopics(ctx, m.gatherGroup, m.spans)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range parts {
		from := int64(0)
		if err == nil {
			if o, ok := committed.Lookup(m.spans, p); ok && o.At >= 0 {
				from = o.At
			}
		}
		m.assemblers[p] = newAssembler(from)
	}
	m.metrics.partitions.Set(float64(len(m.assemblers)))
}

// revoked publishes and commits what the partitions taken away may
// publish, and forgets them; traces still open are read again by the new
// owner.
func (m *member) revoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	for _, p := range revoked[m.spans] {
		m.publish(ctx, p)
		m.mu.Lock()
		delete(m.assemblers, p)
		m.mu.Unlock()
	}
	m.mu.Lock()
	m.metrics.partitions.Set(float64(len(m.assemblers)))
	m.mu.Unlock()
}

// lost forgets the partitions lost without a chance to publish.
func (m *member) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range lost[m.spans] {
		delete(m.assemblers, p)
	}
}

// holding says which partitions of the spans topic the member holds.
func (m *member) holding() string {
	m.mu.Lock()
	parts := make([]int, 0, len(m.assemblers))
	for p := range m.assemblers {
		parts = append(parts, int(p))
	}
	m.mu.Unlock()
	if len(parts) == 0 {
		return "no partition of " + m.spans
	}
	slices.Sort(parts)
	s := make([]string, len(parts))
	for i, p := range parts {
		s[i] = strconv.Itoa(p)
	}
	return "partitions " + strings.Join(s, ", ") + " of " + m.spans
}

// serve serves /metrics, /healthz and /readyz on addr.
func (m *member) serve(addr string) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.metrics.handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"status": "ok", "detail": m.holding()})
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		switch {
		case !m.reachable.Load():
			http.Error(w, "not ready: Kafka does not answer", http.StatusServiceUnavailable)
			return
		case !m.fetched.Load() || !m.fetchedIn.Load():
			http.Error(w, "not ready: the last poll of Kafka failed", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	m.log.Printf("serving /metrics, /healthz and /readyz on http://%s", ln.Addr())
	return func() { srv.Close() }, nil
}
