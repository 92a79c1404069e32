package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/ktrace-dev/ktrace/stack/stargazers"
)

// JoinName is stargazers-join's service.name, consumer group and
// transactional id.
const JoinName = "stargazers-join"

// Propagation modes of the join.
const (
	// PropagationLost reproduces ksqlDB: the joined record's produce span
	// starts a new trace.
	PropagationLost = "lost"
	// PropagationLinks stores each input's context with the state; the
	// output continues the triggering record and links to the buffered one.
	PropagationLinks = "links"
	// PropagationParent continues the triggering record only.
	PropagationParent = "parent"
)

// JoinOptions configure stargazers-join.
type JoinOptions struct {
	Propagation string
}

// entry is one buffered input in the window store, and one changelog record.
type entry struct {
	Side string `json:"side"` // source topic
	// Partition is the source partition it came from (the same for both
	// topics: they are keyed by user id).
	Partition   int32  `json:"partition"`
	Login       string `json:"login"`
	ID          int64  `json:"id"`
	Type        string `json:"type"`
	EventMs     int64  `json:"event_ms"`
	TraceParent string `json:"traceparent,omitempty"`
}

// windowStore holds inputs by login. Entries older than their partition's
// newest event time minus the window (and a day of grace) are evicted
// after commits. Time is kept per partition, as Kafka Streams keeps it
// per task: partitions are read at different paces (one that catches up
// after a restart is days of event time behind the others), and a time
// kept for all would evict what a lagging partition's next records join.
type windowStore struct {
	byLogin map[string][]entry
	maxMs   map[int32]int64
}

func newWindowStore() *windowStore {
	return &windowStore{byLogin: map[string][]entry{}, maxMs: map[int32]int64{}}
}

func (s *windowStore) matches(e entry) []entry {
	var out []entry
	for _, o := range s.byLogin[e.Login] {
		d := e.EventMs - o.EventMs
		if d < 0 {
			d = -d
		}
		if o.Side != e.Side && time.Duration(d)*time.Millisecond <= stargazers.Window {
			out = append(out, o)
		}
	}
	return out
}

func (s *windowStore) add(e entry) {
	s.byLogin[e.Login] = append(s.byLogin[e.Login], e)
}

// undo removes the last entry added for e.Login.
func (s *windowStore) undo(e entry) {
	l := s.byLogin[e.Login]
	if len(l) > 0 {
		s.byLogin[e.Login] = l[:len(l)-1]
	}
}

// evict notes the newest event time of each partition and drops what
// fell out of the window of its partition's.
func (s *windowStore) evict(newest map[int32]int64) {
	for p, ms := range newest {
		s.maxMs[p] = max(s.maxMs[p], ms)
	}
	keep := (stargazers.Window + 24*time.Hour).Milliseconds()
	for login, l := range s.byLogin {
		kept := l[:0]
		for _, e := range l {
			if latest, ok := s.maxMs[e.Partition]; !ok || e.EventMs >= latest-keep {
				kept = append(kept, e)
			}
		}
		if len(kept) == 0 {
			delete(s.byLogin, login)
		} else {
			s.byLogin[login] = kept
		}
	}
}

// fetchHooks traces consumption with kotel but leaves producing to the
// join, which writes its own produce spans (kotel cannot add links).
type fetchHooks struct{ t *kotel.Tracer }

func (h fetchHooks) OnFetchRecordBuffered(r *kgo.Record)           { h.t.OnFetchRecordBuffered(r) }
func (h fetchHooks) OnFetchRecordUnbuffered(r *kgo.Record, p bool) { h.t.OnFetchRecordUnbuffered(r, p) }

var (
	_ kgo.HookFetchRecordBuffered   = fetchHooks{}
	_ kgo.HookFetchRecordUnbuffered = fetchHooks{}
)

