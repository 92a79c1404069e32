package graph

import (
	"runtime"
	"time"

	"github.com/ktrace-dev/ktrace/internal/chunk"
	"github.com/ktrace-dev/ktrace/internal/split"
	"github.com/ktrace-dev/ktrace/trace"
)

// edgeKey names an edge by numbers only, so that finding one compares 16
// bytes: its nodes by sequence number and its group by name id (-1: none).
type edgeKey struct {
	from, to int32
	group    int32
	kind     EdgeKind
	rel      Relation
}

// edgeSlot is an edge in the builder's table: its key packed in 64 bits
// (packEdge) and the spans the walk counted behind it, each with a latency
// sample (observe), and their errors, in 24 bytes, so that the table of a
// set's edges stays in the caches while the spans stream through. The
// edge's other counts are the Edge's own; flushEdges adds the slot's to
// them, before they could overflow (Begin).
type edgeSlot struct {
	key           uint64
	count, errors uint32
	seq1          int32 // the edge's number+1; 0: an empty slot
}

// maxUnflushed bounds the spans added between two flushes of the edge
// slots' counts: a span counts on two edges at most, so no count passes
// math.MaxUint32.
const maxUnflushed = 1 << 30

// packEdge packs an edge's key in 64 bits when its numbers fit in 16 bits
// each (a set of fewer than 65,535 nodes and group names, the usual case).
func packEdge(from, to, group int32, kind EdgeKind, rel Relation) (uint64, bool) {
	if max(uint32(from), uint32(to), uint32(group+1)) >= 0xFFFF {
		return 0, false
	}
	return uint64(from)<<48 | uint64(to)<<32 | uint64(group+1)<<16 | uint64(kind)<<8 | uint64(rel), true
}

// recordKey names a record: its topic (by node id, which is cheaper to
// hash than the name), partition and offset.
type recordKey struct {
	topic     int32
	partition int32
	offset    int64
}

type spanKey struct {
	tid trace.TraceID
	sid trace.SpanID
}

// sample is a latency sample of the edge numbered edge where it was taken.
type sample struct {
	lat  int64
	edge int32
}

// latLog is latency samples in the order they were taken, by the numbers
// their edges had where they were taken, eight bytes each: the latency in
// the high 48 bits and the edge's number in the low 16. Half the bytes of
// a sample whole are half the memory to clear, write and read back (a
// million spans log 700,000 samples). Samples that do not pack (a
// latency of 39 hours or more, or a builder's 65,536th edge) are kept
// whole in wide.
//
// Room is made before the samples come (reserve), a trace's worth at a
// time, so that add, which every span calls, neither checks for room
// beyond its bounds check nor makes it, and is inlined.
type latLog struct {
	full [][]int64 // the filled blocks
	cur  []int64   // the block being filled: cur[:i]
	i    int
	wide []sample // few: a plain slice
}

// reserve makes room for n more samples.
func (l *latLog) reserve(n int) {
	if len(l.cur)-l.i >= n {
		return
	}
	if l.i > 0 {
		l.full = append(l.full, l.cur[:l.i])
	}
	l.cur, l.i = make([]int64, max(chunk.Len, n)), 0
}

// add logs latency v of edge number edge, in room reserve made.
func (l *latLog) add(edge int32, v int64) {
	if uint64(v+1<<47)>>48|uint64(uint32(edge))>>16 != 0 {
		l.wide = append(l.wide, sample{v, edge})
		return
	}
	l.cur[l.i] = v<<16 | int64(edge)
	l.i++
}

// packed returns the packed samples in their blocks, in order.
func (l *latLog) packed() [][]int64 {
	if l.i == 0 {
		return l.full
	}
	return append(l.full[:len(l.full):len(l.full)], l.cur[:l.i])
}

// Len returns the number of samples.
func (l *latLog) Len() int {
	n := l.i + len(l.wide)
	for _, b := range l.full {
		n += len(b)
	}
	return n
}

// sampleLog is a latLog and the edges its samples belong to, by the numbers
// they had there.
type sampleLog struct {
	list  latLog
	edges []*Edge
}

// producer is what the builder remembers of a producer span for pairing.
// It holds no pointers (nodes by id), so the collector never scans the
// list, which grows with the input.
type producer struct {
	tid   trace.TraceID
	sid   trace.SpanID
	start int64
	// partition and offset are -1 when the span does not carry them.
	offset     int64
	partition  int32
	svc, topic int32
}

