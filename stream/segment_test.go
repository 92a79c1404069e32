package stream

import (
	"io"
	"log"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/internal/testenv"
	"github.com/ktrace-dev/ktrace/source/file"
)

// TestGatherOwned: records a poll brought are gathered only for the
// partitions the member holds. A partition held but not yet read gets an
// assembler from the record's offset on; one the group took back after
// the poll (forget) is left to its new owner: no assembler is made for
// it, so the member neither restores nor publishes it.
func TestGatherOwned(t *testing.T) {
	ts := synth.Generate(synth.Config{Traces: 3, SpansPerTrace: 4, Seed: 2})
	record := func(p int32, offset int64, i int) *kgo.Record {
		data, err := file.MarshalOTLPProto(ts[i : i+1])
		if err != nil {
			t.Fatal(err)
		}
		return &kgo.Record{Topic: "otlp_spans", Partition: p, Offset: offset, Key: []byte(ts[i].ID.String()), Value: data}
	}
	poll := func(recs ...*kgo.Record) kgo.Fetches {
		var parts []kgo.FetchPartition
		for _, r := range recs {
			parts = append(parts, kgo.FetchPartition{Partition: r.Partition, HighWatermark: r.Offset + 1, Records: []*kgo.Record{r}})
		}
		return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "otlp_spans", Partitions: parts}}}}
	}
	m := &member{cfg: Config{ByTraceID: true, Encoding: EncodingProto}, log: log.New(io.Discard, "", 0), spans: "otlp_spans",
		assemblers: map[int32]*assembler{}, owned: map[int32]bool{0: true, 1: true}, poisoned: map[string]bool{}, metrics: newMetrics(10000, log.New(io.Discard, "", 0), func() bool { return true })}
	m.forget(t.Context(), nil, map[string][]int32{"otlp_spans": {1}})

	m.gather(poll(record(0, 7, 0), record(1, 3, 1), record(2, 5, 2)))
	if len(m.assemblers) != 1 || m.assemblers[0] == nil {
		t.Fatalf("assemblers for partitions %v, want for 0 alone", keys(m.assemblers))
	}
	if got := m.assemblers[0].pending(); got != 4 {
		t.Errorf("partition 0 holds %d spans, want the 4 of its record", got)
	}
	if m.assemblers[0].restoring() {
		t.Error("partition 0, read from the poll's offset on, is restoring")
	}
}

func keys(m map[int32]*assembler) []int32 {
	var ks []int32
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// TestAnalyseInChunks: traces completed at once, more spans than a
// decoding takes (a member catching up on a backlog), are decoded and
// analysed foldSpans spans at a time, and their merged partial is what
// the plain references make of them all: no trace lost or counted twice
// where the chunks meet, and one left out for being invalid is left out
// alone.
func TestAnalyseInChunks(t *testing.T) {
	ts := synth.Generate(synth.Config{Traces: 3*foldSpans/20 + 7, SpansPerTrace: 20, BrokenShare: 0.1, LinkShare: 0.3, Seed: 5})
	var gathered []*partial
	for i := range ts {
		data, err := file.MarshalOTLPProto(ts[i : i+1])
		if err != nil {
			t.Fatal(err)
		}
		gathered = append(gathered, &partial{id: ts[i].ID, data: data, spans: len(ts[i].Spans)})
	}
	// A trace whose bytes are cut short, in the second chunk.
	bad := foldSpans/20 + 3
	gathered[bad].data = gathered[bad].data[:len(gathered[bad].data)/2]
	valid := slices.Delete(slices.Clone(ts), bad, bad+1)

	m := &member{cfg: Config{ByTraceID: true, Encoding: EncodingProto, SkewTolerance: 10 * time.Millisecond}, log: log.New(io.Discard, "", 0),
		spans: "otlp_spans", metrics: newMetrics(10000, log.New(io.Discard, "", 0), func() bool { return true })}
	part, n, err := m.analyse(t.Context(), 0, gathered, true)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(valid) {
		t.Errorf("%d traces analysed, want %d", n, len(valid))
	}
	got, rep := part.Finish()
	testenv.Agree(t, "the chunks' merged partial", got, rep, valid, 10*time.Millisecond)
	if len(got.Stitches) == 0 {
		t.Fatal("no stitches: the set does not test pairing across chunks")
	}
}

// TestGatherRecordTime: read by trace ID, a partition's record time is
// its records' times, no later than the clock; on the spans topic, only
// the transactions' ends (control records) move it.
func TestGatherRecordTime(t *testing.T) {
	t0 := time.Now().Add(-time.Hour)
	poll := func(recs ...*kgo.Record) kgo.Fetches {
		return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "spans", Partitions: []kgo.FetchPartition{{Partition: 0, HighWatermark: 10, Records: recs}}}}}}
	}
	record := func(offset int64, at time.Time, control bool) *kgo.Record {
		return &kgo.Record{Topic: "spans", Offset: offset, Timestamp: at, Attrs: kgo.NewRecordAttrs(kgo.RecordAttrsOpts{Transactional: true, Control: control})}
	}
	for _, keyed := range []bool{true, false} {
		m := &member{cfg: Config{ByTraceID: keyed, Encoding: EncodingProto}, log: log.New(io.Discard, "", 0), spans: "spans",
			assemblers: map[int32]*assembler{}, owned: map[int32]bool{0: true}, poisoned: map[string]bool{}, metrics: newMetrics(10000, log.New(io.Discard, "", 0), func() bool { return true })}
		m.gather(poll(record(0, t0.Add(time.Minute), false), record(1, t0, true)))
		want := t0
		if keyed {
			want = t0.Add(time.Minute)
		}
		if got := m.assemblers[0].clock; !got.Equal(want) {
			t.Errorf("keyed %v: record time %v, want %v", keyed, got, want)
		}
		m.gather(poll(record(2, time.Now().Add(time.Hour), true)))
		if got := m.assemblers[0].clock; got.After(time.Now()) || got.Before(time.Now().Add(-time.Minute)) {
			t.Errorf("keyed %v: record time %v after a record of an hour ahead, want now", keyed, got)
		}
	}
}