// restore reads the committed changelog into the store.
func restore(ctx context.Context, cfg *Config, store *windowStore) (int, error) {
	cl, err := kgo.NewClient(kafkaOpts(cfg, JoinName+"-restore", kgo.ConsumeTopics(stargazers.TopicJoinStore),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Transactions' ends come as records too, so that the read is
		// seen to reach the stable offset past aborted data as well.
		kgo.KeepControlRecords())...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	if err := pingKafka(ctx, cl, cfg.Kafka); err != nil {
		return 0, err
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	stable, err := kadm.NewClient(cl).ListCommittedOffsets(lctx, stargazers.TopicJoinStore)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("listing %s offsets: %w", stargazers.TopicJoinStore, err)
	}
	// want[p] is the last stable offset of partition p: every committed
	// record lies below it.
	want := map[int32]int64{}
	stable.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	// Until every partition is read up to its stable offset (the record
	// below it is a transaction's end). A poll that brings nothing is no
	// sign that nothing is left (a broker slow to answer): only ten
	// seconds without a record are, as when aborted data ends a
	// partition and its end lies past the stable offset.
	n := 0
	last := time.Now()
	for len(want) > 0 && time.Since(last) < 10*time.Second {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		if fs.NumRecords() > 0 {
			last = time.Now()
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				var e entry
				if json.Unmarshal(r.Value, &e) == nil {
					store.add(e)
					n++
				}
			}
			if w, ok := want[r.Partition]; ok && r.Offset+1 >= w {
				delete(want, r.Partition)
			}
		})
	}
	return n, nil
}

// RunJoin runs stargazers-join until ctx ends: an inner join of the two
// source topics on data.login within 10 days of event time, writing
// {id, login, type} to stargazers-results keyed by id. Each poll is one
// Kafka transaction holding the outputs, the window-store changelog records
// and the consumer offsets, so a crash loses and duplicates nothing.
func RunJoin(ctx context.Context, cfg Config, opts JoinOptions) error {
	logger := cfg.logger(JoinName)
	switch opts.Propagation {
	case "":
		opts.Propagation = PropagationLost
	case PropagationLost, PropagationLinks, PropagationParent:
	default:
		return fmt.Errorf("--propagation %q: want lost, links or parent", opts.Propagation)
	}
	tp, err := cfg.provider(ctx, JoinName)
	if err != nil {
		return err
	}
	defer shutdown(tp)
	tracer := tp.Tracer(JoinName)

	store := newWindowStore()
	restored, err := restore(ctx, &cfg, store)
	if err != nil {
		return err
	}
	kt := kotel.NewTracer(kotel.TracerProvider(tp), kotel.TracerPropagator(W3C), kotel.ConsumerGroup(JoinName), kotel.ClientID(JoinName))
	txnID := JoinName
	if cfg.Instance != "" {
		// One transactional id per replica, stable across its restarts so a
		// restarted replica fences its predecessor.
		txnID = cfg.Instance
	}
	var reassigned atomic.Bool
	var c Counters
	sess, err := kgo.NewGroupTransactSession(kafkaOpts(&cfg, JoinName, append(c.groupHooks(func() {
		reassigned.Store(true)
		c.restoring.Store(true) // until the loop below has restored the store
	}),
		kgo.TransactionalID(txnID), kgo.ConsumerGroup(JoinName),
		// Range assignment gives one replica the same partition of both
		// topics: records of one login (keyed by user id) meet there.
		kgo.Balancers(kgo.RangeBalancer()),
		// A restarted join should not wait out the dead member's session.
		kgo.SessionTimeout(10*time.Second),
		kgo.ConsumeTopics(stargazers.TopicKafka, stargazers.TopicJackdaw),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.WithHooks(fetchHooks{kt}))...)...)
	if err != nil {
		return err
	}
	defer sess.Close()
	c.watchBroker(ctx, sess.Client())

	errc := make(chan error, 1)
	go func() { errc <- serveHTTP(ctx, cfg.Health, JoinName, &c, nil) }()
	logger.Printf("ready: propagation %s, %d store entries restored", opts.Propagation, restored)

	for ctx.Err() == nil {
		// A bounded poll, so that partitions assigned while no records
		// come are restored (and readiness told) at once.
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := sess.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			break
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				logger.Printf("fetch %s/%d: %v", t, p, err)
			}
		})
		if reassigned.Swap(false) && restored >= 0 {
			// Partitions moved between replicas: what another replica
			// buffered for them is in the committed changelog.
			fresh := newWindowStore()
			n, err := restore(ctx, &cfg, fresh)
			if err != nil {
				return err
			}
			store = fresh
			logger.Printf("partitions assigned: %d store entries restored", n)
			c.restoring.Store(false)
		}
		if fs.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
		var added []entry
		var produced, processed, skipped int64
		newest := map[int32]int64{}
		// A write that fails aborts the transaction: Kafka would commit
		// the others, and the input offsets past what was never written.
		var failed atomic.Bool
		wrote := func(_ *kgo.Record, err error) {
			if err != nil && !failed.Swap(true) && ctx.Err() == nil {
				logger.Printf("write failed: %v (the transaction aborts)", err)
			}
		}
		fs.EachRecord(func(r *kgo.Record) {
			processed++
			ev, err := stargazers.Decode(r.Value)
			if err != nil {
				skipped++
				logger.Printf("skipping record %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
				return
			}
			e := entry{Side: r.Topic, Partition: r.Partition, Login: ev.Data.Login, ID: ev.Data.ID, Type: ev.Data.Type, EventMs: ev.CreatedAt.UnixMilli()}
			if sc := oteltrace.SpanContextFromContext(r.Context); sc.IsValid() {
				carrier := propagation.MapCarrier{}
				W3C.Inject(r.Context, carrier)
				e.TraceParent = carrier["traceparent"]
			}
			for _, m := range store.matches(e) {
				produceResult(ctx, sess, tracer, opts.Propagation, r, m, ev, wrote)
				produced++
			}
			val, _ := json.Marshal(e)
			sess.Produce(ctx, &kgo.Record{Topic: stargazers.TopicJoinStore,
				Key: []byte(fmt.Sprintf("%s/%d/%d", e.Side, e.ID, e.EventMs)), Value: val}, wrote)
			store.add(e)
			added = append(added, e)
			newest[r.Partition] = max(newest[r.Partition], e.EventMs)
		})
		try := kgo.TryCommit
		if err := sess.Client().Flush(ctx); err != nil || failed.Load() {
			try = kgo.TryAbort
		}
		committed, err := sess.End(ctx, try)
		if err != nil && ctx.Err() != nil {
			// Asked to stop while the transaction ended: a stop, as
			// between transactions. What it left open Kafka aborts when
			// the join starts again under its transactional ID (or at
			// the transaction's timeout), and its inputs are read again.
			return nil
		}
		if err != nil {
			return fmt.Errorf("end transaction: %w", err)
		}
		if !committed {
			// The records come back after the rewind; forget what they added.
			for i := len(added) - 1; i >= 0; i-- {
				store.undo(added[i])
			}
			why := "rebalance"
			if failed.Load() {
				why = "a write failed"
			}
			logger.Printf("transaction aborted (%s); %d records will be reprocessed", why, processed)
			continue
		}
		store.evict(newest)
		c.Processed.Add(processed)
		c.Produced.Add(produced)
		c.Skipped.Add(skipped)
		select {
		case err := <-errc:
			return err
		default:
		}
	}
	return nil
}

