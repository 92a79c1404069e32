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
	var parts []int32
	for p, a := range m.assemblers {
		if which(a) {
			parts = append(parts, p)
		}
	}
	m.mu.Unlock()
	slices.Sort(parts)
	return joinInts(parts)
}

// notReady says why the member is not ready ("": it is).
func (m *member) notReady() string {
	switch {
	case !m.reachable.Load():
		return "Kafka does not answer"
	case !m.fetched.Load() || !m.fetchedIn.Load():
		return "the last poll of Kafka failed"
	case m.restoringSegments.Load() > 0:
		return "reading back the segments published before from " + SegmentsTopic(m.cfg.Group)
	case m.restoringPairs.Load() > 0:
		return "reading the parts judged before from " + PairsTopic(m.cfg.Group)
	}
	if parts := m.restoring(); parts != "" {
		return "restoring partitions " + parts + " of " + m.spans + " (reading again the records of the traces left open)"
	}
	return ""
}

// notReadyLogged is how long a member is not ready before it says so in
// its log: restoring a partition or a rebalance take seconds, and a probe
// that fails for longer is worth a line that says why.
const notReadyLogged = 30 * time.Second

// readiness follows how long a member has not been ready, for its log.
type readiness struct {
	since time.Time // when it stopped being ready (zero: it is ready)
	said  bool      // the log says it is not ready
}

// note takes why the member is not ready at now ("": it is), and returns
// what to log ("": nothing): once, when it has not been ready for
// notReadyLogged, and again when it is ready after that.
func (r *readiness) note(now time.Time, why string) string {
	switch {
	case why == "":
		was, said := r.since, r.said
		*r = readiness{}
		if said {
			return "ready again, after " + now.Sub(was).Round(time.Second).String()
		}
	case r.since.IsZero():
		r.since = now
	case !r.said && now.Sub(r.since) >= notReadyLogged:
		r.said = true
		return "not ready for " + now.Sub(r.since).Round(time.Second).String() + ": " + why
	}
	return ""
}

// joinInts lists partitions as "1, 3, 4".
func joinInts(ps []int32) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(int(p))
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

// handler answers /metrics, /healthz (alive: the partitions held, and
// why the member is not ready when it is not) and /readyz.
func (m *member) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.metrics.handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		detail := m.holding()
		if why := m.notReady(); why != "" { // what `stack status` shows
			detail += "; not ready: " + why
		}
		json.NewEncoder(w).Encode(map[string]string{"status": "ok", "detail": detail})
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := m.notReady(); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	return mux
}