// producerMsgID is the message ID of the producer at index j, for the few
// systems that set one.
type producerMsgID struct {
	j  int
	id string
}

// pendingConsumer is a consumer span whose producer could not be found in
// its own trace; it is resolved (link, stitch or unmatched) by Graph.
type pendingConsumer struct {
	ref       SpanRef
	node      *Node
	topic     *Node
	group     string
	client    string
	partition int32
	offset    int64
	msgID     string
	start     int64
	err       bool
	links     []trace.Ref
}

// rootProducer is a produce span with no parent and no link.
type rootProducer struct {
	ref        SpanRef
	node       *Node
	topic      *Node
	key        string
	client     string
	start, dur int64
	err        bool
}

type keyedKey struct{ service, key string }

// keyedConsumer is a consumer span that names its record's key.
type keyedConsumer struct {
	ref   SpanRef
	topic string
	start int64
}

// Builder accumulates traces into a graph. Add traces in any order, then
// call Graph once. It keeps only what pairing needs, not the traces.
type Builder struct {
	g *Graph
	// producers are kept in a list, not indexed: only consumers whose
	// producer is not their parent (pending) need them, usually few, so
	// Graph indexes those and runs the producers past the index once.
	producers producers
	msgIDs    []producerMsgID
	pending   chunk.List[pendingConsumer]
	roots     []rootProducer
	keyed     map[keyedKey][]keyedConsumer
	nodes     [len(nodeKindNames)]map[string]*Node
	services  map[*trace.Resource]*Node
	idx       trace.Index
	// edges is an open-addressing table of the edges by packed key, at
	// most three quarters full: a set has hundreds or thousands of edges,
	// and a span adds to one, so finding it compares 8 bytes and counting
	// it writes the same 24 (edgeSlot). Edges whose key does not pack are
	// in bigEdges.
	edges    []edgeSlot
	edgeMask uint64
	bigEdges map[edgeKey]*edgeSlot
	// unflushed counts the spans added since the slots' counts were
	// last added to their edges.
	unflushed int
	cur       *trace.Index // the index of the trace being added
	spans     []trace.Span // its spans
	// Services, topics and operations found without hashing names
	// (namecache.go).
	resCache  resCache
	names     names
	topicByID []*Node // by name id
	// hopStitched holds the pending consumers Graph stitched, by number.
	hopStitched bitSet
	// samples are the latency samples of the builder's edges, in the order
	// they came; logs those of builders merged into it. Appending to one of
	// a thousand edges' own lists cost a cache miss or two each time, while
	// the spans stream through the cache (about 15 ms a million spans);
	// the log is written in order, and Graph sorts it out once.
	samples latLog
	logs    []sampleLog
}

// NewBuilder returns an empty builder.
func NewBuilder() *Builder {
	return &Builder{
		g:        &Graph{byKey: map[string]*Node{}},
		edges:    make([]edgeSlot, 512),
		edgeMask: 511,
		keyed:    map[keyedKey][]keyedConsumer{},
		services: map[*trace.Resource]*Node{},
		names:    newNames(),
	}
}

// Build returns the graph of traces. Large sets are shared among the CPUs:
// each builds from a run of traces (a CPU done early takes half of what is
// left of another's) and the builders are merged in order, which gives the
// graph one builder would.
func Build(traces []trace.Trace) *Graph {
	return BuildWorkers(traces, 0)
}

// BuildWorkers is Build with a number of goroutines; zero means one per
// CPU (fewer for small sets).
func BuildWorkers(traces []trace.Trace, workers int) *Graph {
	bs := split.Balanced(len(traces), workers, 0, func(lo int, take func(int) bool) *Builder {
		b := NewBuilder()
		for i := lo; take(i); i++ {
			b.Add(&traces[i])
		}
		return b
	})
	for _, o := range bs[1:] {
		bs[0].Merge(o)
	}
	return bs[0].Graph()
}

