package engine

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/trace"
)

// BenchmarkIndexReset indexes 200,000 spans in 20-span traces.
func BenchmarkIndexReset(b *testing.B) {
	ts := synth.Generate(synth.Standard(200000))
	var x spanIndex
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range ts {
			x.Reset(ts[j].Spans)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(200000*b.N), "ns/span")
}

// TestIndexParents checks spanIndex's parents (and whether they are in another
// service), remote children and messaging views against a plain map and the
// spans' own views on ordered, reversed and shuffled traces, with some
// parents missing.
func TestIndexParents(t *testing.T) {
	ts := synth.Generate(synth.Config{Traces: 300, SpansPerTrace: 30, Services: 5, Topics: 3, BrokenShare: 0.2, Seed: 9})
	ts = append(ts, synth.SingleTrace(5000, 4))
	rng := rand.New(rand.NewPCG(3, 4))
	var x spanIndex
	for i, tr := range ts {
		spans := tr.Spans
		switch i % 4 {
		case 1:
			slices.Reverse(spans)
		case 2:
			rng.Shuffle(len(spans), func(a, b int) { spans[a], spans[b] = spans[b], spans[a] })
		case 3:
			if len(spans) > 2 {
				spans = append(spans[:1:1], spans[2:]...) // drop a span: its children lose their parent
			}
		}
		if i%3 == 0 {
			// Every other span with its own copy of each attribute name,
			// as a reader that does not share them gives: the index knows
			// shared names by address and must know these by their bytes.
			for j := 0; j < len(spans); j += 2 {
				attrs := slices.Clone(spans[j].Attributes)
				for k := range attrs {
					attrs[k].Key = strings.Clone(attrs[k].Key)
				}
				spans[j].Attributes = attrs
			}
		}
		at := map[trace.SpanID]int{}
		for j := range spans {
			at[spans[j].SpanID] = j
		}
		x.Reset(spans)
		remote := make([]bool, len(spans))
		for j := range spans {
			if pid, ok := spans[j].Parent(); ok {
				if k, ok := at[pid]; ok && spans[k].Service() != spans[j].Service() {
					remote[k] = true
				}
			}
		}
		for j := range spans {
			gm, gok := x.Messaging(j)
			if wm, wok := spans[j].Messaging(); gm != wm || gok != wok {
				t.Fatalf("trace %d span %d: messaging view %+v %v, want %+v %v", i, j, gm, gok, wm, wok)
			}
			if got := x.HasRemoteChild(j); got != remote[j] {
				t.Fatalf("trace %d span %d: HasRemoteChild %v, want %v", i, j, got, remote[j])
			}
			want := noParent
			if pid, ok := spans[j].Parent(); ok {
				want = missingParent
				if k, ok := at[pid]; ok {
					want = k
				}
			}
			if got := x.Parent(j); got != want {
				t.Fatalf("trace %d span %d: parent %d, want %d", i, j, got, want)
			}
			if got, want := x.CrossParent(j), want >= 0 && spans[want].Service() != spans[j].Service(); got != want {
				t.Fatalf("trace %d span %d: CrossParent %v, want %v", i, j, got, want)
			}
			in := x.Info(j)
			if in.Parent != x.Parent(j) || in.Cross != x.CrossParent(j) || in.Remote != x.HasRemoteChild(j) || in.View != x.View(j) {
				t.Fatalf("trace %d span %d: Info %+v disagrees with the index's other answers", i, j, in)
			}
			if got := x.Find(spans[j].SpanID); got != j {
				t.Fatalf("trace %d: Find(span %d) = %d", i, j, got)
			}
		}
	}
}

// TestIndexLayouts checks the index's messaging views against the spans'
// own where spans repeat a few attribute lists (shared names, as readers
// give), with values that change from span to span, some empty, and lists
// that name a field twice, repeat a name or share a name's address.
func TestIndexLayouts(t *testing.T) {
	// A name that starts where another does: known by its address alone,
	// it would read as the other.
	part := "messaging.destination.partition.id"
	shapes := [][]string{
		{"messaging.system", part, "messaging.kafka.offset"},
		{"messaging.system", part[:len("messaging.destination")], "messaging.kafka.offset"},
		{"messaging.system", "messaging.destination.name", "messaging.operation", "messaging.kafka.destination.partition", "messaging.kafka.message.offset"},
		{"messaging.system", "messaging.source.name", "messaging.operation", "messaging.kafka.source.partition", "messaging.kafka.message.offset", "messaging.kafka.consumer.group"},
		{"messaging.system", "messaging.destination.name", "messaging.destination", "messaging.kafka.offset"}, // the destination twice
		{"messaging.destination", "messaging.system", "messaging.destination"},                                // a name twice
		{"http.method", "messaging.system", "messaging.kafka.topic", "messaging.message.id", "messaging.client.id"},
		{"messaging.system"},
		{"peer.service", "db.system"},
	}
	values := []string{"", "kafka", "orders", "7", "12345", "x", "publish", "receive", "process", "-1"}
	rng := rand.New(rand.NewPCG(5, 6))
	var x spanIndex
	for round := 0; round < 300; round++ {
		spans := make([]trace.Span, 1+rng.IntN(20))
		for j := range spans {
			shape := shapes[rng.IntN(len(shapes))]
			attrs := make(trace.Attributes, len(shape))
			for k, name := range shape {
				if rng.IntN(10) == 0 {
					name = strings.Clone(name) // the same name at another address
				}
				attrs[k] = trace.Attribute{Key: name, Value: values[rng.IntN(len(values))]}
			}
			spans[j] = trace.Span{SpanID: trace.SpanID(j + 1), Kind: trace.Kind(rng.IntN(6)), Attributes: attrs}
		}
		x.Reset(spans)
		for j := range spans {
			gm, gok := x.Messaging(j)
			if wm, wok := spans[j].Messaging(); gm != wm || gok != wok {
				t.Fatalf("round %d span %d %v: messaging view %+v %v, want %+v %v", round, j, spans[j].Attributes, gm, gok, wm, wok)
			}
		}
	}
}
