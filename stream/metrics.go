package stream

import (
	"log"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/engine"
)

// metrics are a member's Prometheus metrics: the OpenTelemetry
// servicegraph connector's, by its metric and label names, so that the
// service-graph views built on them draw ktrace's graph (topics as nodes,
// connection_type messaging_system); and ktrace's own.
type metrics struct {
	reg *prometheus.Registry
	// edgeSets, hopSets and lostSets bound the label sets of the
	// servicegraph metrics, of ktrace_hop_records_total and of
	// ktrace_lost_context_total: their values come from the traces.
	edgeSets, hopSets, lostSets *labelSets
	overflow                    *prometheus.CounterVec
	requests, failed            *prometheus.CounterVec
	serverSeconds, clientSecs   *prometheus.HistogramVec
	hops, lost                  *prometheus.CounterVec
	lag                         *prometheus.GaugeVec
	spansIn, traces, late       prometheus.Counter
	cutOpen                     prometheus.Counter
	pairs, overdue              prometheus.Counter
	undecodable, invalid        prometheus.Counter
	pending, partitions         prometheus.Gauge
}

// overflowValue is the value of every label of the series that stands
// for the label sets past a metric's bound (labelSets).
const overflowValue = "_overflow"

// labelSets bounds the label sets a metric takes. Label values come from
// inside the traces — service, topic, group and operation names — so a
// service that puts an ID in a name, or a hostile one, could otherwise
// grow a member's series, its memory and every scrape without end.
// Past max sets, observations go to one series whose every label is
// overflowValue, are counted in ktrace_stream_series_overflow_total, and
// the first is logged: counts are kept, only their names are lost.
type labelSets struct {
	metric string
	max    int
	mu     sync.Mutex
	seen   map[string]struct{}
	said   bool
	over   prometheus.Counter
	log    *log.Logger
}

func newLabelSets(metric string, max int, over *prometheus.CounterVec, l *log.Logger) *labelSets {
	return &labelSets{metric: metric, max: max, seen: map[string]struct{}{}, over: over.WithLabelValues(metric), log: l}
}

// values returns vals when their set is known or there is room for it,
// else the overflow set.
func (ls *labelSets) values(vals ...string) []string {
	key := strings.Join(vals, "\xff")
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if _, ok := ls.seen[key]; ok || len(ls.seen) < ls.max {
		ls.seen[key] = struct{}{}
		return vals
	}
	ls.over.Inc()
	if !ls.said {
		ls.said = true
		ls.log.Printf("%s has %d label sets, its bound (--max-series): the others are counted under the labels %q (counted in ktrace_stream_series_overflow_total; logged once)",
			ls.metric, ls.max, overflowValue)
	}
	out := make([]string, len(vals))
	for i := range out {
		out[i] = overflowValue
	}
	return out
}

// The metrics whose label sets are bounded (labelSets), by name.
const (
	requestsMetric = "traces_service_graph_request_total"
	hopsMetric     = "ktrace_hop_records_total"
	lostMetric     = "ktrace_lost_context_total"
)

