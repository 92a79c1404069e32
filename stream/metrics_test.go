package stream

import (
	"reflect"
	"testing"

	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/engine"
)

// TestEdgesAdded: what a segment published again counts beyond what it
// counted before — counts, errors and latency samples as multisets; an
// edge new with its late spans whole; one unchanged not at all.
func TestEdgesAdded(t *testing.T) {
	e := func(from, to string, count, errors int, lat ...int64) engine.EdgeCount {
		return engine.EdgeCount{From: from, To: to, Kind: graph.EdgeCall, Count: count, Errors: errors, Latencies: lat}
	}
	base := []engine.EdgeCount{e("a", "b", 2, 1, 5, 7), e("b", "c", 1, 0, 3)}
	full := []engine.EdgeCount{e("a", "b", 4, 1, 7, 5, 5, 9), e("b", "c", 1, 0, 3), e("c", "d", 1, 1, 4)}
	got := edgesAdded(base, full)
	want := []engine.EdgeCount{e("a", "b", 2, 0, 5, 9), e("c", "d", 1, 1, 4)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if got := edgesAdded(nil, full); !reflect.DeepEqual(got, full) {
		t.Fatalf("from nothing: got %+v\nwant %+v", got, full)
	}
}
