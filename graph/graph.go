package graph

import (
	"cmp"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"

	gg "gonum.org/v1/gonum/graph"
	"gonum.org/v1/gonum/graph/simple"

	"github.com/ktrace-dev/ktrace/trace"
)

// NodeKind says what a node stands for.
type NodeKind uint8

// Node kinds. Their String values are part of the JSON output.
const (
	KindService NodeKind = iota
	KindTopic
	KindDatabase
	KindPeer
	KindUnknownCaller
)

var nodeKindNames = [...]string{"service", "topic", "database", "peer", "unknown"}

func (k NodeKind) String() string { return nodeKindNames[k] }

// Virtual reports whether the node is not an instrumented service or a topic.
func (k NodeKind) Virtual() bool { return k >= KindDatabase }

// Node is a vertex of the graph. It implements gonum's graph.Node.
type Node struct {
	id int64
	// Key is unique and stable across runs: "<kind>:<name>".
	Key  string
	Kind NodeKind
	Name string
	// Spans and Errors count the spans the node emitted (services) or that
	// wrote to or read from it (topics).
	Spans, Errors int
	// Instances are the service.instance.id (else host.name) values seen,
	// sorted. Services only.
	Instances []string
	// Operations are the span names seen, sorted. Services only.
	Operations []string
	// Partitions are the partitions seen, sorted. Topics only.
	Partitions []int32
	// Samplers are what the service's root spans say of their sampler
	// (trace.Span.Sampler), sorted. Services only; Jaeger clients' spans.
	Samplers []string
}

// ID implements graph.Node.
func (n *Node) ID() int64 { return n.id }

var _ gg.Node = (*Node)(nil)

// EdgeKind says what sort of interaction an edge is.
type EdgeKind uint8

// Edge kinds.
const (
	EdgeCall EdgeKind = iota
	EdgeProduce
	EdgeConsume
	EdgePeer
)

var edgeKindNames = [...]string{"call", "produce", "consume", "peer"}

func (k EdgeKind) String() string { return edgeKindNames[k] }

// Relation says how an edge was found.
type Relation uint8

// Relations.
const (
	// RelSpan: from the span alone (an origin producer, a client's peer, a
	// consumer no producer could be paired with).
	RelSpan Relation = iota
	// RelParent: the downstream span is a child of the upstream span.
	RelParent
	// RelLink: the downstream span links to the upstream span.
	RelLink
	// RelStitched: the consumer lost its context; ktrace paired it with the
	// producer of the same record.
	RelStitched
	// RelUnverified: the other end is not in the data, so whether context
	// continued cannot be told: a consumer that links to a trace not in
	// the data (or names a parent not in its trace) and that no producer
	// pairs with, or a root produce span of a service that consumes,
	// paired with no input (its input may have been sampled out). Neither
	// is an origin of data.
	RelUnverified
)

var relationNames = [...]string{"span", "parent", "link", "stitched", "unverified"}

func (r Relation) String() string { return relationNames[r] }

// Edge is a labelled, counted dependency between two nodes.
type Edge struct {
	From, To *Node
	Kind     EdgeKind
	Relation Relation
	// Group is the consumer group of a consume edge.
	Group string
	// Count and Errors count the spans (consume: records) behind the edge.
	Count, Errors int
	// P50, P95 and P99 are latency percentiles (nearest rank), never below
	// zero: clock skew that puts a consumer before its producer counts as 0.
	// Past ExactSamples samples they are rounded (RoundLatency).
	P50, P95, P99 time.Duration
	// ClientIDs are the Kafka client ids seen on a produce or consume
	// edge, sorted.
	ClientIDs []string
}

// SpanRef names one span.
type SpanRef struct {
	TraceID trace.TraceID
	SpanID  trace.SpanID
	Service string
}

// StitchKind says what a stitch repairs.
type StitchKind uint8

const (
	// StitchHop: a consumer span that lost its context, paired with the
	// producer span of the same record (by topic, partition and offset, else
	// by message id).
	StitchHop StitchKind = iota
	// StitchPassThrough: a stream processor's root produce span, paired with
	// the consumer span of the same service that handled the input record
	// with the same key just before — context lost inside the service.
	StitchPassThrough
)

var stitchKindNames = [...]string{"hop", "pass-through"}

func (k StitchKind) String() string { return stitchKindNames[k] }

// Stitch pairs two spans that should have been connected by trace context.
// Producer is always the span that wrote a record and Consumer a span that
// read one: for a hop, Producer is upstream of Consumer; for a pass-through,
// Consumer is the input and Producer the output of one service.
type Stitch struct {
	Kind StitchKind
	// Lag is how long after the producer span started the consumer span
	// started (hop stitches; negative when their clocks disagree).
	Lag                time.Duration
	Producer, Consumer SpanRef
	// Topic is the consumed topic; OutTopic (pass-through) the produced one.
	Topic     string
	Group     string // hop: the consumer's group
	OutTopic  string
	Partition int32 // -1 when not matched by offset
	Offset    int64 // -1 when not matched by offset
	MessageID string
	Key       string // pass-through: the record key both share
}

