package stream

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestReadyWhileRestoring: /readyz is 503 while a partition assigned is
// read again up to where it ended when it came, naming the partition, and
// ready once it has been; it is 503 while Kafka does not answer.
func TestReadyWhileRestoring(t *testing.T) {
	a := newAssembler(10)
	a.restoreTo = 15
	m := &member{spans: "ktrace.g.spans", assemblers: map[int32]*assembler{3: a, 1: newAssembler(0)}}
	m.metrics = newMetrics(10000, log.New(io.Discard, "", 0), func() bool { return m.notReady() == "" })
	m.reachable.Store(true)
	m.fetched.Store(true)
	m.fetchedIn.Store(true)
	ready := func() (int, string) {
		w := httptest.NewRecorder()
		m.handler().ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
		return w.Code, w.Body.String()
	}
	if code, body := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, "restoring partitions 3 of ktrace.g.spans") {
		t.Fatalf("restoring: %d %q", code, body)
	}
	// /metrics says it too, for alerts, beside the process's own.
	metrics := func() string {
		w := httptest.NewRecorder()
		m.handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
		return w.Body.String()
	}
	if body := metrics(); !strings.Contains(body, "\nktrace_stream_ready 0\n") || !strings.Contains(body, "\ngo_goroutines ") {
		t.Fatalf("/metrics while restoring: want ktrace_stream_ready 0 and go_goroutines in:\n%.3000s", body)
	}
	healthz := func() (int, string) {
		w := httptest.NewRecorder()
		m.handler().ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
		return w.Code, w.Body.String()
	}
	// Alive all the same, saying why it is not ready (stack status shows it).
	if code, body := healthz(); code != http.StatusOK || !strings.Contains(body, `partitions 1, 3 of ktrace.g.spans; not ready: restoring partitions 3 of ktrace.g.spans`) {
		t.Fatalf("/healthz while restoring: %d %q", code, body)
	}
	a.add(13, nil, time.Time{})
	if code, _ := ready(); code != http.StatusServiceUnavailable {
		t.Fatalf("half way through restoring: %d", code)
	}
	a.add(14, nil, time.Time{}) // the last record before the end (a transaction's end, say)
	if code, body := ready(); code != http.StatusOK || body != "ready\n" {
		t.Fatalf("restored: %d %q", code, body)
	}
	if body := metrics(); !strings.Contains(body, "\nktrace_stream_ready 1\n") {
		t.Fatalf("/metrics once restored: want ktrace_stream_ready 1 in:\n%.3000s", body)
	}
	if code, body := healthz(); code != http.StatusOK || strings.Contains(body, "not ready") || !strings.Contains(body, "partitions 1, 3 of ktrace.g.spans") {
		t.Fatalf("/healthz once restored: %d %q", code, body)
	}
	m.reachable.Store(false)
	if code, body := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, "Kafka does not answer") {
		t.Fatalf("Kafka gone: %d %q", code, body)
	}
}

// TestReadinessLogged: a member not ready for notReadyLogged says so once,
// with the reason it has then, and says when it is ready again; a short
// spell (a rebalance, a partition restored) is not logged.
func TestReadinessLogged(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	var r readiness
	steps := []struct {
		after time.Duration
		why   string
		want  string
	}{
		{0, "restoring partitions 1 of s", ""},
		{10 * time.Second, "", ""}, // a short spell
		{11 * time.Second, "restoring partitions 2 of s", ""},
		{40 * time.Second, "reading back the segments", ""},
		{41 * time.Second, "reading back the segments", "not ready for 30s: reading back the segments"},
		{50 * time.Second, "reading back the segments", ""}, // said once
		{71 * time.Second, "", "ready again, after 1m0s"},
		{72 * time.Second, "", ""},
		{80 * time.Second, "Kafka does not answer", ""},
		{110 * time.Second, "Kafka does not answer", "not ready for 30s: Kafka does not answer"},
	}
	for _, s := range steps {
		if got := r.note(t0.Add(s.after), s.why); got != s.want {
			t.Errorf("at %v (%q): logged %q, want %q", s.after, s.why, got, s.want)
		}
	}
}
