package engine

import (
	"time"

	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/trace"
)

// node is a graph node while it is built: graph.Node's counts, and what the
// walk reads or writes for most spans next to them, in the same cache line.
type node struct {
	kind          graph.NodeKind
	name          string
	spans, errors int
	seq           int32  // index in builder.nodeList
	partBits      uint64 // partitions below 64 in partitions
	opSeen        bitSet // the builder's name ids of operations
	caller        *node  // a service's unknown:NAME node, once made
	instances     map[string]struct{}
	operations    map[string]struct{}
	partitions    map[int32]struct{}
	samplers      map[string]struct{}
}

// edge is a graph edge while it is built. Its latency samples are logged
// in the order they come (builder.samples), not in the edge; nlat counts
// them. Those read from a partial of an edge with more than
// graph.ExactSamples samples come rounded (graph.RoundLatency) and are
// held in the edge as counts by value (rounded), nrounded of them: a few
// thousand values at most, however many samples.
type edge struct {
	from, to      *node
	kind          graph.EdgeKind
	rel           graph.Relation
	group         string
	count, errors int
	nlat          int
	rounded       map[int64]int
	nrounded      int
	seq           int32 // index in builder.edgeList
	clientIDs     map[string]struct{}
	p50, p95, p99 time.Duration
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
	ref       graph.SpanRef
	node      *node
	topic     *node
	group     string
	client    string
	partition int32
	offset    int64
	msgID     string
	start     int64
	err       bool
	links     []trace.Ref
	// missingParent: it names a parent that is not in its trace.
	missingParent bool
}

// unverifiedHop is a consumer span whose producer is not in the data.
type unverifiedHop struct {
	tid        trace.TraceID
	topic, svc int32
	group      string
}

// rootProducer is a produce span with no parent and no link.
type rootProducer struct {
	ref        graph.SpanRef
	node       *node
	topic      *node
	key        string
	client     string
	start, dur int64
	err        bool
}

type keyedKey struct{ service, key string }

// keyedConsumer is a consumer span that names its record's key.
type keyedConsumer struct {
	ref   graph.SpanRef
	topic string
	start int64
}

