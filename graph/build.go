package graph

import (
	"cmp"
	"slices"
	"time"

	"github.com/ktrace-dev/ktrace/trace"
)

// Build returns the graph of traces, following the rules in the package
// documentation one span at a time. It is the reference: plain maps and
// sorting, written to be read. ktrace's commands build the same graph
// faster (internal/engine), and a differential test holds the two equal.
// Traces must pass trace.Validate and be distinct by ID.
func Build(traces []trace.Trace) *Graph {
	b := &builder{g: &Graph{}, nodes: map[string]*Node{}, edges: map[edgeKey]*edgeTally{}, present: map[trace.TraceID]bool{},
		byRecord: map[recordKey][]producer{}, bySpan: map[spanKey]producer{}, byMsgID: map[string][]producer{},
		keyed: map[keyedKey][]keyedConsumer{}}
	for i := range traces {
		b.add(&traces[i])
	}
	for i := range traces {
		b.present[traces[i].ID] = true
	}
	for _, c := range b.pending {
		b.resolveConsumer(c)
	}
	consumes := map[string]bool{} // services with a consumer span counted
	for k := range b.edges {
		if k.kind == EdgeConsume {
			consumes[k.to] = true
		}
	}
	for _, r := range b.roots {
		b.resolveRoot(r, consumes["service:"+r.ref.Service])
	}
	for k, t := range b.edges {
		e := &Edge{From: b.nodes[k.from], To: b.nodes[k.to], Kind: k.kind, Relation: k.rel, Group: k.group,
			Count: t.count, Errors: t.errors, ClientIDs: setList(t.clients)}
		e.P50, e.P95, e.P99 = Percentiles(t.lat)
		b.g.Edges = append(b.g.Edges, e)
	}
	for _, n := range b.g.Nodes {
		n.Instances, n.Operations, n.Partitions = setList(b.instances[n]), setList(b.operations[n]), setList(b.partitions[n])
		n.Samplers = setList(b.samplers[n])
	}
	b.g.Finish()
	return b.g
}

type edgeKey struct {
	from, to string // node keys
	kind     EdgeKind
	rel      Relation
	group    string
}

type edgeTally struct {
	count, errors int
	lat           []int64
	clients       map[string]bool
}

type spanKey struct {
	trace trace.TraceID
	span  trace.SpanID
}

type recordKey struct {
	topic     string
	partition int32
	offset    int64
}

// producer is a produce span, as consumers are paired with it.
type producer struct {
	ref   SpanRef
	topic string
	start time.Time
}

// pendingConsumer is a consumer span whose producer is not its parent.
type pendingConsumer struct {
	ref           SpanRef
	service       string
	messages      trace.Messaging
	start         time.Time
	err           bool
	links         []trace.Ref
	missingParent bool // it names a parent that is not in its trace
}

// rootProducer is a produce span with no parent and no link.
type rootProducer struct {
	ref        SpanRef
	topic, key string
	client     string
	start      time.Time
	duration   time.Duration
	err        bool
}

type keyedKey struct{ service, key string }

// keyedConsumer is a consumer span that names its record's key.
type keyedConsumer struct {
	ref   SpanRef
	topic string
	start time.Time
}

type builder struct {
	g                     *Graph
	nodes                 map[string]*Node // by key
	instances, operations map[*Node]map[string]bool
	samplers              map[*Node]map[string]bool // of root spans
	partitions            map[*Node]map[int32]bool
	edges                 map[edgeKey]*edgeTally
	byRecord              map[recordKey][]producer
	bySpan                map[spanKey]producer
	byMsgID               map[string][]producer
	pending               []pendingConsumer
	present               map[trace.TraceID]bool // the traces in the data
	roots                 []rootProducer
	keyed                 map[keyedKey][]keyedConsumer
}

func (b *builder) node(kind NodeKind, name string) *Node {
	key := kind.String() + ":" + name
	n := b.nodes[key]
	if n == nil {
		n = &Node{Key: key, Kind: kind, Name: name}
		b.nodes[key] = n
		b.g.Nodes = append(b.g.Nodes, n)
	}
	return n
}

// count counts a span against a node.
func (b *builder) count(n *Node, s *trace.Span) {
	n.Spans++
	if s.Error {
		n.Errors++
	}
}

// observe counts one span (or record) behind an edge, with its latency
// when it has one.
func (b *builder) observe(from, to *Node, kind EdgeKind, rel Relation, group string, err bool, lat *int64, client string) {
	k := edgeKey{from.Key, to.Key, kind, rel, group}
	t := b.edges[k]
	if t == nil {
		t = &edgeTally{clients: map[string]bool{}}
		b.edges[k] = t
	}
	t.count++
	if err {
		t.errors++
	}
	if lat != nil {
		t.lat = append(t.lat, *lat)
	}
	if client != "" {
		t.clients[client] = true
	}
}

