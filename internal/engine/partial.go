package engine

// A partial as bytes: the analyzer's state, flattened into plain records
// (nodes and edges by their numbers in the partial, names as strings) and
// written field by field (partialwire.go) behind a header that names the
// format and its version. Reading checks every length and every number
// that indexes something, so bytes from anywhere give an error, never a
// panic.

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/trace"
)

// partialMagic starts a partial's bytes; the byte after it is the version.
const (
	partialMagic   = "ktrace-partial\n"
	partialVersion = 3
	// partialV2 is the version before edges' samples could come rounded:
	// still read.
	partialV2 = 2
	// partialGob is the first version, written with encoding/gob: still
	// read, for results published before.
	partialGob = 1
)

// ErrPartial wraps every error of UnmarshalBinary.
var ErrPartial = errors.New("not a ktrace partial")

type wirePartial struct {
	SkewTolerance time.Duration
	Traces, Spans int // the analyzer's (complete traces)
	GraphTraces   int // the builder's (all traces)
	GraphSpans    int
	Incomplete    []trace.TraceID
	TraceIDs      []trace.TraceID // every trace added
	Nodes         []wireNode
	Edges         []wireEdge
	Producers     []wireProducer
	MsgIDs        []wireMsgID
	Pending       []wirePending
	Roots         []wireRoot
	Keyed         []wireKeyed
	Findings      [3][]wireFinding // found, server roots, inside
	ConsRoots     []wireConsRoot
	Linked        []wireLinked
	Consumers     []wireSpan
}

type wireNode struct {
	Kind                  graph.NodeKind
	Name                  string
	Spans, Errors         int
	Instances, Operations []string
	Partitions            []int32
	Samplers              []string
}

type wireEdge struct {
	From, To      int32
	Kind          graph.EdgeKind
	Relation      graph.Relation
	Group         string
	Count, Errors int
	ClientIDs     []string
	// The samples: whole (Latencies) up to graph.ExactSamples of them,
	// else rounded, counted by value (Rounded, by ascending value).
	Latencies []int64
	Rounded   []wireCount
}

type wireCount struct {
	Value int64
	Count int
}

type wireSpan struct {
	Trace trace.TraceID
	Span  trace.SpanID
}

type wireRef struct {
	Span    wireSpan
	Service string
}

type wireProducer struct {
	Span          wireSpan
	Start, Offset int64
	Partition     int32
	Service       int32
	Topic         int32
}

type wireMsgID struct {
	Producer int
	ID       string
}

type wirePending struct {
	Ref                  wireRef
	Node, Topic          int32
	Group, Client, MsgID string
	Partition            int32
	Offset, Start        int64
	Err                  bool
	Links                []wireSpan
	MissingParent        bool
}

type wireRoot struct {
	Ref         wireRef
	Node, Topic int32
	Key, Client string
	Start, Dur  int64
	Err         bool
}

type wireKeyed struct {
	Service, Key string
	Ref          wireRef
	Topic        string
	Start        int64
}

type wireFinding struct {
	Rule    analyze.Rule
	A, B, C string
	Finding analyze.Finding
	Last    trace.TraceID
	First   bool
}

type wireConsRoot struct {
	Span           wireSpan
	Service, Topic string
	Server         bool
	Pending        int32
}

type wireLinked struct {
	Trace   trace.TraceID
	Rule    analyze.Rule
	A, B, C string
	Links   []wireSpan
	Counted bool
}

func refOut(r graph.SpanRef) wireRef {
	return wireRef{wireSpan{r.TraceID, r.SpanID}, r.Service}
}

func (r wireRef) in() graph.SpanRef {
	return graph.SpanRef{TraceID: r.Span.Trace, SpanID: r.Span.Span, Service: r.Service}
}

// MarshalBinary writes the partial in ktrace's versioned partial format
// (it cannot fail). The partial stays usable.
func (p *Partial) MarshalBinary() ([]byte, error) {
	w := p.a.wire()
	return encodeWire(&w), nil
}

