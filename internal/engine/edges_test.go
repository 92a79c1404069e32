package engine

import (
	"maps"
	"strconv"
	"testing"

	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/synth"
)

// TestPackEdge: keys whose numbers fit pack to distinct values; the others
// do not pack.
func TestPackEdge(t *testing.T) {
	seen := map[uint64]edgeKey{}
	for _, from := range []int32{0, 1, 0xFFFE} {
		for _, to := range []int32{0, 2, 0xFFFE} {
			for _, group := range []int32{-1, 0, 0xFFFD} {
				for _, kind := range []graph.EdgeKind{graph.EdgeCall, graph.EdgeConsume} {
					for _, rel := range []graph.Relation{graph.RelParent, graph.RelStitched} {
						k := edgeKey{from, to, group, kind, rel}
						p, ok := packEdge(k.from, k.to, k.group, k.kind, k.rel)
						if !ok {
							t.Fatalf("%+v does not pack", k)
						}
						if o, dup := seen[p]; dup {
							t.Fatalf("%+v and %+v pack alike", k, o)
						}
						seen[p] = k
					}
				}
			}
		}
	}
	for _, k := range []edgeKey{{0xFFFF, 0, -1, 0, 0}, {0, 0xFFFF, -1, 0, 0}, {0, 0, 0xFFFE, 0, 0}, {-5, 0, -1, 0, 0}} {
		if _, ok := packEdge(k.from, k.to, k.group, k.kind, k.rel); ok {
			t.Errorf("%+v packs", k)
		}
	}
}

// TestBigEdges: edges between nodes numbered past what a packed key holds
// are counted as the others are.
func TestBigEdges(t *testing.T) {
	b := newBuilder()
	var far []*node
	for i := 0; i < 0x10005; i++ {
		n := b.node(graph.KindService, "svc-"+strconv.Itoa(i))
		if i >= 0xFFFF {
			far = append(far, n)
		}
	}
	near := b.nodeList[0]
	for round := 0; round < 3; round++ {
		b.samples.reserve(2 * len(far)) // as Begin makes room for a trace's samples
		for i, n := range far {
			b.observe(b.edge(near, n, graph.EdgeCall, graph.RelParent, ""), i%2 == 0, int64(i))
			b.observe(b.edge(n, near, graph.EdgeCall, graph.RelParent, ""), false, int64(i))
		}
	}
	if len(b.bigEdges) != 2*len(far) || len(b.edgeList) != 2*len(far) {
		t.Fatalf("%d edges, %d of them big, want %d of each", len(b.edgeList), len(b.bigEdges), 2*len(far))
	}
	b.flushEdges()
	for _, e := range b.edgeList {
		wantErr := 0
		if e.from == near && (e.to.seq-0xFFFF)%2 == 0 {
			wantErr = 3
		}
		if e.count != 3 || e.nlat != 3 || e.errors != wantErr {
			t.Fatalf("edge %s → %s: count %d, samples %d, errors %d; want 3, 3, %d", e.from.name, e.to.name, e.count, e.nlat, e.errors, wantErr)
		}
	}
}

// TestEdgesFlushedBeforeOverflow: a builder that must add its slots' counts
// to the edges between traces (as it does before a count could overflow)
// gives the graph one that does not.
func TestEdgesFlushedBeforeOverflow(t *testing.T) {
	ts := synth.Generate(synth.Standard(20000))
	counts := func(flushEvery int) map[string]int {
		b := newBuilder()
		for i := range ts {
			forced := flushEvery > 0 && i%flushEvery == 0
			if forced {
				b.unflushed = maxUnflushed // the next Begin flushes
			}
			b.Add(&ts[i])
			if forced && b.unflushed != len(ts[i].Spans) {
				t.Fatalf("trace %d: %d spans unflushed after a flush, want the trace's %d", i, b.unflushed, len(ts[i].Spans))
			}
		}
		out := map[string]int{}
		for _, e := range b.Graph().Edges {
			k := e.From.Key + ">" + e.To.Key + " " + e.Kind.String() + "/" + e.Relation.String() + " " + e.Group
			out[k] = e.Count<<20 | e.Errors<<10 | len(e.ClientIDs)
			out[k+" p50"] = int(e.P50)
		}
		return out
	}
	plain, flushed := counts(0), counts(7)
	if len(plain) == 0 || !maps.Equal(plain, flushed) {
		t.Fatalf("flushed every 7 traces: %v\nwant %v", flushed, plain)
	}
}