// Merge folds o, which was fed the traces that come after b's, into b, as
// if b had been fed them itself. o is spent afterwards.
func (b *Builder) Merge(o *Builder) {
	b.g.Traces += o.g.Traces
	b.g.Spans += o.g.Spans
	to := make([]*Node, len(o.g.Nodes))
	toSeq := make([]int32, len(o.g.Nodes))
	for _, n := range o.g.Nodes {
		t := b.node(n.Kind, n.Name)
		t.Spans += n.Spans
		t.Errors += n.Errors
		for k := range n.instances {
			addTo(&t.instances, k)
		}
		for k := range n.operations {
			addTo(&t.operations, k)
		}
		for k := range n.partitions {
			t.notePartition(k)
		}
		to[n.seq], toSeq[n.seq] = t, t.seq
	}
	o.flushEdges()
	toEdge := make([]*Edge, len(o.g.Edges))
	for _, e := range o.g.Edges {
		t := b.g.Edges[b.edge(to[e.From.seq], to[e.To.seq], e.Kind, e.Relation, e.Group).seq1-1]
		t.Count += e.Count
		t.Errors += e.Errors
		t.nlat += e.nlat
		for k := range e.clientIDs {
			addTo(&t.clientIDs, k)
		}
		toEdge[e.seq] = t
	}
	// o's samples stay where they are, as logs of b's edges.
	b.logs = append(b.logs, sampleLog{o.samples, toEdge})
	for _, lg := range o.logs {
		for i, e := range lg.edges {
			lg.edges[i] = toEdge[e.seq]
		}
		b.logs = append(b.logs, lg)
	}
	base := b.producers.Len()
	b.producers.merge(&o.producers, toSeq)
	for _, m := range o.msgIDs {
		b.msgIDs = append(b.msgIDs, producerMsgID{base + m.j, m.id})
	}
	for j := 0; j < o.pending.Len(); j++ {
		pc := *o.pending.At(j)
		pc.node, pc.topic = to[pc.node.seq], to[pc.topic.seq]
		b.pending.Add(pc)
	}
	for _, r := range o.roots {
		r.node, r.topic = to[r.node.seq], to[r.topic.seq]
		b.roots = append(b.roots, r)
	}
	for k, list := range o.keyed {
		b.keyed[k] = append(b.keyed[k], list...)
	}
	*o = Builder{}
}

func (b *Builder) node(kind NodeKind, name string) *Node {
	n, ok := b.nodes[kind][name]
	if !ok {
		if b.nodes[kind] == nil {
			b.nodes[kind] = map[string]*Node{}
		}
		key := nodeKindNames[kind] + ":" + name
		n = &Node{Key: key, Kind: kind, Name: name, seq: int32(len(b.g.Nodes))}
		b.nodes[kind][name] = n
		b.g.byKey[key] = n
		b.g.Nodes = append(b.g.Nodes, n)
	}
	return n
}

// service returns the service node of a span's resource, noting the
// resource's instance the first time the resource is seen.
func (b *Builder) service(s *trace.Span) *Node {
	c := b.resCache.slot(s.Resource)
	if c.node != nil && c.r == s.Resource {
		return c.node
	}
	n, ok := b.services[s.Resource]
	if !ok {
		n = b.node(KindService, s.Service())
		if inst := s.Resource.Instance(); inst != "" {
			addTo(&n.instances, inst)
		}
		b.services[s.Resource] = n
	}
	*c = resSlot{s.Resource, n}
	return n
}

// topic returns the node of topic name.
func (b *Builder) topic(name string) *Node {
	id := b.names.id(name)
	if int(id) < len(b.topicByID) {
		if n := b.topicByID[id]; n != nil {
			return n
		}
	} else {
		b.topicByID = append(b.topicByID, make([]*Node, int(id)+1-len(b.topicByID))...)
	}
	n := b.node(KindTopic, name)
	b.topicByID[id] = n
	return n
}

// edge returns the slot of the edge from from to to, making the edge if
// it is new. The slot is b's to write until the next call.
func (b *Builder) edge(from, to *Node, kind EdgeKind, rel Relation, group string) *edgeSlot {
	gid := int32(-1)
	if group != "" {
		gid = b.names.id(group)
	}
	key, ok := packEdge(from.seq, to.seq, gid, kind, rel)
	if !ok {
		return b.bigEdge(edgeKey{from.seq, to.seq, gid, kind, rel}, from, to, group)
	}
	for h := edgeHash(key) & b.edgeMask; ; h = (h + 1) & b.edgeMask {
		sl := &b.edges[h]
		if sl.key == key && sl.seq1 != 0 {
			return sl
		}
		if sl.seq1 == 0 {
			*sl = edgeSlot{key: key, seq1: b.newEdge(edgeKey{from.seq, to.seq, gid, kind, rel}, from, to, group) + 1}
			if 4*len(b.g.Edges) > 3*len(b.edges) {
				b.growEdges()
				return b.edge(from, to, kind, rel, group)
			}
			return sl
		}
	}
}

