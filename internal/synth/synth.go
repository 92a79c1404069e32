// Package synth generates deterministic synthetic trace sets for tests and
// benchmarks: RPC calls and Kafka hops between a configurable number of
// services and topics, with a share of hops whose consumer lost its context
// (the consumer starts a new trace; its partition and offset still match
// the producer's, so ktrace can stitch it).
package synth

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ktrace-dev/ktrace/trace"
)

// Config shapes a generated set. Zero fields take the defaults in brackets.
type Config struct {
	Traces        int     // traces to start [100]
	SpansPerTrace int     // spans per started trace, counting broken-off parts [10]
	Services      int     // [8]
	Topics        int     // [4]
	Partitions    int     // per topic [3]
	BrokenShare   float64 // share of Kafka hops that lose context [0]
	// LinkShare is the share of those whose consumer links to its producer
	// (span-link propagation: a new trace, but connected) [0].
	LinkShare     float64
	MessagingOnly bool // only Kafka hops, no RPC calls
	// FanOut is how many calls or hops each step makes from one span; the
	// trace goes on from the last of them [1: a chain].
	FanOut int
	// Shuffle puts each trace's spans in random order, as stores return
	// them, instead of the order they started in.
	Shuffle bool
	// SampleRatio keeps each trace with this probability, as a head
	// sampler deciding at every root keeps it: a hop that lost its context
	// starts a trace sampled on its own, so its producer's trace may be
	// gone while it stays. Zero (or 1 and above) keeps every trace.
	SampleRatio float64
	// SamplerTags tags root spans as Jaeger clients do: sampler.type
	// probabilistic and sampler.param the ratio.
	SamplerTags bool
	Seed        uint64
}

func (c *Config) defaults() {
	if c.Traces <= 0 {
		c.Traces = 100
	}
	if c.SpansPerTrace < 2 {
		c.SpansPerTrace = 10
	}
	if c.Services <= 1 {
		c.Services = 8
	}
	if c.Topics <= 0 {
		c.Topics = 4
	}
	if c.Partitions <= 0 {
		c.Partitions = 3
	}
	if c.FanOut <= 0 {
		c.FanOut = 1
	}
}

type gen struct {
	cfg     Config
	rng     *rand.Rand
	jitter  *rand.Rand // durations and gaps vary, from their own stream so the shape stays as it was
	res     []*trace.Resource
	topics  []string
	offsets []int64
	next    uint64
	clock   time.Time
	out     []trace.Trace
}

func (g *gen) id() uint64 { g.next++; return g.next }

// Generate returns the traces. The same Config always gives the same set.
func Generate(cfg Config) []trace.Trace {
	cfg.defaults()
	g := &gen{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6b7472616365)), jitter: rand.New(rand.NewPCG(cfg.Seed, 0x6a6974746572)),
		clock: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	for i := 0; i < cfg.Services; i++ {
		name := "svc-" + strconv.Itoa(i)
		g.res = append(g.res, &trace.Resource{Service: name, Attributes: trace.Attributes{
			{Key: "service.name", Value: name}, {Key: "service.instance.id", Value: name + "-0"}}})
	}
	for i := 0; i < cfg.Topics; i++ {
		g.topics = append(g.topics, "topic-"+strconv.Itoa(i))
	}
	g.offsets = make([]int64, cfg.Topics*cfg.Partitions)
	for i := 0; i < cfg.Traces; i++ {
		g.trace()
	}
	if cfg.SampleRatio > 0 && cfg.SampleRatio < 1 {
		keep := rand.New(rand.NewPCG(cfg.Seed, 0x73616d706c65)) // a stream of its own: the shape stays as it was
		g.out = slices.DeleteFunc(g.out, func(trace.Trace) bool { return keep.Float64() >= cfg.SampleRatio })
	}
	if cfg.SamplerTags {
		param := "1"
		if cfg.SampleRatio > 0 && cfg.SampleRatio < 1 {
			param = strconv.FormatFloat(cfg.SampleRatio, 'g', -1, 64)
		}
		for i := range g.out {
			for j := range g.out[i].Spans {
				if s := &g.out[i].Spans[j]; len(s.Refs) == 0 {
					s.Attributes = append(s.Attributes, trace.Attribute{Key: "sampler.type", Value: "probabilistic"}, trace.Attribute{Key: "sampler.param", Value: param})
				}
			}
		}
	}
	var strs trace.Strings
	for i := range g.out {
		if cfg.Shuffle {
			sp := g.out[i].Spans
			g.rng.Shuffle(len(sp), func(a, b int) { sp[a], sp[b] = sp[b], sp[a] })
		}
		// Laid out as ktrace's readers lay out what they decode: a trace's
		// attributes and refs in one block each, short strings shared.
		g.out[i].Pack()
		for j := range g.out[i].Spans {
			s := &g.out[i].Spans[j]
			s.Operation = strs.Get(s.Operation)
			for k := range s.Attributes {
				a := &s.Attributes[k]
				a.Key, a.Value = strs.Get(a.Key), strs.Get(a.Value)
			}
		}
	}
	return g.out
}

func (g *gen) span(ti int, svc int, op string, kind trace.Kind, parent trace.SpanID, d time.Duration) *trace.Span {
	t := &g.out[ti]
	// Durations spread over [d/2, 3d/2) and spans start 25–75µs apart, so
	// that latencies vary as real ones do.
	d = d/2 + time.Duration(g.jitter.Int64N(int64(d)))
	s := trace.Span{TraceID: t.ID, SpanID: trace.SpanID(g.id()), Operation: op, Kind: kind, Start: g.clock,
		Duration: d, Resource: g.res[svc]}
	if parent != 0 {
		s.Refs = []trace.Ref{{Type: trace.RefParent, TraceID: t.ID, SpanID: parent}}
	}
	g.clock = g.clock.Add(25*time.Microsecond + time.Duration(g.jitter.Int64N(int64(50*time.Microsecond))))
	t.Spans = append(t.Spans, s)
	return &t.Spans[len(t.Spans)-1]
}

