package stream

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/trace"
)

// internalCompression is how the internal topics' records are compressed:
// the spans topic carries every span again, and zstd at its fastest
// brings it from about 130% of the exporter's (uncompressed) bytes to
// about a fifth, for about a fifth of a re-keying member's CPU (writing
// and reading; lz4 costs as much, measured). Brokers older than zstd
// (Kafka 2.1) get lz4.
func internalCompression() kgo.ProducerOpt { return kgo.ProducerBatchCompression(internalCodecs()...) }

// internalCodecs lists the internal topics' codecs, in order of
// preference (a new list each time: the client rewrites it).
func internalCodecs() []kgo.CompressionCodec {
	return []kgo.CompressionCodec{kgo.ZstdCompression().WithLevel(int(zstd.SpeedFastest)), kgo.Lz4Compression(), kgo.NoCompression()}
}

// rekeying is the client that re-keys the span topic: in group Group,
// reading and writing in transactions. The transactional ID is the
// member's: a member started again under its name fences its earlier self.
func (m *member) rekeying() (*kgo.GroupTransactSession, error) {
	cfg := m.cfg
	return kgo.NewGroupTransactSession(cfg.Kafka.Opts(
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topic),
		cfg.metadataAge(), cfg.metadataMinAge(),
		kgo.TransactionalID("ktrace-stream-"+cfg.Group+"-"+cfg.Instance),
		// A member killed in a transaction holds readers of the spans
		// topic back until the transaction times out.
		kgo.TransactionTimeout(10*time.Second),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.SessionTimeout(10*time.Second),
		kgo.RebalanceTimeout(15*time.Second),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RecordPartitioner(marksPartitioner{kgo.StickyKeyPartitioner(nil)}), // a trace's records on one partition
		// A batch no larger than the spans topic takes (the values'
		// size, before compression, is what franz-go bounds).
		kgo.ProducerBatchMaxBytes(int32(m.spanRecordMax+recordRoom/2)),
		internalCompression(),
	)...)
}