// newMetrics makes a member's metrics, each bounded to maxSeries label
// sets (labelSets), logging to l; ready says whether the member is ready
// (as /readyz does), read at every scrape. The process's and the Go
// runtime's own metrics (memory, CPU, garbage collections) are served
// beside them, to watch a member against its memory budget.
func newMetrics(maxSeries int, l *log.Logger, ready func() bool) *metrics {
	edge := []string{"client", "server", "connection_type"}
	buckets := []float64{0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1, 1.4, 2, 5, 10, 15}
	m := &metrics{reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: requestsMetric,
			Help: "Requests (spans, records) between two nodes of the service graph."}, edge),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "traces_service_graph_request_failed_total",
			Help: "Failed requests between two nodes of the service graph."}, edge),
		serverSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "traces_service_graph_request_server_seconds",
			Help: "Latency of requests between two nodes, as ktrace measures the edge.", Buckets: buckets}, edge),
		clientSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "traces_service_graph_request_client_seconds",
			Help: "Latency of requests between two nodes, as ktrace measures the edge.", Buckets: buckets}, edge),
		hops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: hopsMetric,
			Help: "Records of each messaging hop, by how ktrace found them (parent, link, stitched, unverified, span)."},
			[]string{"from", "to", "group", "relation"}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: lostMetric,
			Help: "Where trace context was lost, by break rule and place: a hop or a link across traces is counted by the member that pairs it."},
			[]string{"rule", "where"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ktrace_stream_lag_records",
			Help: "Records behind the end of each partition this member reads."}, []string{"topic", "partition"}),
		spansIn: prometheus.NewCounter(prometheus.CounterOpts{Name: "ktrace_stream_spans_in_total", Help: "Spans read from the span topic."}),
		traces:  prometheus.NewCounter(prometheus.CounterOpts{Name: "ktrace_stream_traces_total", Help: "Traces analysed and published."}),
		late:    prometheus.NewCounter(prometheus.CounterOpts{Name: "ktrace_stream_late_spans_total", Help: "Spans that came after their trace was complete."}),
		cutOpen: prometheus.NewCounter(prometheus.CounterOpts{Name: "ktrace_stream_traces_cut_total",
			Help: "Traces analysed before they were quiet, their spans coming for longer than --trace-max-age; their later spans make a trace of their own."}),
		pairs: prometheus.NewCounter(prometheus.CounterOpts{Name: "ktrace_stream_pair_parts_total", Help: "Parts of the pairs topic this member judged."}),
		overdue: prometheus.NewCounter(prometheus.CounterOpts{Name: "ktrace_stream_pair_parts_overdue_total",
			Help: "Parts of the pairs topic judged before every partition gathered had published what the span topic was given by then (held eight pairing waits, no longer): their hops may be judged apart."}),
		undecodable: prometheus.NewCounter(prometheus.CounterOpts{Name: "ktrace_stream_undecodable_records_total", Help: "Records skipped as undecodable."}),
		invalid:     prometheus.NewCounter(prometheus.CounterOpts{Name: "ktrace_stream_invalid_traces_total", Help: "Traces left out as invalid."}),
		pending:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "ktrace_stream_pending_spans", Help: "Spans of traces not yet published."}),
		partitions:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "ktrace_stream_partitions", Help: "Partitions of the spans topic this member holds."}),
	}
	m.overflow = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ktrace_stream_series_overflow_total",
		Help: "Observations counted under the overflow label set (every label " + overflowValue + ") because their metric reached its bound of label sets (--max-series)."},
		[]string{"metric"})
	m.edgeSets = newLabelSets(requestsMetric, maxSeries, m.overflow, l)
	m.hopSets = newLabelSets(hopsMetric, maxSeries, m.overflow, l)
	m.lostSets = newLabelSets(lostMetric, maxSeries, m.overflow, l)
	readyGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ktrace_stream_ready",
		Help: "1 while the member is ready (/readyz answers 200), 0 while it is not: Kafka not answering, a failed poll, a partition being restored."},
		func() float64 {
			if ready() {
				return 1
			}
			return 0
		})
	m.reg.MustRegister(m.requests, m.failed, m.serverSeconds, m.clientSecs, m.hops, m.lost, m.lag, m.spansIn, m.traces, m.late, m.pairs, m.overdue,
		m.undecodable, m.invalid, m.pending, m.partitions, m.overflow, readyGauge, m.cutOpen,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return m
}

// tally is what a member's counters say now, for its log (progress).
type tally struct{ spans, traces, late, undecodable int64 }

// value is what a counter or a gauge says now.
func value(c prometheus.Metric) int64 {
	var d dto.Metric
	if c.Write(&d) != nil {
		return 0
	}
	if d.Counter != nil {
		return int64(d.Counter.GetValue())
	}
	return int64(d.Gauge.GetValue())
}

// tally reads the counters a member says in its log.
func (m *metrics) tally() tally {
	return tally{value(m.spansIn), value(m.traces), value(m.late), value(m.undecodable)}
}

func (m *metrics) handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

// name is a node's name from its key.
func name(key string) string {
	_, n, _ := strings.Cut(key, ":")
	return n
}

