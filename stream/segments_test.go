package stream

import (
	"context"
	"io"
	"log"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktrace-dev/ktrace/trace"
)

// TestRestoreSegments: a partition's segments are read back from the
// segments topic newest first, in growing runs, until they hold what an
// assembler remembers: big segments stop the reading early, small ones
// are read as far as restoreRecords; a segment's last value wins, though
// an older one lies in a run read later.
func TestRestoreSegments(t *testing.T) {
	for _, c := range []struct {
		name            string
		records, traces int
		want            int // segments read back
	}{
		{"small segments", 300, 1, 300},
		{"big segments", 200, 2000, 64},
	} {
		t.Run(c.name, func(t *testing.T) {
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, SegmentsTopic("g")))
			if err != nil {
				t.Fatal(err)
			}
			defer cluster.Close()
			cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			id := uint64(0)
			var recs []*kgo.Record
			for i := range c.records {
				s := &segment{first: int64(i), last: int64(i)}
				for range c.traces {
					id++
					s.traces = append(s.traces, trace.TraceID{Low: id})
				}
				recs = append(recs, &kgo.Record{Topic: SegmentsTopic("g"), Partition: 1, Value: s.marshal(int64(i))})
			}
			// The first segment again, with a late record: its last value.
			again := &segment{first: 0, last: 0, traces: []trace.TraceID{{Low: 1}}, lateAt: []int64{9}}
			recs = append(recs, &kgo.Record{Topic: SegmentsTopic("g"), Partition: 1, Value: again.marshal(0)})
			if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			m := &member{cfg: Config{Kafka: Kafka{Brokers: cluster.ListenAddrs()}, Group: "g"}, log: log.New(io.Discard, "", 0), spans: "otlp_spans"}
			got, err := m.restoreSegments(context.Background(), kadm.NewClient(cl), []int32{0, 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(got[0]) != 0 || len(got[1]) != c.want {
				t.Fatalf("read back %d and %d segments, want 0 and %d", len(got[0]), len(got[1]), c.want)
			}
			if s := got[1][0]; s == nil || len(s.lateAt) != 1 {
				t.Fatalf("segment 0 read back as %+v, want its last value", s)
			}
			if s := got[1][int64(c.records-1)]; s == nil || len(s.traces) != c.traces {
				t.Fatalf("the newest segment read back as %+v", s)
			}
		})
	}
}

// TestTopicNames: a group names the internal topics, so it takes what
// Kafka takes in a topic's name (at most 249 characters with the longest
// internal topic's prefix and suffix, of letters, digits, '.', '_', '-').
func TestTopicNames(t *testing.T) {
	for _, g := range []string{"ktrace", "a.b_c-D9", strings.Repeat("g", 233)} {
		if err := CheckGroup(g); err != nil {
			t.Errorf("%q: %v", g, err)
		}
	}
	for g, want := range map[string]string{
		"":                       "no consumer group",
		"my group":               `not ' '`,
		"grüße":                  `not 'ü'`,
		strings.Repeat("g", 234): "would have 250",
	} {
		if err := CheckGroup(g); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", g, err, want)
		}
	}
	for topic, ok := range map[string]bool{"otlp_spans": true, "jaeger-spans.v2": true, ".": false, "..": false, "a b": false, strings.Repeat("t", 250): false} {
		if err := CheckTopic(topic); (err == nil) != ok {
			t.Errorf("%q: %v", topic, err)
		}
	}
}