func note[K comparable](m *map[*Node]map[K]bool, n *Node, v K) {
	if *m == nil {
		*m = map[*Node]map[K]bool{}
	}
	if (*m)[n] == nil {
		(*m)[n] = map[K]bool{}
	}
	(*m)[n][v] = true
}

func ptr(v int64) *int64 { return &v }

func (b *builder) add(t *trace.Trace) {
	b.g.Traces++
	b.g.Spans += len(t.Spans)
	byID := map[trace.SpanID]*trace.Span{}
	remote := map[trace.SpanID]bool{} // spans with a child in another service
	for i := range t.Spans {
		byID[t.Spans[i].SpanID] = &t.Spans[i]
	}
	for i := range t.Spans {
		s := &t.Spans[i]
		if pid, ok := s.Parent(); ok && byID[pid] != nil && byID[pid].Service() != s.Service() {
			remote[pid] = true
		}
	}
	for i := range t.Spans {
		s := &t.Spans[i]
		pid, hasParent := s.Parent()
		b.addSpan(s, byID[pid], hasParent, remote[s.SpanID])
	}
}

// addSpan adds span s, whose parent is p (nil: none in the trace, though
// hasParent says whether it names one) and which has a child in another
// service when remote is set.
func (b *builder) addSpan(s *trace.Span, p *trace.Span, hasParent, remote bool) {
	name := s.Service()
	svc := b.node(KindService, name)
	b.count(svc, s)
	note(&b.operations, svc, s.Operation)
	if inst := s.Resource.Instance(); inst != "" {
		note(&b.instances, svc, inst)
	}
	if sampler := s.Sampler(); !hasParent && sampler != "" {
		note(&b.samplers, svc, sampler)
	}
	cross := p != nil && p.Service() != name

	if m, ok := s.Messaging(); ok && m.Destination != "" {
		topic := b.node(KindTopic, m.Destination)
		if m.Partition >= 0 {
			note(&b.partitions, topic, m.Partition)
		}
		switch {
		case m.IsProducer():
			if p != nil && !cross && trace.SameHop(p, m, true) {
				return // a publish span nested in another of the same record
			}
			b.count(topic, s)
			switch {
			case hasParent:
				b.observe(svc, topic, EdgeProduce, RelParent, "", s.Error, ptr(int64(s.Duration)), m.ClientID)
			case s.HasLink():
				b.observe(svc, topic, EdgeProduce, RelLink, "", s.Error, ptr(int64(s.Duration)), m.ClientID)
			default:
				b.roots = append(b.roots, rootProducer{ref: refOf(s), topic: m.Destination, key: m.Key,
					client: m.ClientID, start: s.Start, duration: s.Duration, err: s.Error})
			}
			pr := producer{ref: refOf(s), topic: m.Destination, start: s.Start}
			b.bySpan[spanKey{s.TraceID, s.SpanID}] = pr
			if m.Partition >= 0 && m.Offset >= 0 {
				k := recordKey{m.Destination, m.Partition, m.Offset}
				b.byRecord[k] = append(b.byRecord[k], pr)
			}
			if m.MessageID != "" {
				b.byMsgID[m.MessageID] = append(b.byMsgID[m.MessageID], pr)
			}
			return
		case m.IsConsumer():
			if p != nil && !cross && trace.SameHop(p, m, false) {
				return // a process span under the receive span of the same record
			}
			b.count(topic, s)
			if m.Key != "" {
				k := keyedKey{name, m.Key}
				b.keyed[k] = append(b.keyed[k], keyedConsumer{ref: refOf(s), topic: m.Destination, start: s.Start})
			}
			if trace.SameHop(p, m, true) {
				b.observe(topic, svc, EdgeConsume, RelParent, m.ConsumerGroup, s.Error, ptr(s.Start.UnixNano()-p.Start.UnixNano()), m.ClientID)
				return
			}
			pc := pendingConsumer{ref: refOf(s), service: name, messages: m, start: s.Start, err: s.Error, missingParent: hasParent && p == nil}
			for _, r := range s.Refs {
				if r.Type == trace.RefLink {
					pc.links = append(pc.links, r)
				}
			}
			b.pending = append(b.pending, pc)
			return
		}
	}

	switch {
	case cross:
		lat := int64(s.Duration)
		if p.Kind == trace.KindClient {
			lat = int64(p.Duration)
		}
		b.observe(b.node(KindService, p.Service()), svc, EdgeCall, RelParent, "", s.Error, &lat, "")
	case !hasParent && s.Kind == trace.KindServer:
		b.observe(b.node(KindUnknownCaller, name), svc, EdgeCall, RelSpan, "", s.Error, ptr(int64(s.Duration)), "")
	}
	if (s.Kind == trace.KindClient || s.Kind == trace.KindProducer) && !remote {
		b.addPeer(s, svc, name)
	}
}

