package stream

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"
)

// internalCompression is how the internal topics' records are compressed:
// the spans topic carries every span again, and zstd at its fastest
// brings it from about 130% of the exporter's (uncompressed) bytes to
// about a fifth, for about a fifth of a re-keying member's CPU (writing
// and reading; lz4 costs as much, measured). Brokers older than zstd
// (Kafka 2.1) get lz4. (A new list each time: the client rewrites it.)
func internalCompression() kgo.ProducerOpt {
	return kgo.ProducerBatchCompression(kgo.ZstdCompression().WithLevel(int(zstd.SpeedFastest)), kgo.Lz4Compression(), kgo.NoCompression())
}

// rekeying is the client that re-keys the span topic: in group Group,
// reading and writing in transactions. The transactional ID is the
// member's: a member started again under its name fences its earlier self.
func (m *member) rekeying() (*kgo.GroupTransactSession, error) {
	cfg := m.cfg
	return kgo.NewGroupTransactSession(cfg.Kafka.opts(
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
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // a trace's records on one partition
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
		m.log.Printf("a re-keying transaction could not end (%v): starting the re-keying again, from the committed offsets", err)
		if !r.again(ctx) {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// rekey re-keys until ctx ends or a transaction cannot end.
func (m *member) rekey(ctx context.Context, s *kgo.GroupTransactSession) error {
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
			cut, err := pieces(r.Value, m.cfg.Encoding, &m.inRes, &m.inStrs)
			if err != nil {
				m.poison(r, err)
				return
			}
			m.metrics.spansIn.Add(float64(pieceSpans(cut)))
			for _, p := range cut {
				out = append(out, &kgo.Record{Topic: m.spans, Key: []byte(p.ID.String()), Value: p.Data,
					Headers: []kgo.RecordHeader{{Key: spansHeader, Value: strconv.AppendInt(nil, int64(p.Spans), 10)}}})
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