// repartition reads the span topic until ctx ends: each poll's records
// decoded and written to the spans topic keyed by trace ID, in one
// transaction with the commit of their offsets. A transaction that
// aborts (a rebalance took the partitions meanwhile) is read again; one
// that cannot end (Kafka fenced it, or failed it) starts the re-keying
// again with a new session, which reads the span topic from the
// committed offsets.
func (m *member) repartition(ctx context.Context) error {
	var r restarts
	for {
		s, err := m.rekeying()
		if err != nil {
			return err
		}
		err = m.rekey(ctx, s)
		s.Close() // leaves the group: its partitions go to the others now
		if err == nil {
			return nil
		}
		err = m.fenced(err)
		m.log.Printf("a re-keying transaction could not end (%v): starting the re-keying again, from the committed offsets", err)
		if !r.again(ctx) {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// rekey re-keys until ctx ends or a transaction cannot end. Every tick
// it asks where the span topic ends, and once the offsets it committed
// reach there, it marks every partition of the spans topic with how far
// it re-keyed (rekeyMarks), in the next transaction; while the span
// topic is idle, in one of their own every trace-idle time.
func (m *member) rekey(ctx context.Context, s *kgo.GroupTransactSession) error {
	tick := min(m.cfg.TraceIdle/2, time.Second)
	marks := rekeyMarks{said: map[int32]int64{}}
	writeFailSaid := false
	adm := kadm.NewClient(s.Client())
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, tick)
		fs := s.PollFetches(pctx)
		cancel()
		if fs.IsClientClosed() {
			return nil
		}
		// A member that holds no partition has nothing to do, and is
		// ready to.
		m.fetchedIn.Store(m.fetchErrors(fs))
		if time.Since(marks.asked) >= tick {
			marks.ask(ctx, adm, m.cfg.Topic, s.Client().CommittedOffsets()[m.cfg.Topic], tick)
		}
		upTo, moved := marks.reached(s.Client().CommittedOffsets()[m.cfg.Topic])
		if fs.NumRecords() == 0 && (!moved || time.Since(marks.written) < m.cfg.TraceIdle) {
			continue
		}
		var out []*kgo.Record
		dec := decoding{&m.inRes, &m.inStrs, &m.inJaeger, &m.inSplit}
		fs.EachRecord(func(r *kgo.Record) {
			cut, err := pieces(r.Value, m.cfg.Encoding, dec)
			if err != nil {
				m.poison(r, err)
				return
			}
			m.metrics.spansIn.Add(float64(pieceSpans(cut)))
			for _, p := range cut {
				fitted, err := fit(p, dec, m.spanRecordMax)
				if err != nil { // the record's other spans go on
					m.poison(r, err)
				}
				for _, p := range fitted {
					out = append(out, &kgo.Record{Topic: m.spans, Key: []byte(p.ID.String()), Value: p.Data,
						Headers: []kgo.RecordHeader{{Key: spansHeader, Value: strconv.AppendInt(nil, int64(p.Spans), 10)}}})
				}
			}
		})
		if moved {
			v := rekeyedValue(marks.sources, upTo)
			for g := range m.gatheredParts.Load() {
				out = append(out, &kgo.Record{Topic: m.spans, Partition: g, Value: []byte{},
					Headers: []kgo.RecordHeader{{Key: rekeyedHeader, Value: v}}})
			}
		}
		if err := s.Begin(); err != nil {
			return fmt.Errorf("beginning a transaction: %w", err)
		}
		// A failure that lasts is logged once, until a transaction
		// commits again.
		try := kgo.TryCommit
		writeErr := produce(ctx, s, out)
		if writeErr != nil {
			try = kgo.TryAbort
			if ctx.Err() == nil && !writeFailSaid {
				writeFailSaid = true
				m.log.Printf("writing %s: %v (the transaction aborts; its span records are read again)", m.spans, writeErr)
			}
		}
		committed, err := s.End(ctx, try)
		switch {
		case err != nil && ctx.Err() == nil:
			return fmt.Errorf("ending a transaction: %w", err)
		case err == nil && !committed && writeErr == nil:
			m.log.Printf("a transaction aborted (the group rebalanced): its span records are read again")
		case committed:
			writeFailSaid = false
			if moved {
				marks.said, marks.written = upTo, time.Now()
			}
		}
	}
	return nil
}

// rekeyMarks follows how far a member re-keyed the span topic: up to a
// time, for a partition, once the offset it committed there reaches
// where the partition ended at that time (or the partition was empty
// then).
type rekeyMarks struct {
	// ends are where the span topic's partitions ended when asked (the
	// member's own, and the empty ones), oldest first, let go once
	// reached.
	ends  []endsAt
	asked time.Time
	// said is, by partition, the time the last marks committed said it
	// was re-keyed up to; sources how many partitions the span topic has.
	said    map[int32]int64
	sources int
	written time.Time // when marks were last committed
}

type endsAt struct {
	at   int64           // Unix ns, before asking
	ends map[int32]int64 // -1: empty
}

// maxEnds bounds the answers held: past it every other one goes, the
// oldest kept, so that a member lagging far behind still reaches one.
const maxEnds = 64

// ask asks where the span topic's partitions start and end now, for the
// partitions committed holds (the member's) and the empty ones. A
// failure leaves it to the next tick.
func (r *rekeyMarks) ask(ctx context.Context, adm *kadm.Client, topic string, committed map[int32]kgo.EpochOffset, tick time.Duration) {
	r.asked = time.Now()
	ctx, cancel := context.WithTimeout(ctx, tick)
	defer cancel()
	at := time.Now().UnixNano()
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return
	}
	e := endsAt{at: at, ends: map[int32]int64{}}
	n := 0
	ends.Each(func(o kadm.ListedOffset) {
		n++
		s, ok := starts.Lookup(topic, o.Partition)
		_, mine := committed[o.Partition]
		switch {
		case o.Err != nil || !ok || s.Err != nil:
		case s.Offset >= o.Offset:
			e.ends[o.Partition] = -1
		case mine:
			e.ends[o.Partition] = o.Offset
		}
	})
	r.sources = max(r.sources, n)
	r.ends = append(r.ends, e)
	if len(r.ends) > maxEnds {
		kept := r.ends[:1]
		for i := 2; i < len(r.ends); i += 2 {
			kept = append(kept, r.ends[i])
		}
		r.ends = kept
	}
}

