package stream

import (
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
	m := &member{spans: "ktrace.g.spans", assemblers: map[int32]*assembler{3: a, 1: newAssembler(0)}, metrics: newMetrics()}
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
	a.add(13, nil, time.Time{})
	if code, _ := ready(); code != http.StatusServiceUnavailable {
		t.Fatalf("half way through restoring: %d", code)
	}
	a.add(14, nil, time.Time{}) // the last record before the end (a transaction's end, say)
	if code, body := ready(); code != http.StatusOK || body != "ready\n" {
		t.Fatalf("restored: %d %q", code, body)
	}
	m.reachable.Store(false)
	if code, body := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, "Kafka does not answer") {
		t.Fatalf("Kafka gone: %d %q", code, body)
	}
}