// encodeWire writes flattened state in the partial format.
func encodeWire(w *wirePartial) []byte {
	out := wireWriter{b: make([]byte, 0, w.sizeHint())}
	out.b = append(out.b, partialMagic...)
	out.b = append(out.b, partialVersion)
	out.partial(w)
	return out.b
}

// wire flattens the analyzer's state; the analyzer stays usable.
func (a *analyzer) wire() wirePartial { return a.wireOf(false) }

// wireOf is wire; pairing leaves out what pairing does not read: the
// nodes' and edges' details, the latency samples, the findings.
func (a *analyzer) wireOf(pairing bool) wirePartial {
	b := a.b
	b.flushEdges()
	w := wirePartial{SkewTolerance: a.tol, Traces: a.traces, Spans: a.spans, GraphTraces: b.traces, GraphSpans: b.spans,
		Incomplete: a.incomplete}
	// Each list made as long as it will be: grown by appends, they left
	// about as much garbage again as they hold (BenchmarkPairing).
	w.TraceIDs = make([]trace.TraceID, 0, b.traceIDs.Len())
	w.Nodes = make([]wireNode, 0, len(b.nodeList))
	w.Edges = make([]wireEdge, 0, len(b.edgeList))
	w.Producers = make([]wireProducer, 0, b.producers.Len())
	w.MsgIDs = make([]wireMsgID, 0, len(b.msgIDs))
	w.Pending = make([]wirePending, 0, b.pending.Len())
	w.Roots = make([]wireRoot, 0, len(b.roots))
	w.ConsRoots = make([]wireConsRoot, 0, len(a.consRoots))
	w.Linked = make([]wireLinked, 0, len(a.linked))
	consumers := a.consumers.Len()
	for _, l := range a.merged {
		consumers += l.Len()
	}
	w.Consumers = make([]wireSpan, 0, consumers)
	for _, c := range b.traceIDs.Chunks() {
		w.TraceIDs = append(w.TraceIDs, c...)
	}
	for _, n := range b.nodeList {
		if pairing {
			w.Nodes = append(w.Nodes, wireNode{Kind: n.kind, Name: n.name})
			continue
		}
		w.Nodes = append(w.Nodes, wireNode{Kind: n.kind, Name: n.name, Spans: n.spans, Errors: n.errors,
			Instances: keys(n.instances), Operations: keys(n.operations), Partitions: keys(n.partitions), Samplers: keys(n.samplers)})
	}
	if pairing {
		for _, e := range b.edgeList {
			w.Edges = append(w.Edges, wireEdge{From: e.from.seq, To: e.to.seq, Kind: e.kind, Relation: e.rel, Group: e.group})
		}
	} else {
		lat := b.edgeSamples()
		for i, e := range b.edgeList {
			we := wireEdge{From: e.from.seq, To: e.to.seq, Kind: e.kind, Relation: e.rel, Group: e.group,
				Count: e.count, Errors: e.errors, ClientIDs: keys(e.clientIDs), Latencies: lat[i]}
			if e.nlat+e.nrounded > graph.ExactSamples {
				counts := rounding(lat[i], e.rounded)
				we.Latencies, we.Rounded = nil, make([]wireCount, 0, len(counts))
				for _, v := range slices.Sorted(maps.Keys(counts)) {
					we.Rounded = append(we.Rounded, wireCount{v, counts[v]})
				}
			}
			w.Edges = append(w.Edges, we)
		}
	}
	b.producers.stretches(0, b.producers.Len(), func(run *producerRun, c []producer) {
		for _, pr := range c {
			if run.to != nil {
				pr.svc, pr.topic = run.to[pr.svc], run.to[pr.topic]
			}
			w.Producers = append(w.Producers, wireProducer{wireSpan{pr.tid, pr.sid}, pr.start, pr.offset, pr.partition, pr.svc, pr.topic})
		}
	})
	for _, m := range b.msgIDs {
		w.MsgIDs = append(w.MsgIDs, wireMsgID{m.j, m.id})
	}
	for j := 0; j < b.pending.Len(); j++ {
		pc := b.pending.At(j)
		wp := wirePending{Ref: refOut(pc.ref), Node: pc.node.seq, Topic: pc.topic.seq, Group: pc.group, Client: pc.client,
			MsgID: pc.msgID, Partition: pc.partition, Offset: pc.offset, Start: pc.start, Err: pc.err, MissingParent: pc.missingParent}
		for _, l := range pc.links {
			wp.Links = append(wp.Links, wireSpan{l.TraceID, l.SpanID})
		}
		w.Pending = append(w.Pending, wp)
	}
	for _, r := range b.roots {
		w.Roots = append(w.Roots, wireRoot{Ref: refOut(r.ref), Node: r.node.seq, Topic: r.topic.seq, Key: r.key, Client: r.client,
			Start: r.start, Dur: r.dur, Err: r.err})
	}
	for k, list := range b.keyed {
		for _, c := range list {
			w.Keyed = append(w.Keyed, wireKeyed{Service: k.service, Key: k.key, Ref: refOut(c.ref), Topic: c.topic, Start: c.start})
		}
	}
	for i, c := range []*collector{a.found, a.serverRoots, a.inside} {
		if pairing {
			break
		}
		for _, f := range c.order {
			w.Findings[i] = append(w.Findings[i], wireFinding{f.key.rule, f.key.a, f.key.b, f.key.c, f.Finding, f.last, f.first})
		}
	}
	for _, r := range a.consRoots {
		w.ConsRoots = append(w.ConsRoots, wireConsRoot{wireSpan{r.span.tid, r.span.sid}, r.svc, r.topic, r.server, r.pending})
	}
	for _, lp := range a.linked {
		wl := wireLinked{Trace: lp.tid, Rule: lp.key.rule, A: lp.key.a, B: lp.key.b, C: lp.key.c, Counted: lp.counted}
		for _, l := range lp.links {
			wl.Links = append(wl.Links, wireSpan{l.tid, l.sid})
		}
		w.Linked = append(w.Linked, wl)
	}
	for _, l := range append([]chunkList[spanKey]{a.consumers}, a.merged...) {
		for _, c := range l.Chunks() {
			for _, k := range c {
				w.Consumers = append(w.Consumers, wireSpan{k.tid, k.sid})
			}
		}
	}
	return w
}