// edgeHash spreads a packed key's bits over the low ones.
func edgeHash(key uint64) uint64 {
	key ^= key >> 29
	return (key * 0x9E3779B97F4A7C15) >> 32
}

// newEdge makes the edge k and returns its number.
func (b *Builder) newEdge(k edgeKey, from, to *Node, group string) int32 {
	e := &Edge{From: from, To: to, Kind: k.kind, Relation: k.rel, Group: group, seq: int32(len(b.g.Edges))}
	b.g.Edges = append(b.g.Edges, e)
	return e.seq
}

// bigEdge is edge for a key that does not pack.
func (b *Builder) bigEdge(k edgeKey, from, to *Node, group string) *edgeSlot {
	sl := b.bigEdges[k]
	if sl == nil {
		if b.bigEdges == nil {
			b.bigEdges = map[edgeKey]*edgeSlot{}
		}
		sl = &edgeSlot{seq1: b.newEdge(k, from, to, group) + 1}
		b.bigEdges[k] = sl
	}
	return sl
}

// growEdges doubles the edge table.
func (b *Builder) growEdges() {
	old := b.edges
	b.edges = make([]edgeSlot, 2*len(old))
	b.edgeMask = uint64(len(b.edges) - 1)
	for _, sl := range old {
		if sl.seq1 != 0 {
			h := edgeHash(sl.key) & b.edgeMask
			for b.edges[h].seq1 != 0 {
				h = (h + 1) & b.edgeMask
			}
			b.edges[h] = sl
		}
	}
}

// flushEdges adds the counts the slots hold to their edges.
func (b *Builder) flushEdges() {
	flush := func(sl *edgeSlot) {
		if sl.seq1 != 0 {
			e := b.g.Edges[sl.seq1-1]
			e.Count += int(sl.count)
			e.nlat += int(sl.count)
			e.Errors += int(sl.errors)
			sl.count, sl.errors = 0, 0
		}
	}
	for i := range b.edges {
		flush(&b.edges[i])
	}
	for _, sl := range b.bigEdges {
		flush(sl)
	}
}

// notePartition records partition p of a topic node; partitions below 64,
// the usual ones, are looked up in a bit set first.
func (n *Node) notePartition(p int32) {
	if p < 64 {
		if n.partBits&(1<<p) != 0 {
			return
		}
		n.partBits |= 1 << p
	}
	addTo(&n.partitions, p)
}

// observeClient is observe that also records a Kafka client id.
func (b *Builder) observeClient(e *edgeSlot, err bool, latency int64, client string) {
	if client != "" {
		addTo(&b.g.Edges[e.seq1-1].clientIDs, client)
	}
	b.observe(e, err, latency)
}

// observe counts a span (or record) behind e, with its latency, logged in
// room made for it (Begin makes room for a trace's spans).
func (b *Builder) observe(e *edgeSlot, err bool, latency int64) {
	e.count++
	if err {
		e.errors++
	}
	b.samples.add(e.seq1-1, latency)
}

// addLatency logs a latency sample of edge e that observe did not count.
func (b *Builder) addLatency(e *Edge, v int64) {
	e.nlat++
	b.samples.add(e.seq, v)
}

func addTo[K comparable](m *map[K]struct{}, k K) {
	if *m == nil {
		*m = map[K]struct{}{}
	}
	(*m)[k] = struct{}{}
}

// Add folds one trace into the graph. The builder does not keep t.
func (b *Builder) Add(t *trace.Trace) {
	b.idx.Reset(t.Spans)
	b.AddIndexed(t, &b.idx)
}

// AddIndexed is Add for a caller that has already indexed t (idx.Reset(t.Spans)),
// to read each trace once for several purposes.
func (b *Builder) AddIndexed(t *trace.Trace, idx *trace.Index) {
	b.Begin(t, idx)
	for i := range t.Spans {
		b.addSpan(t.Spans, i, &t.Spans[i], idx.Info(i))
	}
}

