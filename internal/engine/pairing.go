package engine

// Pairing across members. A partial's consumers that lost their context
// can only be judged with the producers of other partials; ktrace stream
// sends them, and copies of the producers, through a topic keyed by where
// the two halves meet, so that one member judges each consumer once.

import (
	"errors"
	"hash/fnv"
	"slices"
	"strconv"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/trace"
)

// Pairing takes out of p what pairs across traces and returns the rest
// (local) and, in n parts by pairing key, what was taken, as partials'
// bytes with the times of their spans (PairingPart). A part holds the consumers that lost their context
// whose key is its own, with the consumer roots among them, and a copy
// of each of p's producers of its keys; and the set's edges, counted
// zero, which say what the whole set knows (which topics have producers,
// which services are called). Keys: a producer's is the topic and
// partition it wrote (and, with a message ID, the ID, in any topic); a
// consumer's is its record's topic and partition, or its message ID when
// it names no offset, so a consumer meets the producer of its record, of
// its message ID, and the producers it links to that wrote its
// partition. Consumers except holds pending too were taken before (the
// same segment, published again with late spans) and are left out. p
// itself becomes local: what was taken is taken out of it.
//
// local's Finish counts what p's own traces show; Pair over every part
// of a key counts the rest: the two add up to what the merged partials'
// Finish counts of the consume edges and the hop breaks.
func (p *Partial) Pairing(n int, except *Partial) (local *Partial, parts []PairingPart, err error) {
	if n < 1 {
		return nil, nil, errors.New("pairing into no parts")
	}
	w := p.a.wireOf(true)
	taken := map[wireSpan]bool{}
	if except != nil {
		eb := except.a.b
		for i := 0; i < eb.pending.Len(); i++ {
			r := eb.pending.At(i).ref
			taken[wireSpan{r.TraceID, r.SpanID}] = true
		}
	}
	nodes, facts := w.Nodes, w.Edges
	pw := make([]*wirePartial, n)
	part := func(k int) *wirePartial {
		if pw[k] == nil {
			pw[k] = &wirePartial{SkewTolerance: w.SkewTolerance, Nodes: nodes, Edges: facts}
		}
		return pw[k]
	}
	topicKey := func(topic int32, partition int32) int {
		return keyPart(n, w.Nodes[topic].Name+"\x00"+strconv.Itoa(int(max(partition, -1))))
	}
	msgKey := func(id string) int { return keyPart(n, "\x01"+id) }

	// Each producer, in the part of its partition; with a message ID, in
	// that ID's part too.
	type at struct{ k, j int }
	copies := make([][]at, len(w.Producers))
	add := func(k, j int) int {
		for _, c := range copies[j] {
			if c.k == k {
				return c.j
			}
		}
		t := part(k)
		t.Producers = append(t.Producers, w.Producers[j]) // its trace is there too: Pair says so
		copies[j] = append(copies[j], at{k, len(t.Producers) - 1})
		return len(t.Producers) - 1
	}
	for j, pr := range w.Producers {
		add(topicKey(pr.Topic, pr.Partition), j)
	}
	for _, m := range w.MsgIDs {
		add(msgKey(m.ID), m.Producer)
		for _, c := range copies[m.Producer] {
			pw[c.k].MsgIDs = append(pw[c.k].MsgIDs, wireMsgID{c.j, m.ID})
		}
	}

	incomplete := map[trace.TraceID]bool{}
	for _, id := range w.Incomplete {
		incomplete[id] = true
	}
	moved := make([]at, len(w.Pending)) // k -1: left out
	for i, pc := range w.Pending {
		if taken[pc.Ref.Span] {
			moved[i] = at{-1, -1}
			continue
		}
		var k int
		switch {
		case pc.Partition >= 0 && pc.Offset >= 0:
			k = topicKey(pc.Topic, pc.Partition)
		case pc.MsgID != "":
			k = msgKey(pc.MsgID)
		default:
			k = topicKey(pc.Topic, pc.Partition)
		}
		t := part(k)
		t.Pending = append(t.Pending, pc)
		t.TraceIDs = append(t.TraceIDs, pc.Ref.Span.Trace)
		if incomplete[pc.Ref.Span.Trace] {
			t.Incomplete = append(t.Incomplete, pc.Ref.Span.Trace)
		}
		moved[i] = at{k, len(t.Pending) - 1}
	}
	// Root producers with a record key, and the consumer spans with one,
	// in the part of their service and key: a pass-through pairs them.
	passKey := func(service, key string) int { return keyPart(n, "\x02"+service+"\x00"+key) }
	for _, r := range w.Roots {
		if r.Key == "" {
			continue
		}
		t := part(passKey(w.Nodes[r.Node].Name, r.Key))
		t.Roots = append(t.Roots, r)
		t.TraceIDs = append(t.TraceIDs, r.Ref.Span.Trace)
	}
	for _, c := range w.Keyed {
		t := part(passKey(c.Service, c.Key))
		t.Keyed = append(t.Keyed, c)
	}

	// Produce spans linked in place of a parent, in the part of the
	// trace their first link names; each trace's consumer spans and the
	// trace itself in its own: the links are judged there.
	traceKey := func(id trace.TraceID) int {
		return keyPart(n, "\x03"+strconv.FormatUint(id.High, 16)+":"+strconv.FormatUint(id.Low, 16))
	}
	for _, l := range w.Linked {
		if len(l.Links) == 0 {
			continue
		}
		t := part(traceKey(l.Links[0].Trace))
		t.Linked = append(t.Linked, l)
	}
	for _, c := range w.Consumers {
		t := part(traceKey(c.Trace))
		t.Consumers = append(t.Consumers, c)
	}
	for _, id := range w.TraceIDs {
		t := part(traceKey(id))
		t.TraceIDs = append(t.TraceIDs, id)
	}

	for _, r := range w.ConsRoots {
		if r.Pending >= 0 && moved[r.Pending].k >= 0 {
			t := pw[moved[r.Pending].k]
			r.Pending = int32(moved[r.Pending].j)
			t.ConsRoots = append(t.ConsRoots, r)
		}
	}
	// What is left: p's own traces.
	a, b := p.a, p.a.b
	b.producers, b.msgIDs, b.pending, b.keyed = producers{}, nil, chunkList[pendingConsumer]{}, nil
	a.consRoots = slices.DeleteFunc(a.consRoots, func(r consumerRoot) bool { return r.pending >= 0 })
	b.roots = slices.DeleteFunc(b.roots, func(r rootProducer) bool { return r.key != "" })
	a.linked = slices.DeleteFunc(a.linked, func(l linkedProducer) bool { return len(l.links) > 0 })
	a.consumers, a.merged = chunkList[spanKey]{}, nil
	parts = make([]PairingPart, n)
	for k, t := range pw {
		if t == nil {
			continue
		}
		parts[k].From, parts[k].To = t.starts()
		parts[k].Data = encodeWire(t)
	}
	return p, parts, nil
}