// UnmarshalBinary reads a partial MarshalBinary wrote, replacing p's
// contents. Errors wrap ErrPartial.
func (p *Partial) UnmarshalBinary(data []byte) error {
	a, err := decodePartial(data)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPartial, err)
	}
	p.a = a
	return nil
}

func decodePartial(data []byte) (*analyzer, error) {
	rest, ok := bytes.CutPrefix(data, []byte(partialMagic))
	if !ok || len(rest) == 0 {
		return nil, errors.New("no partial header")
	}
	switch rest[0] {
	case partialVersion, partialV2:
		r := wireReader{b: rest[1:], version: rest[0]}
		w, err := r.partial()
		if err != nil {
			return nil, err
		}
		return fromWire(w)
	case partialGob:
		var w wirePartial
		if err := gob.NewDecoder(bytes.NewReader(rest[1:])).Decode(&w); err != nil {
			return nil, err
		}
		return fromWire(&w)
	}
	return nil, fmt.Errorf("format version %d, this ktrace reads %d to %d", rest[0], partialGob, partialVersion)
}

// fromWire makes an analyzer of flattened state, checking every number
// that indexes something.
func fromWire(w *wirePartial) (*analyzer, error) {
	a := newAnalyzer(w.SkewTolerance)
	b := a.b
	a.traces, a.spans, a.incomplete = w.Traces, w.Spans, w.Incomplete
	b.traces, b.spans = w.GraphTraces, w.GraphSpans
	if min(w.Traces, w.Spans, w.GraphTraces, w.GraphSpans) < 0 {
		return nil, errors.New("negative count")
	}
	for _, id := range w.TraceIDs {
		b.traceIDs.Add(id)
	}
	for _, n := range w.Nodes {
		if n.Kind > graph.KindUnknownCaller || min(n.Spans, n.Errors) < 0 {
			return nil, fmt.Errorf("bad node %q", n.Name)
		}
		if _, dup := b.nodes[n.Kind][n.Name]; dup {
			return nil, fmt.Errorf("node %q twice", n.Name)
		}
		t := b.node(n.Kind, n.Name)
		t.spans, t.errors = n.Spans, n.Errors
		for _, v := range n.Instances {
			addTo(&t.instances, v)
		}
		for _, v := range n.Operations {
			addTo(&t.operations, v)
		}
		for _, v := range n.Partitions {
			if v < 0 {
				return nil, fmt.Errorf("node %q: partition %d", n.Name, v)
			}
			t.notePartition(v)
		}
		for _, v := range n.Samplers {
			addTo(&t.samplers, v)
		}
	}
	nodes := func(is ...int32) bool {
		for _, i := range is {
			if i < 0 || int(i) >= len(b.nodeList) {
				return false
			}
		}
		return true
	}
	for _, e := range w.Edges {
		if !nodes(e.From, e.To) || e.From == e.To || e.Kind > graph.EdgePeer || e.Relation > graph.RelStitched || min(e.Count, e.Errors) < 0 {
			return nil, errors.New("bad edge")
		}
		from, to := b.nodeList[e.From], b.nodeList[e.To]
		sl := b.edge(from, to, e.Kind, e.Relation, e.Group)
		t := b.edgeList[sl.seq1-1]
		if t.count != 0 || t.nlat != 0 || t.nrounded != 0 {
			return nil, fmt.Errorf("edge %s → %s twice", from.name, to.name)
		}
		rounded, err := roundedOf(e)
		if err != nil {
			return nil, fmt.Errorf("edge %s → %s: %w", from.name, to.name, err)
		}
		t.addRounded(rounded)
		t.count, t.errors, t.nlat = e.Count, e.Errors, len(e.Latencies)
		for _, v := range e.ClientIDs {
			addTo(&t.clientIDs, v)
		}
		b.samples.reserve(len(e.Latencies))
		for _, v := range e.Latencies {
			b.samples.add(t.seq, v)
		}
	}
	for _, pr := range w.Producers {
		if !nodes(pr.Service, pr.Topic) {
			return nil, errors.New("bad producer")
		}
		b.producers.add(producer{tid: pr.Span.Trace, sid: pr.Span.Span, start: pr.Start, offset: pr.Offset, partition: pr.Partition, svc: pr.Service, topic: pr.Topic})
	}
	for _, m := range w.MsgIDs {
		if m.Producer < 0 || m.Producer >= b.producers.Len() {
			return nil, errors.New("bad message id")
		}
		b.msgIDs = append(b.msgIDs, producerMsgID{m.Producer, m.ID})
	}
	for _, wp := range w.Pending {
		if !nodes(wp.Node, wp.Topic) {
			return nil, errors.New("bad pending consumer")
		}
		pc := pendingConsumer{ref: wp.Ref.in(), node: b.nodeList[wp.Node], topic: b.nodeList[wp.Topic], group: wp.Group, client: wp.Client,
			partition: wp.Partition, offset: wp.Offset, msgID: wp.MsgID, start: wp.Start, err: wp.Err, missingParent: wp.MissingParent}
		for _, l := range wp.Links {
			pc.links = append(pc.links, trace.Ref{Type: trace.RefLink, TraceID: l.Trace, SpanID: l.Span})
		}
		b.pending.Add(pc)
	}
	for _, r := range w.Roots {
		if !nodes(r.Node, r.Topic) {
			return nil, errors.New("bad root producer")
		}
		b.roots = append(b.roots, rootProducer{ref: r.Ref.in(), node: b.nodeList[r.Node], topic: b.nodeList[r.Topic], key: r.Key, client: r.Client,
			start: r.Start, dur: r.Dur, err: r.Err})
	}
	for _, k := range w.Keyed {
		kk := keyedKey{k.Service, k.Key}
		b.keyed[kk] = append(b.keyed[kk], keyedConsumer{ref: k.Ref.in(), topic: k.Topic, start: k.Start})
	}
	for i, c := range []*collector{a.found, a.serverRoots, a.inside} {
		for _, wf := range w.Findings[i] {
			k := findingKey{wf.Rule, wf.A, wf.B, wf.C}
			f, isNew := c.get(k)
			if !isNew || wf.Finding.Rule != wf.Rule || len(wf.Finding.Examples) > analyze.MaxExamples {
				return nil, errors.New("bad finding")
			}
			f.Finding, f.last, f.first = wf.Finding, wf.Last, wf.First
		}
	}
	for _, r := range w.ConsRoots {
		if r.Pending < -1 || int(r.Pending) >= b.pending.Len() {
			return nil, errors.New("bad consumer root")
		}
		a.consRoots = append(a.consRoots, consumerRoot{spanKey{r.Span.Trace, r.Span.Span}, r.Service, r.Topic, r.Server, r.Pending})
	}
	for _, wl := range w.Linked {
		lp := linkedProducer{tid: wl.Trace, key: findingKey{wl.Rule, wl.A, wl.B, wl.C}, counted: wl.Counted}
		for _, l := range wl.Links {
			lp.links = append(lp.links, spanKey{l.Trace, l.Span})
		}
		a.linked = append(a.linked, lp)
	}
	for _, k := range w.Consumers {
		a.consumers.Add(spanKey{k.Trace, k.Span})
	}
	return a, nil
}