// builder accumulates traces into a graph. Add traces in any order, then
// call Graph once. It keeps only what pairing needs, not the traces.
type builder struct {
	nodeList []*node
	traceIDs chunkList[trace.TraceID] // the traces added: the data, for what is not in it
	edgeList []*edge
	stitches []graph.Stitch
	hopNodes []hopKey // the nodes of the hop stitches, stitches[:len(hopNodes)]
	// unverifiedHops are the consumers that link out of the data and that
	// no producer pairs with.
	unverifiedHops []unverifiedHop
	traces, spans  int
	// producers are kept in a list, not indexed: only consumers whose
	// producer is not their parent (pending) need them, usually few, so
	// Graph indexes those and runs the producers past the index once.
	producers producers
	msgIDs    []producerMsgID
	pending   chunkList[pendingConsumer]
	roots     []rootProducer
	keyed     map[keyedKey][]keyedConsumer
	nodes     [graph.KindUnknownCaller + 1]map[string]*node
	services  map[*trace.Resource]*node
	idx       spanIndex
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
	cur       *spanIndex   // the index of the trace being added
	curSpans  []trace.Span // its spans
	// Services, topics and operations found without hashing names
	// (namecache.go).
	resCache  resCache
	names     names
	topicByID []*node // by name id
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

// newBuilder returns an empty builder.
func newBuilder() *builder {
	return &builder{
		edges:    make([]edgeSlot, 512),
		edgeMask: 511,
		keyed:    map[keyedKey][]keyedConsumer{},
		services: map[*trace.Resource]*node{},
		names:    newNames(),
	}
}

// Merge folds o, which was fed the traces that come after b's, into b, as
// if b had been fed them itself. o is spent afterwards.
func (b *builder) Merge(o *builder) {
	b.traces += o.traces
	b.spans += o.spans
	for _, c := range o.traceIDs.Chunks() {
		for _, id := range c {
			b.traceIDs.Add(id)
		}
	}
	to := make([]*node, len(o.nodeList))
	toSeq := make([]int32, len(o.nodeList))
	for _, n := range o.nodeList {
		t := b.node(n.kind, n.name)
		t.spans += n.spans
		t.errors += n.errors
		for k := range n.instances {
			addTo(&t.instances, k)
		}
		for k := range n.operations {
			addTo(&t.operations, k)
		}
		for k := range n.partitions {
			t.notePartition(k)
		}
		for k := range n.samplers {
			addTo(&t.samplers, k)
		}
		to[n.seq], toSeq[n.seq] = t, t.seq
	}
	o.flushEdges()
	toEdge := make([]*edge, len(o.edgeList))
	for _, e := range o.edgeList {
		t := b.edgeList[b.edge(to[e.from.seq], to[e.to.seq], e.kind, e.rel, e.group).seq1-1]
		t.count += e.count
		t.errors += e.errors
		t.nlat += e.nlat
		t.addRounded(e.rounded)
		for k := range e.clientIDs {
			addTo(&t.clientIDs, k)
		}
		toEdge[e.seq] = t
	}
	// o's samples stay where they are, as logs of b's edges.
	o.samples.trim()
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
	*o = builder{}
}

func (b *builder) node(kind graph.NodeKind, name string) *node {
	n, ok := b.nodes[kind][name]
	if !ok {
		if b.nodes[kind] == nil {
			b.nodes[kind] = map[string]*node{}
		}
		n = &node{kind: kind, name: name, seq: int32(len(b.nodeList))}
		b.nodes[kind][name] = n
		b.nodeList = append(b.nodeList, n)
	}
	return n
}

// service returns the service node of a span's resource, noting the
// resource's instance the first time the resource is seen.
func (b *builder) service(s *trace.Span) *node {
	c := b.resCache.slot(s.Resource)
	if c.node != nil && c.r == s.Resource {
		return c.node
	}
	n, ok := b.services[s.Resource]
	if !ok {
		n = b.node(graph.KindService, s.Service())
		if inst := s.Resource.Instance(); inst != "" {
			addTo(&n.instances, inst)
		}
		b.services[s.Resource] = n
	}
	*c = resSlot{s.Resource, n}
	return n
}

// topic returns the node of topic name.
func (b *builder) topic(name string) *node {
	id := b.names.id(name)
	if int(id) < len(b.topicByID) {
		if n := b.topicByID[id]; n != nil {
			return n
		}
	} else {
		b.topicByID = append(b.topicByID, make([]*node, int(id)+1-len(b.topicByID))...)
	}
	n := b.node(graph.KindTopic, name)
	b.topicByID[id] = n
	return n
}

// notePartition records partition p (not below zero) of a topic node;
// partitions below 64, the usual ones, are looked up in a bit set first.
func (n *node) notePartition(p int32) {
	if uint32(p) < 64 {
		if n.partBits&(1<<p) != 0 {
			return
		}
		n.partBits |= 1 << p
	}
	addTo(&n.partitions, p)
}

// observeClient is observe that also records a Kafka client id.
func (b *builder) observeClient(e *edgeSlot, err bool, latency int64, client string) {
	if client != "" {
		addTo(&b.edgeList[e.seq1-1].clientIDs, client)
	}
	b.observe(e, err, latency)
}

// observe counts a span (or record) behind e, with its latency, logged in
// room made for it (Begin makes room for a trace's spans).
func (b *builder) observe(e *edgeSlot, err bool, latency int64) {
	e.count++
	if err {
		e.errors++
	}
	b.samples.add(e.seq1-1, latency)
}

// addLatency logs a latency sample of edge e that observe did not count.
func (b *builder) addLatency(e *edge, v int64) {
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
func (b *builder) Add(t *trace.Trace) {
	b.idx.Reset(t.Spans)
	b.AddIndexed(t, &b.idx)
}

// AddIndexed is Add for a caller that has already indexed t (idx.Reset(t.Spans)),
// to read each trace once for several purposes.
func (b *builder) AddIndexed(t *trace.Trace, idx *spanIndex) {
	b.Begin(t, idx)
	for i := range t.Spans {
		b.addSpan(t.Spans, i, &t.Spans[i], idx.Info(i))
	}
}

// Begin starts adding t, already indexed in idx, span by span: call
// AddSpan once for each of its spans before the next Begin or Graph. A
// caller with its own work per span does it in the same loop, so a large
// trace is walked once.
func (b *builder) Begin(t *trace.Trace, idx *spanIndex) {
	b.traces++
	b.spans += len(t.Spans)
	b.traceIDs.Add(t.ID)
	if b.unflushed+len(t.Spans) > maxUnflushed {
		b.flushEdges()
		b.unflushed = 0
	}
	b.unflushed += len(t.Spans)
	b.cur, b.curSpans = idx, t.Spans
	b.samples.reserve(2 * len(t.Spans)) // a span adds to two edges at most
}

// AddSpan adds span i of the trace begun last. When the span is a consumer
// whose producer is not its parent, it returns the span's number among such
// consumers, counted from 0 across the builder's traces (and those of
// builders merged into it, after its own), for Stitched; else -1.
func (b *builder) AddSpan(i int) int {
	return b.addSpan(b.curSpans, i, &b.curSpans[i], b.cur.Info(i))
}

// AddSpanInfo is AddSpan for a caller that has the span (the trace's
// spans[i]) and what the index knows of it (Info(i)) at hand, so that they
// are not read twice.
func (b *builder) AddSpanInfo(i int, s *trace.Span, in spanInfo) int {
	return b.addSpan(b.curSpans, i, s, in)
}

// loggedElsewhere counts the samples in the logs of builders merged into b.
func (b *builder) loggedElsewhere() int {
	n := 0
	for _, lg := range b.logs {
		n += lg.list.Len()
	}
	return n
}

// Pending returns the number of pending consumers so far (see AddSpan).
func (b *builder) Pending() int { return b.pending.Len() }

// Stitched reports whether pending consumer k (as AddSpan numbered it) was
// stitched to its producer as a hop. Ask it once the consumers are resolved:
// after Graph returns, or from GraphWith's f.
func (b *builder) Stitched(k int) bool {
	return b.hopStitched.has(k)
}

// addSpan adds span i of spans, s, which the index says in of, and
// returns what AddSpan does.
func (b *builder) addSpan(spans []trace.Span, i int, s *trace.Span, in spanInfo) int {
	svcName := s.Service()
	svc := b.service(s)
	svc.spans++
	if s.Error {
		svc.errors++
	}
	if svc.opSeen.add(b.names.id(s.Operation)) {
		addTo(&svc.operations, s.Operation)
	}
	pi := in.Parent
	var p *trace.Span
	if pi >= 0 {
		p = &spans[pi]
	} else if pi == noParent {
		b.noteSampler(svc, s)
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
			topic.spans++
			if s.Error {
				topic.errors++
			}
			if pi != noParent {
				b.observeClient(b.edge(svc, topic, graph.EdgeProduce, graph.RelParent, ""), s.Error, int64(s.Duration), m.ClientID)
			} else if s.HasLink() {
				b.observeClient(b.edge(svc, topic, graph.EdgeProduce, graph.RelLink, ""), s.Error, int64(s.Duration), m.ClientID)
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
			topic.spans++
			if s.Error {
				topic.errors++
			}
			if m.Key != "" {
				b.addKeyed(s, svcName, m)
			}
			if b.cur.SameHop(pi, m, true) {
				b.observeClient(b.edge(topic, svc, graph.EdgeConsume, graph.RelParent, m.ConsumerGroup),
					s.Error, s.Start.UnixNano()-p.Start.UnixNano(), m.ClientID)
				return -1
			}
			return b.addPending(s, svc, topic, m, pi == missingParent)
		}
	}

	if p != nil {
		if in.Cross {
			lat := int64(s.Duration)
			if p.Kind == trace.KindClient {
				lat = int64(p.Duration)
			}
			b.observe(b.edge(b.service(p), svc, graph.EdgeCall, graph.RelParent, ""), s.Error, lat)
		}
	} else if pi == noParent && s.Kind == trace.KindServer {
		if svc.caller == nil {
			svc.caller = b.node(graph.KindUnknownCaller, svcName)
		}
		b.observe(b.edge(svc.caller, svc, graph.EdgeCall, graph.RelSpan, ""), s.Error, int64(s.Duration))
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

// noteSampler notes what root span s says of its sampler, if anything.
func (b *builder) noteSampler(svc *node, s *trace.Span) {
	if smp := s.Sampler(); smp != "" {
		addTo(&svc.samplers, smp)
	}
}

// addRoot keeps a root produce span: an origin, or a stream processor that
// lost the context of its input. Graph decides which.
func (b *builder) addRoot(s *trace.Span, svc, topic *node, m *trace.Messaging) {
	b.roots = append(b.roots, rootProducer{ref: spanRef(s), node: svc, topic: topic, key: m.Key, client: m.ClientID,
		start: s.Start.UnixNano(), dur: int64(s.Duration), err: s.Error})
}

// addKeyed keeps a consumer span that names its record's key.
func (b *builder) addKeyed(s *trace.Span, svcName string, m *trace.Messaging) {
	k := keyedKey{svcName, m.Key}
	b.keyed[k] = append(b.keyed[k], keyedConsumer{ref: spanRef(s), topic: m.Destination, start: s.Start.UnixNano()})
}

// addPending keeps a consumer span whose producer is not its parent, and
// returns its number among the pending consumers.
func (b *builder) addPending(s *trace.Span, svc, topic *node, m *trace.Messaging, missingParent bool) int {
	pc := pendingConsumer{ref: spanRef(s), node: svc, topic: topic, group: m.ConsumerGroup, client: m.ClientID,
		partition: m.Partition, offset: m.Offset, msgID: m.MessageID,
		start: s.Start.UnixNano(), err: s.Error, missingParent: missingParent}
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
func (b *builder) addPeer(s *trace.Span, svc *node, svcName string) {
	peer := s.Peer()
	var target *node
	switch {
	case peer.DBSystem != "":
		name := peer.DBSystem
		if peer.DBName != "" {
			name += "/" + peer.DBName
		}
		target = b.node(graph.KindDatabase, name)
	case peer.Service != "" && peer.Service != svcName:
		target = b.node(graph.KindPeer, peer.Service)
	case peer.ServerAddress != "":
		target = b.node(graph.KindPeer, peer.ServerAddress)
	}
	if target != nil {
		target.spans++
		if s.Error {
			target.errors++
		}
		b.observe(b.edge(svc, target, graph.EdgePeer, graph.RelSpan, ""), s.Error, int64(s.Duration))
	}
}

// spanRef names s.
func spanRef(s *trace.Span) graph.SpanRef {
	return graph.SpanRef{TraceID: s.TraceID, SpanID: s.SpanID, Service: s.Service()}
}
