package graph

import (
	"github.com/ktrace-dev/ktrace/trace"
)

type edgeKey struct {
	from, to *Node
	kind     EdgeKind
	rel      Relation
	group    string
}

type recordKey struct {
	topic     string
	partition int32
	offset    int64
}

type spanKey struct {
	tid trace.TraceID
	sid trace.SpanID
}

// producer is what the builder remembers of a producer span for pairing.
type producer struct {
	ref   SpanRef
	topic string
	start int64
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

func hasLink(s *trace.Span) bool {
	for _, r := range s.Refs {
		if r.Type == trace.RefLink {
			return true
		}
	}
	return false
}

// Builder accumulates traces into a graph. Add traces in any order, then
// call Graph once. It keeps only what pairing needs, not the traces.
type Builder struct {
	g          *Graph
	edges      map[edgeKey]*Edge
	byRecord   map[recordKey]producer
	byMsgID    map[string]producer
	bySpan     map[spanKey]producer
	pending    []pendingConsumer
	roots      []rootProducer
	keyed      map[keyedKey][]keyedConsumer
	idx        map[trace.SpanID]*trace.Span
	remoteKids map[trace.SpanID]struct{}
}

// NewBuilder returns an empty builder.
func NewBuilder() *Builder {
	return &Builder{
		g:          &Graph{byKey: map[string]*Node{}},
		edges:      map[edgeKey]*Edge{},
		byRecord:   map[recordKey]producer{},
		byMsgID:    map[string]producer{},
		bySpan:     map[spanKey]producer{},
		keyed:      map[keyedKey][]keyedConsumer{},
		idx:        map[trace.SpanID]*trace.Span{},
		remoteKids: map[trace.SpanID]struct{}{},
	}
}

// Build returns the graph of traces.
func Build(traces []trace.Trace) *Graph {
	b := NewBuilder()
	for i := range traces {
		b.Add(&traces[i])
	}
	return b.Graph()
}

func (b *Builder) node(kind NodeKind, name string) *Node {
	key := nodeKindNames[kind] + ":" + name
	n, ok := b.g.byKey[key]
	if !ok {
		n = &Node{Key: key, Kind: kind, Name: name}
		b.g.byKey[key] = n
		b.g.Nodes = append(b.g.Nodes, n)
	}
	return n
}

func (b *Builder) edge(from, to *Node, kind EdgeKind, rel Relation, group string) *Edge {
	k := edgeKey{from, to, kind, rel, group}
	e, ok := b.edges[k]
	if !ok {
		e = &Edge{From: from, To: to, Kind: kind, Relation: rel, Group: group}
		b.edges[k] = e
		b.g.Edges = append(b.g.Edges, e)
	}
	return e
}

// observeClient is observe that also records a Kafka client id.
func (e *Edge) observeClient(err bool, latency int64, client string) {
	e.observe(err, latency)
	if client != "" {
		addTo(&e.clientIDs, client)
	}
}

func (e *Edge) observe(err bool, latency int64) {
	e.Count++
	if err {
		e.Errors++
	}
	e.lat = append(e.lat, latency)
}

func addTo[K comparable](m *map[K]struct{}, k K) {
	if *m == nil {
		*m = map[K]struct{}{}
	}
	(*m)[k] = struct{}{}
}

// Add folds one trace into the graph. The builder does not keep t.
func (b *Builder) Add(t *trace.Trace) {
	b.g.Traces++
	b.g.Spans += len(t.Spans)
	clear(b.idx)
	clear(b.remoteKids)
	for i := range t.Spans {
		b.idx[t.Spans[i].SpanID] = &t.Spans[i]
	}
	for i := range t.Spans {
		s := &t.Spans[i]
		if pid, ok := s.Parent(); ok {
			if p := b.idx[pid]; p != nil && p.Service() != s.Service() {
				b.remoteKids[pid] = struct{}{}
			}
		}
	}
	for i := range t.Spans {
		b.addSpan(&t.Spans[i])
	}
}

func (b *Builder) parentOf(s *trace.Span) *trace.Span {
	if pid, ok := s.Parent(); ok {
		return b.idx[pid]
	}
	return nil
}

func (b *Builder) addSpan(s *trace.Span) {
	svcName := s.Service()
	svc := b.node(KindService, svcName)
	svc.Spans++
	if s.Error {
		svc.Errors++
	}
	if inst := s.Resource.Instance(); inst != "" {
		addTo(&svc.instances, inst)
	}
	addTo(&svc.operations, s.Operation)
	p := b.parentOf(s)
	ref := SpanRef{TraceID: s.TraceID, SpanID: s.SpanID, Service: svcName}

	if m, ok := s.Messaging(); ok && m.Destination != "" {
		topic := b.node(KindTopic, m.Destination)
		if m.Partition >= 0 {
			addTo(&topic.partitions, m.Partition)
		}
		switch {
		case m.IsProducer():
			if p != nil && p.Service() == svcName && trace.SameHop(p, m, true) {
				return // nested publish span of the same record
			}
			topic.Spans++
			if s.Error {
				topic.Errors++
			}
			if _, hasParent := s.Parent(); hasParent {
				b.edge(svc, topic, EdgeProduce, RelParent, "").observeClient(s.Error, int64(s.Duration), m.ClientID)
			} else if hasLink(s) {
				b.edge(svc, topic, EdgeProduce, RelLink, "").observeClient(s.Error, int64(s.Duration), m.ClientID)
			} else {
				// A root produce span: an origin, or a stream processor that
				// lost the context of its input. Graph decides which.
				b.roots = append(b.roots, rootProducer{ref: ref, node: svc, topic: topic, key: m.Key, client: m.ClientID,
					start: s.Start.UnixNano(), dur: int64(s.Duration), err: s.Error})
			}
			pr := producer{ref: ref, topic: m.Destination, start: s.Start.UnixNano()}
			if m.Partition >= 0 && m.Offset >= 0 {
				b.byRecord[recordKey{m.Destination, m.Partition, m.Offset}] = pr
			}
			if m.MessageID != "" {
				b.byMsgID[m.MessageID] = pr
			}
			b.bySpan[spanKey{s.TraceID, s.SpanID}] = pr
			return
		case m.IsConsumer():
			if p != nil && p.Service() == svcName && trace.SameHop(p, m, false) {
				return // process span under the receive span of the same record
			}
			topic.Spans++
			if s.Error {
				topic.Errors++
			}
			if m.Key != "" {
				k := keyedKey{svcName, m.Key}
				b.keyed[k] = append(b.keyed[k], keyedConsumer{ref: ref, topic: m.Destination, start: s.Start.UnixNano()})
			}
			if p != nil && trace.SameHop(p, m, true) {
				b.edge(topic, svc, EdgeConsume, RelParent, m.ConsumerGroup).
					observeClient(s.Error, s.Start.UnixNano()-p.Start.UnixNano(), m.ClientID)
				return
			}
			pc := pendingConsumer{ref: ref, node: svc, topic: topic, group: m.ConsumerGroup, client: m.ClientID,
				partition: m.Partition, offset: m.Offset, msgID: m.MessageID,
				start: s.Start.UnixNano(), err: s.Error}
			for _, r := range s.Refs {
				if r.Type == trace.RefLink {
					pc.links = append(pc.links, r)
				}
			}
			b.pending = append(b.pending, pc)
			return
		}
	}

	if p != nil {
		if p.Service() != svcName {
			lat := int64(s.Duration)
			if p.Kind == trace.KindClient {
				lat = int64(p.Duration)
			}
			b.edge(b.node(KindService, p.Service()), svc, EdgeCall, RelParent, "").observe(s.Error, lat)
		}
	} else if _, hasParent := s.Parent(); !hasParent && s.Kind == trace.KindServer {
		b.edge(b.node(KindUnknownCaller, svcName), svc, EdgeCall, RelSpan, "").observe(s.Error, int64(s.Duration))
	}

	if s.Kind == trace.KindClient || s.Kind == trace.KindProducer {
		if _, answered := b.remoteKids[s.SpanID]; answered {
			return
		}
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
			b.edge(svc, target, EdgePeer, RelSpan, "").observe(s.Error, int64(s.Duration))
		}
	}
}