// roundedOf checks an edge's rounded samples and counts them by value.
func roundedOf(e wireEdge) (map[int64]int, error) {
	if len(e.Rounded) == 0 {
		return nil, nil
	}
	counts := make(map[int64]int, len(e.Rounded))
	n := len(e.Latencies)
	for i, c := range e.Rounded {
		switch {
		case c.Count < 1 || c.Count > math.MaxInt32:
			return nil, errors.New("bad count of rounded samples")
		case i > 0 && c.Value <= e.Rounded[i-1].Value:
			return nil, errors.New("rounded samples out of order")
		case c.Value != graph.RoundLatency(c.Value):
			return nil, errors.New("a rounded sample not rounded")
		}
		counts[c.Value] = c.Count
		n += c.Count
	}
	if n <= graph.ExactSamples {
		return nil, errors.New("samples rounded that are few enough to keep whole")
	}
	return counts, nil
}

// edgeSamples returns each edge's latency samples, gathered from the logs,
// which stay as they are (the builder stays usable).
func (b *builder) edgeSamples() [][]int64 {
	counts := make([]int, len(b.edgeList))
	for i, e := range b.edgeList {
		counts[i] = e.nlat
	}
	lat := make([][]int64, len(b.edgeList))
	gatherSamples(b.edgeList, append(b.logs[:len(b.logs):len(b.logs)], sampleLog{b.samples, b.edgeList}), counts, lat)
	return lat
}

