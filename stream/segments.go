package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktrace-dev/ktrace/trace"
)

// SegmentsTopic is the group's changelog of published segments: for each
// segment of a partition of the gathered topic, where its records lie,
// its traces and the records that brought late spans for them, on the
// same partition number. It is written in the transaction that publishes
// the segment, and a member given the partition reads its newest records
// back, so that spans coming late for a trace published by the
// partition's last owner are merged into that trace's segment, not taken
// for a trace of their own.
func SegmentsTopic(group string) string { return "ktrace." + group + ".segments" }

// segmentsRetention is how long the segments topic keeps a record: a
// member reads back only the newest (restoreRecords), and a segment is
// read again from the gathered topic, which seldom keeps records longer.
const segmentsRetention = time.Hour

// restoreRecords is how many of a partition's newest segment records a
// member reads back: every segment it may remember (maxSegments), each
// possibly published again for late spans.
const restoreRecords = 4 * maxSegments

// segmentKey is the key of partition p's segment starting at start, in
// the results topic and the segments topic.
func segmentKey(p int32, start int64) []byte { return fmt.Appendf(nil, "p%05d/%020d", p, start) }

// segmentFormat is the first byte of a segment record.
const segmentFormat = 1

// marshal writes the segment starting at start as a record value.
func (s *segment) marshal(start int64) []byte {
	b := []byte{segmentFormat}
	b = binary.AppendVarint(b, start)
	b = binary.AppendVarint(b, s.first)
	b = binary.AppendVarint(b, s.last)
	b = binary.AppendUvarint(b, uint64(len(s.traces)))
	for _, id := range s.traces {
		b = binary.BigEndian.AppendUint64(b, id.High)
		b = binary.BigEndian.AppendUint64(b, id.Low)
	}
	b = binary.AppendUvarint(b, uint64(len(s.lateAt)))
	for _, off := range s.lateAt {
		b = binary.AppendVarint(b, off)
	}
	return b
}

var errSegment = errors.New("not a segment record")

// unmarshalSegment reads a segment record: its start and the segment.
func unmarshalSegment(b []byte) (int64, *segment, error) {
	if len(b) == 0 || b[0] != segmentFormat {
		return 0, nil, errSegment
	}
	r := segmentReader{b: b[1:]}
	start, first, last := r.varint(), r.varint(), r.varint()
	s := &segment{first: first, last: last}
	n := r.count(16) // a trace ID's bytes
	for range n {
		s.traces = append(s.traces, trace.TraceID{High: binary.BigEndian.Uint64(r.b), Low: binary.BigEndian.Uint64(r.b[8:])})
		r.b = r.b[16:]
	}
	n = r.count(1)
	for range n {
		s.lateAt = append(s.lateAt, r.varint())
	}
	if r.bad || len(r.b) != 0 || first > last || start < 0 {
		return 0, nil, errSegment
	}
	s.settled = len(s.lateAt) // the segment's result holds them all
	return start, s, nil
}

type segmentReader struct {
	b   []byte
	bad bool
}

func (r *segmentReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a count of items of at least size bytes each, bounded by
// the bytes left.
func (r *segmentReader) count(size int) int {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > uint64(len(r.b)-n)/uint64(size) {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return int(v)
}

// partitioner puts a record of the numbered topics on the partition it
// names (a segment record: the gathered partition it describes; a pairs
// record: its pairing key's part), and any other record on a partition by
// its key, so that a key's values stay in order.
func partitioner(numbered ...string) kgo.Partitioner {
	return kgo.BasicConsistentPartitioner(func(topic string) func(*kgo.Record, int) int {
		if slices.Contains(numbered, topic) {
			return func(r *kgo.Record, _ int) int { return int(r.Partition) }
		}
		return func(r *kgo.Record, n int) int {
			h := fnv.New32a()
			h.Write(r.Key)
			return int(h.Sum32() % uint32(n))
		}
	})
}

// restoreSegments reads back the newest segments of partitions parts that
// transactions committed, by partition and start (the last value of each):
// backwards in growing runs of records, until they hold maxPublished
// traces (what an assembler remembers), restoreRecords were read, or the
// partition's start — so that few big segments are read as quickly as
// many small ones.
// adm lists the topic's offsets.
func (m *member) restoreSegments(ctx context.Context, adm *kadm.Client, parts []int32) (map[int32]map[int64]*segment, error) {
	topic := SegmentsTopic(m.cfg.Group)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", topic, err)
	}
	out := map[int32]map[int64]*segment{}
	for _, p := range parts {
		end, ok := ends.Lookup(topic, p)
		if !ok {
			return nil, fmt.Errorf("%s has no partition %d (it must have as many as %s)", topic, p, m.spans)
		}
		first := int64(0)
		if s, ok := starts.Lookup(topic, p); ok {
			first = s.Offset
		}
		segs := map[int64]*segment{}
		traces := 0
		for run, to := int64(64), end.Offset; to > first && traces < maxPublished && end.Offset-to < restoreRecords; run *= 4 {
			from := max(end.Offset-run, first)
			older, err := m.readSegments(ctx, topic, p, from, to)
			if err != nil {
				return nil, err
			}
			for start, s := range older {
				if segs[start] == nil { // a newer value read already
					segs[start] = s
					traces += len(s.traces)
				}
			}
			to = from
		}
		if len(segs) > 0 {
			m.log.Printf("partition %d of %s: %d segments (%d traces) published before, read back from %s", p, m.spans, len(segs), traces, topic)
		}
		out[p] = segs
	}
	return out, nil
}

// readSegments reads partition p of the segments topic from offset from
// up to to: the last value of each segment there.
func (m *member) readSegments(ctx context.Context, topic string, p int32, from, to int64) (map[int64]*segment, error) {
	cl, err := kgo.NewClient(m.cfg.Kafka.Opts(kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().At(from)}}))...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	segs := map[int64]*segment{}
	err = readTo(ctx, cl, topic, map[int32]int64{p: to}, func(r *kgo.Record) {
		start, s, err := unmarshalSegment(r.Value)
		if err != nil {
			m.log.Printf("skipping record %d of %s/%d: %v", r.Offset, topic, r.Partition, err)
			return
		}
		segs[start] = s
	}, func() {})
	return segs, err
}