// Begin starts adding t, already indexed in idx, span by span: call
// AddSpan once for each of its spans before the next Begin or Graph. A
// caller with its own work per span does it in the same loop, so a large
// trace is walked once.
func (b *Builder) Begin(t *trace.Trace, idx *trace.Index) {
	b.g.Traces++
	b.g.Spans += len(t.Spans)
	if b.unflushed+len(t.Spans) > maxUnflushed {
		b.flushEdges()
		b.unflushed = 0
	}
	b.unflushed += len(t.Spans)
	b.cur, b.spans = idx, t.Spans
	b.samples.reserve(2 * len(t.Spans)) // a span adds to two edges at most
}

// AddSpan adds span i of the trace begun last. When the span is a consumer
// whose producer is not its parent, it returns the span's number among such
// consumers, counted from 0 across the builder's traces (and those of
// builders merged into it, after its own), for Stitched; else -1.
func (b *Builder) AddSpan(i int) int {
	return b.addSpan(b.spans, i, &b.spans[i], b.cur.Info(i))
}

// AddSpanInfo is AddSpan for a caller that has the span (the trace's
// spans[i]) and what the index knows of it (Info(i)) at hand, so that they
// are not read twice.
func (b *Builder) AddSpanInfo(i int, s *trace.Span, in trace.Info) int {
	return b.addSpan(b.spans, i, s, in)
}

// loggedElsewhere counts the samples in the logs of builders merged into b.
func (b *Builder) loggedElsewhere() int {
	n := 0
	for _, lg := range b.logs {
		n += lg.list.Len()
	}
	return n
}

// Pending returns the number of pending consumers so far (see AddSpan).
func (b *Builder) Pending() int { return b.pending.Len() }

// Stitched reports whether pending consumer k (as AddSpan numbered it) was
// stitched to its producer as a hop. Ask it once the consumers are resolved:
// after Graph returns, or from GraphWith's f.
func (b *Builder) Stitched(k int) bool {
	return b.hopStitched.has(k)
}

// addSpan adds span i of spans, s, which the index says in of, and
// returns what AddSpan does.
func (b *Builder) addSpan(spans []trace.Span, i int, s *trace.Span, in trace.Info) int {
	svcName := s.Service()
	svc := b.service(s)
	svc.Spans++
	if s.Error {
		svc.Errors++
	}
	if svc.opSeen.add(b.names.id(s.Operation)) {
		addTo(&svc.operations, s.Operation)
	}
	pi := in.Parent
	var p *trace.Span
	if pi >= 0 {
		p = &spans[pi]
	}

	if m := in.View; m != nil && m.Destination != "" {
		topic := b.topic(m.Destination)
		if m.Partition >= 0 {
			topic.notePartition(m.Partition)
		}
		switch {
		case m.IsProducer():
			if p != nil && !in.Cross && b.cur.SameHop(pi, m, true) {
				return -1 // nested publish span of the same record
			}
			topic.Spans++
			if s.Error {
				topic.Errors++
			}
			if pi != trace.NoParent {
				b.observeClient(b.edge(svc, topic, EdgeProduce, RelParent, ""), s.Error, int64(s.Duration), m.ClientID)
			} else if s.HasLink() {
				b.observeClient(b.edge(svc, topic, EdgeProduce, RelLink, ""), s.Error, int64(s.Duration), m.ClientID)
			} else {
				b.addRoot(s, svc, topic, m)
			}
			pr := producer{tid: s.TraceID, sid: s.SpanID, start: s.Start.UnixNano(), partition: -1, offset: -1, svc: svc.seq, topic: topic.seq}
			if m.Partition >= 0 && m.Offset >= 0 {
				pr.partition, pr.offset = m.Partition, m.Offset
			}
			if m.MessageID != "" {
				b.msgIDs = append(b.msgIDs, producerMsgID{b.producers.Len(), m.MessageID})
			}
			b.producers.add(pr)
			return -1
		case m.IsConsumer():
			if p != nil && !in.Cross && b.cur.SameHop(pi, m, false) {
				return -1 // process span under the receive span of the same record
			}
			topic.Spans++
			if s.Error {
				topic.Errors++
			}
			if m.Key != "" {
				b.addKeyed(s, svcName, m)
			}
			if b.cur.SameHop(pi, m, true) {
				b.observeClient(b.edge(topic, svc, EdgeConsume, RelParent, m.ConsumerGroup),
					s.Error, s.Start.UnixNano()-p.Start.UnixNano(), m.ClientID)
				return -1
			}
			return b.addPending(s, svc, topic, m)
		}
	}

	if p != nil {
		if in.Cross {
			lat := int64(s.Duration)
			if p.Kind == trace.KindClient {
				lat = int64(p.Duration)
			}
			b.observe(b.edge(b.service(p), svc, EdgeCall, RelParent, ""), s.Error, lat)
		}
	} else if pi == trace.NoParent && s.Kind == trace.KindServer {
		if svc.caller == nil {
			svc.caller = b.node(KindUnknownCaller, svcName)
		}
		b.observe(b.edge(svc.caller, svc, EdgeCall, RelSpan, ""), s.Error, int64(s.Duration))
	}

	if s.Kind == trace.KindClient || s.Kind == trace.KindProducer {
		if !in.Remote {
			b.addPeer(s, svc, svcName)
		}
	}
	return -1
}