func (g *gen) newTrace(spans int) int {
	g.out = append(g.out, trace.Trace{ID: trace.TraceID{High: 0x6b74, Low: g.id()}, Spans: make([]trace.Span, 0, spans)})
	return len(g.out) - 1
}

func (g *gen) trace() {
	n := g.cfg.SpansPerTrace
	ti := g.newTrace(n)
	cur := g.rng.IntN(g.cfg.Services)
	parent := g.span(ti, cur, "GET /entry", trace.KindServer, 0, 5*time.Millisecond).SpanID
	made := 1
	for made+2 <= n {
		nti, nparent, ncur := ti, parent, cur
		for k := 0; k < g.cfg.FanOut && made+2 <= n; k++ {
			nti, nparent, ncur = g.step(ti, parent, cur, n-made)
			made += 2
		}
		ti, parent, cur = nti, nparent, ncur
	}
	for ; made < n; made++ {
		parent = g.span(ti, cur, "work", trace.KindInternal, parent, 100*time.Microsecond).SpanID
	}
}

// step adds a call or a Kafka hop from span parent of service cur in trace
// ti, and returns where the trace goes on: the trace (another one when the
// hop lost its context), the span and the service.
func (g *gen) step(ti int, parent trace.SpanID, cur, left int) (int, trace.SpanID, int) {
	next := (cur + 1 + g.rng.IntN(g.cfg.Services-1)) % g.cfg.Services
	if !g.cfg.MessagingOnly && g.rng.IntN(2) == 0 {
		c := g.span(ti, cur, "call svc-"+strconv.Itoa(next), trace.KindClient, parent, 2*time.Millisecond)
		s := g.span(ti, next, "handle", trace.KindServer, c.SpanID, time.Millisecond)
		return ti, s.SpanID, next
	}
	tn := g.rng.IntN(g.cfg.Topics)
	part := g.rng.IntN(g.cfg.Partitions)
	off := g.offsets[tn*g.cfg.Partitions+part]
	g.offsets[tn*g.cfg.Partitions+part]++
	topic := g.topics[tn]
	p := g.span(ti, cur, topic+" publish", trace.KindProducer, parent, time.Millisecond)
	p.Attributes = trace.Attributes{
		{Key: "messaging.system", Value: "kafka"}, {Key: "messaging.destination.name", Value: topic},
		{Key: "messaging.operation", Value: "publish"},
		{Key: "messaging.kafka.destination.partition", Value: strconv.Itoa(part)},
		{Key: "messaging.kafka.message.offset", Value: strconv.FormatInt(off, 10)}}
	consumerParent := p.SpanID
	var link *trace.Ref
	if g.rng.Float64() < g.cfg.BrokenShare {
		if g.cfg.LinkShare > 0 && g.rng.Float64() < g.cfg.LinkShare {
			link = &trace.Ref{Type: trace.RefLink, TraceID: p.TraceID, SpanID: p.SpanID}
		}
		ti = g.newTrace(left)
		consumerParent = 0
	}
	c := g.span(ti, next, topic+" receive", trace.KindConsumer, consumerParent, 300*time.Microsecond)
	if link != nil {
		c.Refs = append(c.Refs, *link)
	}
	c.Attributes = trace.Attributes{
		{Key: "messaging.system", Value: "kafka"}, {Key: "messaging.source.name", Value: topic},
		{Key: "messaging.operation", Value: "receive"},
		{Key: "messaging.kafka.source.partition", Value: strconv.Itoa(part)},
		{Key: "messaging.kafka.message.offset", Value: strconv.FormatInt(off, 10)},
		{Key: "messaging.kafka.consumer.group", Value: fmt.Sprintf("group-%d", next)}}
	return ti, c.SpanID, next
}

// Standard is the set the benchmarks share, of about spans spans: 20
// services, 10 topics, 20 spans per trace, 10% of Kafka hops broken.
// Callers may change fields before generating.
func Standard(spans int) Config {
	return Config{Traces: spans / 20, SpansPerTrace: 20, Services: 20, Topics: 10, BrokenShare: 0.1, Seed: 7}
}

// SingleTrace returns one trace of n spans: a long chain of Kafka hops and
// calls, the worst case for per-trace work.
func SingleTrace(n int, seed uint64) trace.Trace {
	ts := Generate(Config{Traces: 1, SpansPerTrace: n, Seed: seed})
	return ts[0]
}

// Unshare gives every span of ts its own copy of every string (operation,
// attribute names and values, service name) and its own resource, as a
// reader that does not share equal strings lays spans out, and returns ts.
// What is found by a string's address must come out the same on it.
func Unshare(ts []trace.Trace) []trace.Trace {
	for i := range ts {
		for j := range ts[i].Spans {
			s := &ts[i].Spans[j]
			s.Operation = strings.Clone(s.Operation)
			attrs := make(trace.Attributes, len(s.Attributes))
			for k, a := range s.Attributes {
				attrs[k] = trace.Attribute{Key: strings.Clone(a.Key), Value: strings.Clone(a.Value)}
			}
			s.Attributes = attrs
			if s.Resource != nil {
				r := *s.Resource
				r.Service = strings.Clone(r.Service)
				s.Resource = &r
			}
		}
	}
	return ts
}
