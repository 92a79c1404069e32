package stream

import (
	"io"
	"log"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktrace-dev/ktrace/internal/synth"
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