// The spans below are few, and what they keep is large: their work is
// kept out of addSpan, whose frame and registers serve the usual spans.

// addRoot keeps a root produce span: an origin, or a stream processor that
// lost the context of its input. Graph decides which.
func (b *Builder) addRoot(s *trace.Span, svc, topic *Node, m *trace.Messaging) {
	b.roots = append(b.roots, rootProducer{ref: spanRef(s), node: svc, topic: topic, key: m.Key, client: m.ClientID,
		start: s.Start.UnixNano(), dur: int64(s.Duration), err: s.Error})
}

// addKeyed keeps a consumer span that names its record's key.
func (b *Builder) addKeyed(s *trace.Span, svcName string, m *trace.Messaging) {
	k := keyedKey{svcName, m.Key}
	b.keyed[k] = append(b.keyed[k], keyedConsumer{ref: spanRef(s), topic: m.Destination, start: s.Start.UnixNano()})
}

// addPending keeps a consumer span whose producer is not its parent, and
// returns its number among the pending consumers.
func (b *Builder) addPending(s *trace.Span, svc, topic *Node, m *trace.Messaging) int {
	pc := pendingConsumer{ref: spanRef(s), node: svc, topic: topic, group: m.ConsumerGroup, client: m.ClientID,
		partition: m.Partition, offset: m.Offset, msgID: m.MessageID,
		start: s.Start.UnixNano(), err: s.Error}
	for _, r := range s.Refs {
		if r.Type == trace.RefLink {
			pc.links = append(pc.links, r)
		}
	}
	b.pending.Add(pc)
	return b.pending.Len() - 1
}

// addPeer counts a client or producer span with no child in another
// service against what it names as its peer, if anything.
func (b *Builder) addPeer(s *trace.Span, svc *Node, svcName string) {
	peer := s.Peer()
	var target *Node
	switch {
	case peer.DBSystem != "":
		name := peer.DBSystem
		if peer.DBName != "" {
			name += "/" + peer.DBName
		}
		target = b.node(KindDatabase, name)
	case peer.Service != "" && peer.Service != svcName:
		target = b.node(KindPeer, peer.Service)
	case peer.ServerAddress != "":
		target = b.node(KindPeer, peer.ServerAddress)
	}
	if target != nil {
		target.Spans++
		if s.Error {
			target.Errors++
		}
		b.observe(b.edge(svc, target, EdgePeer, RelSpan, ""), s.Error, int64(s.Duration))
	}
}

// spanRef names s.
func spanRef(s *trace.Span) SpanRef {
	return SpanRef{TraceID: s.TraceID, SpanID: s.SpanID, Service: s.Service()}
}

// Graph resolves the consumers whose producer was not their parent — through
// span links, else by stitching — and returns the finished graph. Call it
// once; the builder is spent afterwards.
func (b *Builder) Graph() *Graph { return b.GraphWith(nil) }