// A PairingPart is a part Pairing made: its bytes (nil: nothing), and the
// starts of its earliest and latest spans that pair (Unix nanoseconds;
// both zero: none has a start), so that parts whose spans could pair can
// be told by their times.
type PairingPart struct {
	Data     []byte
	From, To int64
}

// starts are the earliest and latest starts of the spans a part holds
// that pair: producers, consumers that lost their context, root
// producers and keyed consumers.
func (w *wirePartial) starts() (from, to int64) {
	first := true
	see := func(t int64) {
		if first || t < from {
			from = t
		}
		if first || t > to {
			to = t
		}
		first = false
	}
	for _, pr := range w.Producers {
		see(pr.Start)
	}
	for _, pc := range w.Pending {
		see(pc.Start)
	}
	for _, r := range w.Roots {
		see(r.Start)
	}
	for _, c := range w.Keyed {
		see(c.Start)
	}
	return from, to
}

// keyPart is the part of n a pairing key falls in.
func keyPart(n int, key string) int {
	h := fnv.New64a()
	h.Write([]byte(key))
	return int(h.Sum64() % uint64(n))
}

// Pair judges the consumers of judged, parts of one key that Pairing
// made, pairing them with the producers of judged and of context (parts
// of the same key from before and after, whose own consumers are judged
// elsewhere or were already), and returns what they add: their consume
// edges with their latency samples, and the breaks they show (lost hops,
// unverified hops, consumer roots), and the facts they make known. The
// partials are spent.
func Pair(judged, context []*Partial) ([]EdgeCount, analyze.Report, *Partial, error) {
	if len(judged) == 0 {
		return nil, analyze.Report{}, nil, errors.New("no parts to judge")
	}
	x := judged[0]
	for _, j := range judged[1:] {
		if err := x.Merge(j); err != nil {
			return nil, analyze.Report{}, nil, err
		}
	}
	for _, c := range context {
		c.a.b.pending, c.a.b.roots = chunkList[pendingConsumer]{}, nil
		c.a.consRoots, c.a.incomplete, c.a.linked = nil, nil, nil
		if err := x.Merge(c); err != nil {
			return nil, analyze.Report{}, nil, err
		}
	}
	// A producer's trace is in the set (parts do not list them twice).
	b := x.a.b
	b.producers.stretches(0, b.producers.Len(), func(_ *producerRun, c []producer) {
		for _, pr := range c {
			b.traceIDs.Add(pr.tid)
		}
	})
	edges, rep, facts := x.Settle()
	return edges, rep, facts, nil
}

// Settle is Finish for counting: it resolves what the partial holds and
// returns its edges with their latency samples (those with something to
// count), its report, and its facts as they are once its consumers are
// paired. The partial is spent.
func (p *Partial) Settle() ([]EdgeCount, analyze.Report, *Partial) {
	a := p.a
	b := a.b
	m := b.matchPending()
	b.flushEdges()
	b.resolve(m)
	rep := a.judge()
	var out []EdgeCount
	for _, e := range p.Edges() {
		if e.Count > 0 || e.Errors > 0 || len(e.Latencies) > 0 {
			out = append(out, e)
		}
	}
	facts := p.Facts()
	p.a = nil
	return out, rep, facts
}

// Facts is what p knows of the whole set: its nodes and edges, counted
// zero. Merged into a partial before it settles, it lets breaks that
// depend on the whole set (which services are called, which topics have
// producers, which topics a service consumes) be judged with more than
// the partial's own traces. p stays usable.
func (p *Partial) Facts() *Partial {
	b := p.a.b
	b.flushEdges()
	a := newAnalyzer(p.a.tol)
	for _, n := range b.nodeList {
		a.b.node(n.kind, n.name)
	}
	for _, e := range b.edgeList {
		a.b.edge(a.b.nodeList[e.from.seq], a.b.nodeList[e.to.seq], e.kind, e.rel, e.group)
	}
	return &Partial{a: a}
}