// EdgeCount is what a partial holds of one edge before it is finished:
// what its own traces found, without the consumers still to be paired
// across partials.
type EdgeCount struct {
	From, To      string // node keys
	Kind          graph.EdgeKind
	Relation      graph.Relation
	Group         string
	Count, Errors int
	Latencies     []int64 // nanoseconds, in no order
}

// Size is how many nodes and edges the partial's graph holds.
func (p *Partial) Size() (nodes, edges int) {
	b := p.a.b
	b.flushEdges()
	return len(b.nodeList), len(b.edgeList)
}

// Edges returns the partial's edges as its traces found them (for
// metrics), with the samples read rounded from bytes given as many times
// as they were counted. The partial stays usable.
func (p *Partial) Edges() []EdgeCount {
	b := p.a.b
	b.flushEdges()
	lat := b.edgeSamples()
	out := make([]EdgeCount, len(b.edgeList))
	for i, e := range b.edgeList {
		for _, v := range slices.Sorted(maps.Keys(e.rounded)) {
			for range e.rounded[v] {
				lat[i] = append(lat[i], v)
			}
		}
		out[i] = EdgeCount{From: e.from.kind.String() + ":" + e.from.name, To: e.to.kind.String() + ":" + e.to.name,
			Kind: e.kind, Relation: e.rel, Group: e.group, Count: e.count, Errors: e.errors, Latencies: lat[i]}
	}
	return out
}