// GraphWith is Graph that also calls f with the graph while the edges'
// latency percentiles are still being computed on the other CPUs, so that
// a caller's own finishing work overlaps with them: f may read anything of
// the graph but an edge's P50, P95 and P99, and must not change it.
// GraphWith returns once both are done.
func (b *Builder) GraphWith(f func(*Graph)) *Graph {
	m := b.matchPending()
	// The walk's latency samples are all logged: they are gathered on
	// another CPU while this one resolves the pending consumers, which log
	// a few more (gathered by finish).
	var early *gathering
	if b.flushEdges(); runtime.GOMAXPROCS(0) > 1 && b.samples.Len()+b.loggedElsewhere() >= parallelSamples {
		edges := append([]*Edge(nil), b.g.Edges...) // numbered as the builder's log numbers them
		early = startGather(edges, append(b.logs, sampleLog{b.samples, edges}))
		b.samples, b.logs = latLog{}, nil
	}
	b.g.Stitches = make([]Stitch, 0, b.pending.Len()) // at most one per pending consumer
	b.samples.reserve(b.pending.Len())
	b.hopStitched = make(bitSet, 0, (b.pending.Len()+63)/64)
	for i := 0; i < b.pending.Len(); i++ {
		pc := b.pending.At(i)
		rel, prod, found := RelSpan, producer{}, false
		if mt := &m[i]; mt.linkPos >= 0 {
			rel, prod, found = RelLink, mt.linked, true
		} else {
			st := Stitch{Consumer: pc.ref, Topic: pc.topic.Name, Partition: -1, Offset: -1, Group: pc.group}
			if pc.partition >= 0 && pc.offset >= 0 {
				st.Partition, st.Offset = pc.partition, pc.offset
				if mt.record {
					prod, found = mt.recorded, true
				}
			}
			if !found && pc.msgID != "" {
				if mt.msgID >= 0 {
					if p := b.producers.at(mt.msgID); p.topic == pc.topic.seq {
						prod, found = p, true
					}
				}
				st.Partition, st.Offset, st.MessageID = -1, -1, pc.msgID
			}
			if found {
				rel = RelStitched
				st.Producer = b.ref(&prod)
				st.Consumer.Service = pc.node.Name // the node's string, as the producer's and the topic's
				st.Lag = time.Duration(pc.start - prod.start)
				b.g.Stitches = append(b.g.Stitches, st)
				b.hopStitched.add(int32(i))
			}
		}
		var lat int64
		if found {
			lat = pc.start - prod.start
		}
		e := b.g.Edges[b.edge(pc.topic, pc.node, EdgeConsume, rel, pc.group).seq1-1]
		if pc.client != "" {
			addTo(&e.clientIDs, pc.client)
		}
		e.Count++
		if pc.err {
			e.Errors++
		}
		if found {
			b.addLatency(e, lat)
		}
	}
	b.pending, b.producers, b.msgIDs = chunk.List[pendingConsumer]{}, producers{}, nil
	b.cur, b.spans = nil, nil
	b.resolveRoots()
	b.flushEdges()
	b.edges = nil
	// The builder's own log, its edges as they are numbered now (finish
	// sorts them).
	logs := append(b.logs, sampleLog{b.samples, append([]*Edge(nil), b.g.Edges...)})
	b.samples, b.logs = latLog{}, nil
	g := b.g
	g.finish(f, early, logs)
	return g
}

// match is what a pending consumer found among the producers: the producer
// its first link to a producer of its topic points to (linkPos is the
// link's position among the span's links, -1: none), the producer of its
// record (topic, partition, offset), and the latest producer of its message
// ID (any topic), as an index into Builder.producers (-1: none). The first
// two are copied as the scan meets them, so that resolving the consumers
// does not look through the producers again at random.
type match struct {
	linkPos          int32
	record           bool
	msgID            int
	linked, recorded producer
}

// hit is a producer the scan found for pending consumer number consumer:
// through the consumer's link at position pos, or (pos -1) as the producer
// of its record.
type hit struct {
	consumer, pos int32
	p             producer
}

