package stream

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// holding says which partitions of the spans topic the member holds.
func (m *member) holding() string {
	parts := m.listHeld(func(*assembler) bool { return true })
	if parts == "" {
		return "no partition of " + m.spans
	}
	return "partitions " + parts + " of " + m.spans
}

// restoring lists the partitions held that are still being read again
// up to where they ended when assigned ("": none).
func (m *member) restoring() string {
	return m.listHeld((*assembler).restoring)
}

// listHeld lists, in order, the partitions held whose assembler is
// which ("": none).
func (m *member) listHeld(which func(*assembler) bool) string {
	m.mu.Lock()
	var parts []int
	for p, a := range m.assemblers {
		if which(a) {
			parts = append(parts, int(p))
		}
	}
	m.mu.Unlock()
	slices.Sort(parts)
	s := make([]string, len(parts))
	for i, p := range parts {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ", ")
}

// serve serves /metrics, /healthz and /readyz on addr.
func (m *member) serve(addr string) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: m.handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	m.log.Printf("serving /metrics, /healthz and /readyz on http://%s", ln.Addr())
	return func() { srv.Close() }, nil
}

// handler answers /metrics, /healthz and /readyz.
func (m *member) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.metrics.handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"status": "ok", "detail": m.holding()})
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		switch {
		case !m.reachable.Load():
			http.Error(w, "not ready: Kafka does not answer", http.StatusServiceUnavailable)
			return
		case !m.fetched.Load() || !m.fetchedIn.Load():
			http.Error(w, "not ready: the last poll of Kafka failed", http.StatusServiceUnavailable)
			return
		}
		if m.restoringSegments.Load() > 0 {
			http.Error(w, "not ready: reading back the segments published before from "+SegmentsTopic(m.cfg.Group), http.StatusServiceUnavailable)
			return
		}
		if m.restoringPairs.Load() > 0 {
			http.Error(w, "not ready: reading the parts judged before from "+PairsTopic(m.cfg.Group), http.StatusServiceUnavailable)
			return
		}
		if parts := m.restoring(); parts != "" {
			http.Error(w, "not ready: restoring partitions "+parts+" of "+m.spans+" (reading again the records of the traces left open)", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	return mux
}