// reached is how far each partition is re-keyed, committed being the
// offsets committed, and whether that is further than the last marks
// said. The answers reached on every partition they name are let go.
func (r *rekeyMarks) reached(committed map[int32]kgo.EpochOffset) (map[int32]int64, bool) {
	upTo := maps.Clone(r.said)
	moved := false
	kept := r.ends[:0]
	for _, e := range r.ends {
		all := true
		for p, end := range e.ends {
			c, ok := committed[p]
			if end >= 0 && (!ok || c.Offset < end) {
				all = false
				continue
			}
			if e.at > upTo[p] {
				upTo[p], moved = e.at, true
			}
		}
		if !all {
			kept = append(kept, e)
		}
	}
	r.ends = kept
	return upTo, moved
}

// marksPartitioner partitions the re-keyed spans as p does, and the
// re-keying's marks on the partition they name.
type marksPartitioner struct{ p kgo.Partitioner }

func (mp marksPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	return markTopicPartitioner{mp.p.ForTopic(topic)}
}

type markTopicPartitioner struct{ kgo.TopicPartitioner }

func (tp markTopicPartitioner) RequiresConsistency(r *kgo.Record) bool {
	_, mark := markOf(r)
	return mark || tp.TopicPartitioner.RequiresConsistency(r)
}

func (tp markTopicPartitioner) Partition(r *kgo.Record, n int) int {
	if _, mark := markOf(r); mark {
		return int(r.Partition)
	}
	return tp.TopicPartitioner.Partition(r, n)
}

// maxPieceBytes bounds the records the re-keying writes: a trace's piece
// larger than it (a large trace in one record of a collector that writes
// large records) is cut into pieces of fewer of its spans, so that the
// spans topic takes it whatever its max.message.bytes, as Kafka's default
// (about 1 MiB) does; a single span larger still goes alone, up to what
// the spans topic takes (member.spanRecordMax).
const maxPieceBytes = 900 << 10

// fit cuts a piece larger than maxPieceBytes (or most) into pieces of the
// trace's spans that are not, decoded and written again (rare: the spans
// of a record are otherwise copied as they came), halving until each
// fits. A span larger than most, or a piece that does not decode, fails
// (the pieces cut before are returned).
func fit(p engine.TracePiece, d decoding, most int) ([]engine.TracePiece, error) {
	bound := min(maxPieceBytes, most)
	if len(p.Data) <= bound {
		return []engine.TracePiece{p}, nil
	}
	ts, err := decode(p.Data, EncodingProto, d)
	if err != nil {
		return nil, err
	}
	if len(ts) != 1 || ts[0].ID != p.ID {
		return nil, fmt.Errorf("a piece of trace %s holds %d traces", p.ID, len(ts))
	}
	var out []engine.TracePiece
	var cut func(spans []trace.Span) error
	cut = func(spans []trace.Span) error {
		data, err := file.MarshalOTLPProto([]trace.Trace{{ID: p.ID, Spans: spans}})
		switch {
		case err != nil:
			return err
		case len(data) > bound && len(spans) > 1:
			if err := cut(spans[:len(spans)/2]); err != nil {
				return err
			}
			return cut(spans[len(spans)/2:])
		case len(data) > most:
			return fmt.Errorf("span %s of trace %s takes %d bytes, more than a record of the spans topic may (%d)", spans[0].SpanID, p.ID, len(data), most)
		}
		out = append(out, engine.TracePiece{ID: p.ID, Spans: len(spans), Data: data})
		return nil
	}
	err = cut(ts[0].Spans)
	return out, err
}
