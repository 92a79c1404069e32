package graph

import (
	"math"
	"math/bits"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
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
	// What the builder reads or writes for most spans sits next to the
	// counts, in the same cache line.
	seq      int32  // index in Graph.Nodes while building
	partBits uint64 // partitions below 64 in partitions
	opSeen   bitSet // the builder's name ids of operations
	caller   *Node  // a service's unknown:NAME node, once the builder made it
	// Instances are the service.instance.id (else host.name) values seen,
	// sorted. Services only.
	Instances []string
	// Operations are the span names seen, sorted. Services only.
	Operations []string
	// Partitions are the partitions seen, sorted. Topics only.
	Partitions []int32

	instances  map[string]struct{}
	operations map[string]struct{}
	partitions map[int32]struct{}
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
)

var relationNames = [...]string{"span", "parent", "link", "stitched"}

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
	// nlat counts the edge's latency samples, which the builder logs in the
	// order they come (Builder.addLatency), not in the edge.
	nlat int
	seq  int32 // index in Graph.Edges while building
	// P50, P95 and P99 are latency percentiles (nearest rank), never below
	// zero: clock skew that puts a consumer before its producer counts as 0.
	P50, P95, P99 time.Duration
	// ClientIDs are the Kafka client ids seen on a produce or consume
	// edge, sorted.
	ClientIDs []string

	clientIDs map[string]struct{}
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
// Consumer is the input and Producer the output of one service. A hop's
// Producer.Service, Topic and Consumer.Service are its nodes' names, the
// very strings (Node.Name): hops between the same nodes share them.
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
	// The fields are in this order so that what judging a hop reads of it
	// (kind, lag, the three names, the consumer's trace, the group) is in
	// its first 128 bytes.
}

// Graph is the service graph. Nodes are sorted by kind then name, edges by
// from, to, kind, relation and group; Stitches by consumer trace and span.
// A Graph is read-only once built.
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