// addPeer counts a client or producer span with no child in another
// service against what it names as its peer, if anything.
func (b *builder) addPeer(s *trace.Span, svc *Node, name string) {
	peer := s.Peer()
	var target *Node
	switch {
	case peer.DBSystem != "" && peer.DBName != "":
		target = b.node(KindDatabase, peer.DBSystem+"/"+peer.DBName)
	case peer.DBSystem != "":
		target = b.node(KindDatabase, peer.DBSystem)
	case peer.Service != "" && peer.Service != name:
		target = b.node(KindPeer, peer.Service)
	case peer.ServerAddress != "":
		target = b.node(KindPeer, peer.ServerAddress)
	default:
		return
	}
	b.count(target, s)
	b.observe(svc, target, EdgePeer, RelSpan, "", s.Error, ptr(int64(s.Duration)), "")
}

// later reports whether producer a is preferred to b where several could
// pair: the later start, then the greater trace and span IDs.
func later(a, b producer) bool {
	return cmp.Or(a.start.Compare(b.start), compareRefs(&a.ref, &b.ref)) > 0
}

// latest returns the preferred producer of list on topic.
func latest(list []producer, topic string) (producer, bool) {
	var best producer
	found := false
	for _, p := range list {
		if p.topic == topic && (!found || later(p, best)) {
			best, found = p, true
		}
	}
	return best, found
}

// resolveConsumer ties a consumer whose producer is not its parent to the
// producer its first link on the same topic points at, else stitches it to
// the producer of its record (topic, partition, offset), else of its message
// ID, else counts it from the span alone.
func (b *builder) resolveConsumer(c pendingConsumer) {
	m := c.messages
	topic, svc := b.node(KindTopic, m.Destination), b.node(KindService, c.service)
	rel := RelSpan
	var prod producer
	found := false
	for _, l := range c.links {
		if p, ok := b.bySpan[spanKey{l.TraceID, l.SpanID}]; ok && p.topic == m.Destination {
			rel, prod, found = RelLink, p, true
			break
		}
	}
	if !found {
		st := Stitch{Kind: StitchHop, Consumer: c.ref, Topic: m.Destination, Group: m.ConsumerGroup, Partition: -1, Offset: -1}
		if m.Partition >= 0 && m.Offset >= 0 {
			prod, found = latest(b.byRecord[recordKey{m.Destination, m.Partition, m.Offset}], m.Destination)
			if found {
				st.Partition, st.Offset = m.Partition, m.Offset
			}
		}
		if !found && m.MessageID != "" {
			prod, found = latest(b.byMsgID[m.MessageID], m.Destination)
			st.MessageID = m.MessageID
		}
		if found {
			rel = RelStitched
			st.Producer = prod.ref
			st.Lag = time.Duration(c.start.UnixNano() - prod.start.UnixNano())
			b.g.Stitches = append(b.g.Stitches, st)
		}
	}
	if !found && (c.missingParent || slices.ContainsFunc(c.links, func(l trace.Ref) bool { return !b.present[l.TraceID] })) {
		rel = RelUnverified
	}
	var lat *int64
	if found {
		lat = ptr(c.start.UnixNano() - prod.start.UnixNano())
	}
	b.observe(topic, svc, EdgeConsume, rel, m.ConsumerGroup, c.err, lat, m.ClientID)
}

// resolveRoot decides a root produce span's relation: stitched as a
// pass-through to the latest consumer span of its service that handled a
// record of another topic with the same key no later than it started, else
// unverified in a service that consumes, else an origin of data (RelSpan).
func (b *builder) resolveRoot(r rootProducer, consumes bool) {
	rel := RelSpan
	if consumes {
		rel = RelUnverified
	}
	if r.key != "" {
		var best *keyedConsumer
		for i, c := range b.keyed[keyedKey{r.ref.Service, r.key}] {
			if c.start.After(r.start) || c.topic == r.topic {
				continue
			}
			if best == nil || cmp.Or(c.start.Compare(best.start), compareRefs(&c.ref, &best.ref)) > 0 {
				best = &b.keyed[keyedKey{r.ref.Service, r.key}][i]
			}
		}
		if best != nil {
			rel = RelStitched
			b.g.Stitches = append(b.g.Stitches, Stitch{Kind: StitchPassThrough, Producer: r.ref, Consumer: best.ref,
				Topic: best.topic, OutTopic: r.topic, Partition: -1, Offset: -1, Key: r.key})
		}
	}
	b.observe(b.node(KindService, r.ref.Service), b.node(KindTopic, r.topic), EdgeProduce, rel, "", r.err, ptr(int64(r.duration)), r.client)
}

func refOf(s *trace.Span) SpanRef {
	return SpanRef{TraceID: s.TraceID, SpanID: s.SpanID, Service: s.Service()}
}

// setList returns a set's members, sorted by Finish.
func setList[K comparable](set map[K]bool) []K {
	if len(set) == 0 {
		return nil
	}
	out := make([]K, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	return out
}