// Graph is the service graph, in the order Finish puts it. A Graph is
// read-only once built.
type Graph struct {
	Nodes    []*Node
	Edges    []*Edge
	Stitches []Stitch
	// Traces and Spans count the input.
	Traces, Spans int

	byKey map[string]*Node
	dg    *simple.DirectedGraph
}

// Node returns the node with the given key, or nil.
func (g *Graph) Node(key string) *Node { return g.byKey[key] }

// Directed returns the graph as a gonum directed graph: the same nodes, one
// edge for every ordered pair of nodes that has at least one Edge.
func (g *Graph) Directed() gg.Directed { return g.dg }

// EdgesFrom returns the edges leaving the node with the given key.
func (g *Graph) EdgesFrom(key string) []*Edge {
	var out []*Edge
	for _, e := range g.Edges {
		if e.From.Key == key {
			out = append(out, e)
		}
	}
	return out
}

// Finish puts the graph in its order — nodes by kind then name; edges by
// from, to, kind, relation and group; stitches by kind, then by the
// consumer's (pass-through: the producer's) trace and span, then by the
// other span — sorts every node's and edge's lists, and indexes it for
// Node, EdgesFrom and Directed. Whoever fills a Graph's fields calls it
// once, before handing the graph out.
func (g *Graph) Finish() {
	slices.SortFunc(g.Nodes, func(a, b *Node) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), strings.Compare(a.Name, b.Name))
	})
	g.byKey = make(map[string]*Node, len(g.Nodes))
	g.dg = simple.NewDirectedGraph()
	for i, n := range g.Nodes {
		n.id = int64(i)
		slices.Sort(n.Instances)
		slices.Sort(n.Operations)
		slices.Sort(n.Partitions)
		slices.Sort(n.Samplers)
		g.byKey[n.Key] = n
		g.dg.AddNode(n)
	}
	slices.SortFunc(g.Edges, func(a, b *Edge) int {
		return cmp.Or(strings.Compare(a.From.Key, b.From.Key), strings.Compare(a.To.Key, b.To.Key),
			cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Relation, b.Relation), strings.Compare(a.Group, b.Group))
	})
	for _, e := range g.Edges {
		slices.Sort(e.ClientIDs)
		if e.From != e.To && !g.dg.HasEdgeFromTo(e.From.id, e.To.id) { // gonum has no self-edges
			g.dg.SetEdge(simple.Edge{F: e.From, T: e.To})
		}
	}
	if !slices.IsSortedFunc(g.Stitches, compareStitches) {
		slices.SortFunc(g.Stitches, compareStitches)
	}
}

// compareStitches orders stitches as Finish does. (cmp.Or would work out
// every comparison before choosing; a set has tens of thousands of
// stitches.)
func compareStitches(a, b Stitch) int {
	if a.Kind != b.Kind {
		return cmp.Compare(a.Kind, b.Kind)
	}
	first, second := [2]*SpanRef{&a.Consumer, &b.Consumer}, [2]*SpanRef{&a.Producer, &b.Producer}
	if a.Kind == StitchPassThrough {
		first, second = second, first
	}
	if c := compareRefs(first[0], first[1]); c != 0 {
		return c
	}
	return compareRefs(second[0], second[1])
}

func compareRefs(a, b *SpanRef) int {
	if c := CompareTraceIDs(a.TraceID, b.TraceID); c != 0 {
		return c
	}
	return cmp.Compare(a.SpanID, b.SpanID)
}

// CompareTraceIDs orders trace IDs as numbers.
func CompareTraceIDs(a, b trace.TraceID) int {
	if a.High != b.High {
		return cmp.Compare(a.High, b.High)
	}
	return cmp.Compare(a.Low, b.Low)
}

// Percentiles returns the nearest-rank p50, p95 and p99 of nanosecond
// samples, never below zero: a consumer whose clock runs behind its
// producer's gives a latency below zero, shown as zero (the clock-skew
// finding says how far the clocks are apart). Of more than ExactSamples
// samples they are rounded with RoundLatency. It does not change lat.
func Percentiles(lat []int64) (p50, p95, p99 time.Duration) {
	if len(lat) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	at := func(p int) time.Duration {
		v := s[max(0, (p*len(s)+99)/100-1)]
		if len(s) > ExactSamples {
			v = RoundLatency(v)
		}
		return time.Duration(max(0, v))
	}
	return at(50), at(95), at(99)
}

// ExactSamples is how many latency samples an edge may have and still
// show exact percentiles. Past it they are rounded, so that an edge's
// samples can be kept as counts of rounded values: a few thousand at
// most, however busy the edge, in a result merged over hours of ktrace
// stream's windows as in a single run.
const ExactSamples = 1024

// RoundLatency rounds a latency in nanoseconds to the middle of its step,
// 128 steps to each power of two: within 0.4%. Latencies under 256 ns
// are kept; one below zero is rounded as its opposite is. The rounding
// keeps the order of any two latencies (it never swaps them), so the
// percentiles of rounded samples are the rounded percentiles.
func RoundLatency(v int64) int64 {
	switch {
	case v == math.MinInt64:
		return v
	case v < 0:
		return -RoundLatency(-v)
	}
	shift := bits.Len64(uint64(v)) - 8 // 2^7 steps in the octave
	if shift <= 0 {
		return v
	}
	return v>>shift<<shift | 1<<(shift-1)
}