// Graph resolves the consumers whose producer was not their parent — through
// span links, else by stitching — and returns the finished graph. Call it
// once; the builder is spent afterwards.
func (b *Builder) Graph() *Graph {
	for i := range b.pending {
		pc := &b.pending[i]
		rel, prod, found := RelSpan, producer{}, false
		for _, l := range pc.links {
			if pr, ok := b.bySpan[spanKey{l.TraceID, l.SpanID}]; ok && pr.topic == pc.topic.Name {
				rel, prod, found = RelLink, pr, true
				break
			}
		}
		if !found {
			st := Stitch{Consumer: pc.ref, Topic: pc.topic.Name, Partition: -1, Offset: -1}
			if pc.partition >= 0 && pc.offset >= 0 {
				prod, found = b.byRecord[recordKey{pc.topic.Name, pc.partition, pc.offset}]
				st.Partition, st.Offset = pc.partition, pc.offset
			}
			if !found && pc.msgID != "" {
				prod, found = b.byMsgID[pc.msgID]
				if found && prod.topic != pc.topic.Name {
					found = false
				}
				st.Partition, st.Offset, st.MessageID = -1, -1, pc.msgID
			}
			if found {
				rel = RelStitched
				st.Producer = prod.ref
				b.g.Stitches = append(b.g.Stitches, st)
			}
		}
		var lat int64
		if found {
			lat = pc.start - prod.start
		}
		e := b.edge(pc.topic, pc.node, EdgeConsume, rel, pc.group)
		if pc.client != "" {
			addTo(&e.clientIDs, pc.client)
		}
		e.Count++
		if pc.err {
			e.Errors++
		}
		if found {
			e.lat = append(e.lat, lat)
		}
	}
	b.pending = nil
	b.resolveRoots()
	g := b.g
	g.finish()
	return g
}

// resolveRoots decides the relation of every root produce span. In a service
// that also consumes, a root produce span whose record key matches a record
// the service consumed just before is a pass-through that lost its context
// (a stateful join writing from its store): it is stitched to the latest such
// consumer span. Otherwise the span is an origin of data (RelSpan).
func (b *Builder) resolveRoots() {
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
		b.edge(r.node, r.topic, EdgeProduce, rel, "").observeClient(r.err, r.dur, r.client)
	}
	b.roots = nil
	b.keyed = nil
}
