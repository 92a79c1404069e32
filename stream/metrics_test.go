package stream

import (
	"bytes"
	"log"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/ktrace-dev/ktrace/analyze"
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

// TestSeriesBounded: label values come from the traces, so each metric
// whose labels they give takes at most MaxSeries label sets; past them,
// observations go to one overflow set (every label "_overflow") and are
// counted, nothing is dropped, and the first overflow is logged once.
func TestSeriesBounded(t *testing.T) {
	var logs bytes.Buffer
	m := newMetrics(3, log.New(&logs, "", 0), func() bool { return true })
	var edges []engine.EdgeCount
	for _, to := range []string{"b", "c", "d", "e", "f", "b"} {
		edges = append(edges, engine.EdgeCount{From: "service:a", To: "service:" + to, Kind: graph.EdgeCall, Count: 2, Errors: 1, Latencies: []int64{1e6}})
	}
	m.observeEdges(edges)
	rec := httptest.NewRecorder()
	m.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	series, total := map[string]string{}, 0
	for _, l := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(l, "traces_service_graph_request_total{"); ok {
			labels, v, _ := strings.Cut(rest, "} ")
			series[labels] = v
		}
	}
	want := map[string]string{
		`client="a",connection_type="",server="b"`:                          "4",
		`client="a",connection_type="",server="c"`:                          "2",
		`client="a",connection_type="",server="d"`:                          "2",
		`client="_overflow",connection_type="_overflow",server="_overflow"`: "4",
	}
	if !reflect.DeepEqual(series, want) {
		t.Fatalf("series %v, want %v", series, want)
	}
	for _, v := range series {
		n, _ := strconv.Atoi(v)
		total += n
	}
	if total != 12 {
		t.Errorf("%d requests counted, want all 12", total)
	}
	if !strings.Contains(body, `ktrace_stream_series_overflow_total{metric="traces_service_graph_request_total"} 2`) {
		t.Errorf("overflow not counted:\n%s", body)
	}
	if !strings.Contains(body, `traces_service_graph_request_failed_total{client="_overflow",connection_type="_overflow",server="_overflow"} 2`) {
		t.Errorf("the failed requests of the overflow not counted with it:\n%s", body)
	}
	if n := strings.Count(logs.String(), "its bound"); n != 1 {
		t.Errorf("logged %d times, want once: %q", n, logs.String())
	}
	// Breaks: bounded apart from the edges.
	m.observeBreaks(analyze.Report{Findings: []analyze.Finding{{Rule: "r", Where: "w1", Occurrences: 1}, {Rule: "r", Where: "w2", Occurrences: 1},
		{Rule: "r", Where: "w3", Occurrences: 1}, {Rule: "r", Where: "w4", Occurrences: 5}}})
	rec = httptest.NewRecorder()
	m.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `ktrace_lost_context_total{rule="_overflow",where="_overflow"} 5`) {
		t.Errorf("breaks past the bound not under the overflow set:\n%s", rec.Body.String())
	}
}