// produceResult writes one joined record with a produce span whose context
// depends on the propagation mode, and injects that context into the record;
// wrote hears whether it was written.
func produceResult(ctx context.Context, sess *kgo.GroupTransactSession, tracer oteltrace.Tracer, mode string,
	trigger *kgo.Record, buffered entry, ev stargazers.Event, wrote func(*kgo.Record, error)) {
	res := stargazers.Result{ID: ev.Data.ID, Login: ev.Data.Login, Type: ev.Data.Type}
	key := strconv.FormatInt(res.ID, 10)
	opts := []oteltrace.SpanStartOption{
		oteltrace.WithSpanKind(oteltrace.SpanKindProducer),
		oteltrace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.destination.name", stargazers.TopicResults),
			attribute.String("messaging.operation", "publish"),
			attribute.String("messaging.kafka.message.key", key),
			attribute.String("messaging.kafka.client_id", JoinName),
		),
	}
	parent := context.Background()
	switch mode {
	case PropagationParent:
		parent = trigger.Context
	case PropagationLinks:
		parent = trigger.Context
		if buffered.TraceParent != "" {
			bctx := W3C.Extract(context.Background(), propagation.MapCarrier{"traceparent": buffered.TraceParent})
			if sc := oteltrace.SpanContextFromContext(bctx); sc.IsValid() {
				opts = append(opts, oteltrace.WithLinks(oteltrace.Link{SpanContext: sc}))
			}
		}
	}
	if parent == nil {
		parent = context.Background()
	}
	sctx, span := tracer.Start(parent, stargazers.TopicResults+" publish", opts...)
	val, _ := json.Marshal(res)
	rec := &kgo.Record{Topic: stargazers.TopicResults, Key: []byte(key), Value: val, Timestamp: trigger.Timestamp}
	W3C.Inject(sctx, kotel.NewRecordCarrier(rec))
	sess.Produce(ctx, rec, func(r *kgo.Record, err error) {
		span.SetAttributes(
			attribute.Int("messaging.kafka.destination.partition", int(r.Partition)),
			attribute.Int64("messaging.kafka.message.offset", r.Offset),
		)
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
		wrote(r, err)
	})
}