// finish sorts the graph and computes the edges' latency percentiles. With
// f, f(g) runs on this goroutine while the percentiles are computed on the
// other CPUs (so f must not read an edge's P50, P95 or P99), then this
// goroutine helps with what is left of them. logs hold the edges' latency
// samples (Builder.samples), and early, if not nil, those a startGather
// began to gather before (each edge's seq is still its number there).
func (g *Graph) finish(f func(*Graph), early *gathering, logs []sampleLog) {
	sort.Slice(g.Nodes, func(i, j int) bool {
		a, b := g.Nodes[i], g.Nodes[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Name < b.Name
	})
	g.dg = simple.NewDirectedGraph()
	for i, n := range g.Nodes {
		n.id = int64(i)
		n.Instances = sortedKeys(n.instances)
		n.Operations = sortedKeys(n.operations)
		n.Partitions = sortedKeys(n.partitions)
		n.instances, n.operations, n.partitions, n.caller = nil, nil, nil, nil
		g.dg.AddNode(n)
	}
	sort.Slice(g.Edges, func(i, j int) bool {
		a, b := g.Edges[i], g.Edges[j]
		switch {
		case a.From.Key != b.From.Key:
			return a.From.Key < b.From.Key
		case a.To.Key != b.To.Key:
			return a.To.Key < b.To.Key
		case a.Kind != b.Kind:
			return a.Kind < b.Kind
		case a.Relation != b.Relation:
			return a.Relation < b.Relation
		}
		return a.Group < b.Group
	})
	for _, e := range g.Edges {
		e.ClientIDs = sortedKeys(e.clientIDs)
		e.clientIDs = nil
		if !g.dg.HasEdgeFromTo(e.From.id, e.To.id) {
			g.dg.SetEdge(simple.Edge{F: e.From, T: e.To})
		}
	}
	sort.Slice(g.Stitches, func(i, j int) bool {
		if g.Stitches[i].Kind != g.Stitches[j].Kind {
			return g.Stitches[i].Kind < g.Stitches[j].Kind
		}
		a, b := g.Stitches[i].Consumer, g.Stitches[j].Consumer
		if g.Stitches[i].Kind == StitchPassThrough {
			a, b = g.Stitches[i].Producer, g.Stitches[j].Producer
		}
		if a.TraceID != b.TraceID {
			if a.TraceID.High != b.TraceID.High {
				return a.TraceID.High < b.TraceID.High
			}
			return a.TraceID.Low < b.TraceID.Low
		}
		return a.SpanID < b.SpanID
	})
	// The edges' latency samples are gathered from the builders' logs into
	// one array, each edge's in a stretch of its own (those early holds, on
	// its goroutine, into stretches of their own), then their percentiles
	// are computed, on every CPU when there are many samples: goroutines
	// take edges in turn, as their sample counts differ widely and fixed
	// shares would not be even.
	samples := 0
	num := make([]int32, len(g.Edges)) // an edge's number where early was begun
	counts := make([]int, len(g.Edges))
	for i, e := range g.Edges {
		num[i], e.seq = e.seq, int32(i) // its place in the finished graph, for gather
		counts[i] = e.nlat
		if early != nil && int(num[i]) < len(early.counts) {
			counts[i] -= early.counts[num[i]]
		}
		samples += e.nlat
	}
	lat := make([][]int64, len(g.Edges))
	gatherSamples(g.Edges, logs, counts, lat)
	// samplesOf returns edge i's samples, once early is done.
	samplesOf := func(i int) []int64 {
		if early == nil || int(num[i]) >= len(early.lat) {
			return lat[i]
		}
		if e := early.lat[num[i]]; len(lat[i]) == 0 {
			return e
		} else if len(e) > 0 {
			return append(slices.Clip(e), lat[i]...)
		}
		return lat[i]
	}
	var next atomic.Int64
	work := func() {
		if early != nil {
			<-early.done
		}
		var r ranker
		for i := int(next.Add(1)) - 1; i < len(g.Edges); i = int(next.Add(1)) - 1 {
			e := g.Edges[i]
			e.P50, e.P95, e.P99 = r.percentiles(samplesOf(i))
			// A consumer whose clock runs behind its producer's gives a
			// latency below zero: shown as zero (the clock-skew finding
			// says how far the clocks are apart).
			e.P50, e.P95, e.P99 = max(e.P50, 0), max(e.P95, 0), max(e.P99, 0)
		}
	}
	workers := 1
	if samples >= parallelSamples {
		workers = min(runtime.GOMAXPROCS(0), len(g.Edges))
	}
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	if f != nil {
		f(g)
	}
	work()
	wg.Wait()
}

// parallelSamples is how many latency samples make it worth gathering and
// ranking them on every CPU.
const parallelSamples = 100_000

// gathering is latency samples being gathered on a goroutine of its own
// (startGather).
type gathering struct {
	counts []int     // each edge's samples, by the edges' numbers when it began
	lat    [][]int64 // the samples, likewise, once done is closed
	done   chan struct{}
}

// startGather gathers the samples logs hold for edges, numbered by their
// seq (edges[i].seq == i) with e.nlat samples each, on a new goroutine.
// The logs and what edges are numbered then are its own until done.
func startGather(edges []*Edge, logs []sampleLog) *gathering {
	gt := &gathering{counts: make([]int, len(edges)), lat: make([][]int64, len(edges)), done: make(chan struct{})}
	for i, e := range edges {
		gt.counts[i] = e.nlat
	}
	ats := logIndexes(logs)
	go func() {
		gatherInto(gt.counts, logs, ats, gt.lat)
		close(gt.done)
	}()
	return gt
}

// gatherSamples sets lat[i] to the latency samples of edges[i] (counts[i]
// of them), read from the builders' logs into one array, the edges'
// stretches in their order. The edges' seq must be their index.
func gatherSamples(edges []*Edge, logs []sampleLog, counts []int, lat [][]int64) {
	gatherInto(counts, logs, logIndexes(logs), lat)
}

// logIndexes maps each log's edge numbers to the edges' seq.
func logIndexes(logs []sampleLog) [][]int32 {
	ats := make([][]int32, len(logs))
	for k, lg := range logs {
		ats[k] = make([]int32, len(lg.edges))
		for j, e := range lg.edges {
			ats[k][j] = e.seq
		}
	}
	return ats
}

// gatherInto is gatherSamples with the logs' edge numbers mapped (ats).
func gatherInto(counts []int, logs []sampleLog, ats [][]int32, lat [][]int64) {
	n := 0
	for _, c := range counts {
		n += c
	}
	all := make([]int64, n)
	pos := make([]int, len(counts)) // where an edge's next sample goes
	off := 0
	for i, c := range counts {
		pos[i] = off
		off += c
	}
	for k, lg := range logs {
		at := ats[k]
		for _, c := range lg.list.packed() {
			for _, p := range c {
				i := at[uint16(p)]
				all[pos[i]] = p >> 16
				pos[i]++
			}
		}
		for _, s := range lg.list.wide {
			i := at[s.edge]
			all[pos[i]] = s.lat
			pos[i]++
		}
	}
	off = 0
	for i, c := range counts {
		lat[i] = all[off:pos[i]:pos[i]]
		off += c
	}
}

func sortedKeys[K int32 | string](m map[K]struct{}) []K {
	if len(m) == 0 {
		return nil
	}
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// percentiles returns nearest-rank p50, p95 and p99 of nanosecond
// samples. Negative samples (clock skew) count as they are. The ranks are
// found without sorting the samples (ranks), which are left as they were.
func percentiles(lat []int64) (p50, p95, p99 time.Duration) {
	var r ranker
	return r.percentiles(lat)
}

// ranker finds ranks, keeping its counters from one call to the next (an
// edge's percentiles after another's need no new ones).
type ranker struct {
	count *[1 << rankBits]uint32
	slot  *[1 << rankBits]uint8
}

// percentiles is the package's percentiles.
func (rk *ranker) percentiles(lat []int64) (p50, p95, p99 time.Duration) {
	n := len(lat)
	if n == 0 {
		return 0, 0, 0
	}
	lo, hi := lat[0], lat[0]
	for _, v := range lat {
		lo, hi = min(lo, v), max(hi, v)
	}
	rank := func(p int) int {
		return max(0, (p*n+99)/100-1)
	}
	var v [3]int64
	rk.ranks(lat, lo, hi, []int{rank(50), rank(95), rank(99)}, v[:])
	return time.Duration(v[0]), time.Duration(v[1]), time.Duration(v[2])
}

// rankBits sets the most buckets ranks counts into: 2^rankBits. Fewer
// values get fewer buckets (two to four values each), so that an edge with
// a few hundred samples does not clear and scan 2^rankBits counters, and
// finding the ranks' buckets costs less than counting the values.
const rankBits = 11

// ranks sets out[i] to the value a sorted copy of a holds at rs[i] (rs
// ascending, at most 255 ranks) without sorting a, whose least and greatest
// values are lo and hi: it counts the values into buckets by their high
// bits above lo, then gathers, in one more
// pass, the values of the buckets the ranks fall in and looks at those the
// same way, with the next bits. Each level reads the values in order with
// no unpredictable branch (a quickselect's comparisons with its pivot are a
// coin toss each), and the levels are few: the buckets' width shrinks by
// 2^rankBits each time. It does not change a.
func (rk *ranker) ranks(a []int64, lo, hi int64, rs []int, out []int64) {
	n := len(a)
	if n <= 64 {
		b := slices.Clone(a)
		slices.Sort(b)
		for i, r := range rs {
			out[i] = b[r]
		}
		return
	}
	if lo == hi {
		for i := range rs {
			out[i] = lo
		}
		return
	}
	// Differences from lo, unsigned: any int64 range fits.
	nb := min(rankBits, bits.Len(uint(n))-2)
	shift := max(0, bits.Len64(uint64(hi)-uint64(lo))-nb)
	if rk.count == nil {
		rk.count, rk.slot = new([1 << rankBits]uint32), new([1 << rankBits]uint8)
	}
	// A level is done with them before the next begins. The buckets'
	// numbers are below 2^nb; masking them tells the compiler so.
	const m = 1<<rankBits - 1
	count, slot := rk.count, rk.slot
	clear(count[:1<<nb])
	clear(slot[:1<<nb])
	for _, v := range a {
		count[(uint64(v)-uint64(lo))>>shift&m]++
	}
	// The bucket each rank falls in, and the ranks below that bucket; ranks
	// in one bucket form a group, which gathers the bucket's values.
	type group struct {
		i, j   int // the group's ranks: rs[i:j]
		below  int
		in     []int64
		lo, hi int64 // of in
	}
	var groups []group
	// slot: a bucket's group number + 1; 0: none.
	b, seen := 0, 0
	for i, r := range rs {
		for seen+int(count[b&m]) <= r {
			seen += int(count[b&m])
			b++
		}
		if slot[b&m] == 0 {
			groups = append(groups, group{i: i, below: seen, in: make([]int64, 0, count[b&m]), lo: math.MaxInt64, hi: math.MinInt64})
			slot[b&m] = uint8(len(groups))
		}
		groups[len(groups)-1].j = i + 1
	}
	for _, v := range a {
		if g := slot[(uint64(v)-uint64(lo))>>shift&m]; g != 0 {
			gr := &groups[g-1]
			gr.in = append(gr.in, v)
			gr.lo, gr.hi = min(gr.lo, v), max(gr.hi, v)
		}
	}
	for _, g := range groups {
		sub := make([]int, g.j-g.i)
		for k := range sub {
			sub[k] = rs[g.i+k] - g.below
		}
		rk.ranks(g.in, g.lo, g.hi, sub, out[g.i:g.j])
	}
}