// observeBreaks counts the breaks a report shows.
func (m *metrics) observeBreaks(rep analyze.Report) {
	for _, f := range rep.Findings {
		m.lost.WithLabelValues(m.lostSets.values(string(f.Rule), f.Where)...).Add(float64(f.Occurrences))
	}
}

// settle counts a segment's own traces (local: what engine.Pairing left
// of its partial; the rest is counted where it pairs) with what the member
// knows of the whole set, and learns what they add to it. local is spent.
func (m *member) settle(local *engine.Partial) ([]engine.EdgeCount, analyze.Report) {
	if facts := m.knownFacts(); facts != nil {
		if err := local.Merge(facts); err != nil {
			m.log.Printf("counting a segment: %v", err)
		}
	}
	edges, rep, facts := local.Settle()
	m.learn(facts)
	return edges, rep
}

// observe counts what a published segment's own traces show.
func (m *member) observe(local *engine.Partial) {
	edges, rep := m.settle(local)
	m.metrics.observeEdges(edges)
	m.metrics.observeBreaks(rep)
}

// observeChange counts what a segment published again with its late
// spans shows beyond what it showed before (base): full's edges less
// base's, its breaks less base's. Counters only go up: a break a late
// span mends stays counted. The partials are spent.
func (m *member) observeChange(base, full *engine.Partial) {
	was, wasRep := m.settle(base)
	is, isRep := m.settle(full)
	m.metrics.observeEdges(edgesAdded(was, is))
	before := map[[2]string]int{}
	for _, f := range wasRep.Findings {
		before[[2]string{string(f.Rule), f.Where}] += f.Occurrences
	}
	for _, f := range isRep.Findings {
		if n := f.Occurrences - before[[2]string{string(f.Rule), f.Where}]; n > 0 {
			m.metrics.lost.WithLabelValues(m.metrics.lostSets.values(string(f.Rule), f.Where)...).Add(float64(n))
		}
	}
}

// edgesAdded is what full's edges hold beyond base's: counts, errors and
// latency samples (as multisets).
func edgesAdded(base, full []engine.EdgeCount) []engine.EdgeCount {
	type key struct {
		from, to string
		kind     graph.EdgeKind
		rel      graph.Relation
		group    string
	}
	was := map[key]engine.EdgeCount{}
	for _, e := range base {
		was[key{e.From, e.To, e.Kind, e.Relation, e.Group}] = e
	}
	var out []engine.EdgeCount
	for _, e := range full {
		b := was[key{e.From, e.To, e.Kind, e.Relation, e.Group}]
		d := engine.EdgeCount{From: e.From, To: e.To, Kind: e.Kind, Relation: e.Relation, Group: e.Group,
			Count: max(e.Count-b.Count, 0), Errors: max(e.Errors-b.Errors, 0)}
		old := map[int64]int{}
		for _, ns := range b.Latencies {
			old[ns]++
		}
		for _, ns := range e.Latencies {
			if old[ns] > 0 {
				old[ns]--
			} else {
				d.Latencies = append(d.Latencies, ns)
			}
		}
		if d.Count > 0 || d.Errors > 0 || len(d.Latencies) > 0 {
			out = append(out, d)
		}
	}
	return out
}

func (m *metrics) observeEdges(edges []engine.EdgeCount) {
	for _, e := range edges {
		ct := ""
		switch e.Kind {
		case graph.EdgeProduce, graph.EdgeConsume:
			ct = "messaging_system"
			m.hops.WithLabelValues(m.hopSets.values(name(e.From), name(e.To), e.Group, e.Relation.String())...).Add(float64(e.Count))
		case graph.EdgePeer:
			ct = "virtual_node"
		}
		l := m.edgeSets.values(name(e.From), name(e.To), ct)
		m.requests.WithLabelValues(l...).Add(float64(e.Count))
		m.failed.WithLabelValues(l...).Add(float64(e.Errors))
		server, client := m.serverSeconds.WithLabelValues(l...), m.clientSecs.WithLabelValues(l...)
		for _, ns := range e.Latencies {
			s := time.Duration(max(ns, 0)).Seconds()
			server.Observe(s)
			client.Observe(s)
		}
	}
}