// matchPending is a hash join of the pending consumers (indexed: usually
// the smaller side) with the producers (scanned once, shared among the
// CPUs). Where several producers match, the last one added wins.
func (b *Builder) matchPending() []match {
	if b.pending.Len() == 0 {
		return nil
	}
	type linkFrom struct{ consumer, pos int32 }
	nLinks, nRecords := 0, 0
	for i := 0; i < b.pending.Len(); i++ {
		pc := b.pending.At(i)
		nLinks += len(pc.links)
		if pc.partition >= 0 && pc.offset >= 0 {
			nRecords++
		}
	}
	byLink, byRecord := newJoinIndex[spanKey](nLinks), newJoinIndex[recordKey](nRecords)
	links := make([]linkFrom, 0, nLinks)
	records := make([]int32, 0, nRecords)
	byMsgID := map[string][]int{}
	for i := 0; i < b.pending.Len(); i++ {
		pc := b.pending.At(i)
		for pos, l := range pc.links {
			k := spanKey{l.TraceID, l.SpanID}
			byLink.add(hashSpan(k), k)
			links = append(links, linkFrom{int32(i), int32(pos)})
		}
		if pc.partition >= 0 && pc.offset >= 0 {
			k := recordKey{pc.topic.seq, pc.partition, pc.offset}
			byRecord.add(hashRecord(k), k)
			records = append(records, int32(i))
		}
		if pc.msgID != "" {
			byMsgID[pc.msgID] = append(byMsgID[pc.msgID], i)
		}
	}
	// Each goroutine matches a run of producers and lists what it found in
	// their order; the lists are then applied in run order, as one pass
	// over the producers would have found them.
	parts := split.Runs(b.producers.Len(), 0, func(lo, hi int) (hits []hit) {
		// Room for this run's share of the consumers, most of which find
		// their producer: hits are large, and growing the list copies them.
		hits = make([]hit, 0, (nLinks+nRecords)*(hi-lo)/max(1, b.producers.Len())+16)
		b.producers.stretches(lo, hi, func(run *producerRun, c []producer) {
			for j := range c {
				pr := c[j]
				if run.to != nil {
					pr.svc, pr.topic = run.to[pr.svc], run.to[pr.topic]
				}
				if nLinks > 0 {
					k := spanKey{pr.tid, pr.sid}
					for e := byLink.last(hashSpan(k), k); e > 0; e = byLink.next[e-1] {
						if l := links[e-1]; pr.topic == b.pending.At(int(l.consumer)).topic.seq {
							hits = append(hits, hit{l.consumer, l.pos, pr})
						}
					}
				}
				if pr.partition >= 0 && nRecords > 0 {
					k := recordKey{pr.topic, pr.partition, pr.offset}
					for e := byRecord.last(hashRecord(k), k); e > 0; e = byRecord.next[e-1] {
						hits = append(hits, hit{records[e-1], -1, pr})
					}
				}
			}
		})
		return hits
	})
	out := make([]match, b.pending.Len())
	for i := range out {
		out[i].linkPos, out[i].msgID = -1, -1
	}
	for _, p := range parts {
		for _, h := range p {
			o := &out[h.consumer]
			switch {
			case h.pos < 0:
				o.record, o.recorded = true, h.p // the last producer of the record wins
			case o.linkPos < 0 || h.pos < o.linkPos:
				o.linkPos, o.linked = h.pos, h.p // the first link, in the span's order, wins; then the first producer
			}
		}
	}
	if len(byMsgID) > 0 {
		for _, pm := range b.msgIDs {
			for _, i := range byMsgID[pm.id] {
				out[i].msgID = pm.j
			}
		}
	}
	return out
}

// ref is the span reference of a remembered producer.
func (b *Builder) ref(p *producer) SpanRef {
	return SpanRef{TraceID: p.tid, SpanID: p.sid, Service: b.g.Nodes[p.svc].Name}
}

// resolveRoots decides the relation of every root produce span. In a service
// that also consumes, a root produce span whose record key matches a record
// the service consumed just before is a pass-through that lost its context
// (a stateful join writing from its store): it is stitched to the latest such
// consumer span. Otherwise the span is an origin of data (RelSpan).
func (b *Builder) resolveRoots() {
	b.samples.reserve(len(b.roots))
	for i := range b.roots {
		r := &b.roots[i]
		rel := RelSpan
		if r.key != "" {
			var best *keyedConsumer
			for j, c := range b.keyed[keyedKey{r.node.Name, r.key}] {
				if c.start <= r.start && c.topic != r.topic.Name && (best == nil || c.start > best.start) {
					best = &b.keyed[keyedKey{r.node.Name, r.key}][j]
				}
			}
			if best != nil {
				rel = RelStitched
				b.g.Stitches = append(b.g.Stitches, Stitch{Kind: StitchPassThrough, Producer: r.ref, Consumer: best.ref,
					Topic: best.topic, OutTopic: r.topic.Name, Partition: -1, Offset: -1, Key: r.key})
			}
		}
		b.observeClient(b.edge(r.node, r.topic, EdgeProduce, rel, ""), r.err, r.dur, r.client)
	}
	b.roots = nil
	b.keyed = nil
}
