package engine

// The end of a build: pending consumers joined with the producers,
// root producers resolved, the graph made.

import (
	"cmp"
	"runtime"
	"slices"
	"time"

	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/trace"
)

// Graph resolves the consumers whose producer was not their parent — through
// span links, else by stitching — and returns the finished graph. Call it
// once; the builder is spent afterwards.
func (b *builder) Graph() *graph.Graph { return b.GraphWith(nil) }

// GraphWith is Graph that also calls f while the edges' latency percentiles
// are still being computed on the other CPUs, so that a caller's own
// finishing work overlaps with them: f may read anything of the builder
// but an edge's percentiles, and must not change it. GraphWith returns once
// both are done.
func (b *builder) GraphWith(f func()) *graph.Graph {
	m := b.matchPending()
	// The walk's latency samples are all logged: they are gathered on
	// another CPU while this one resolves the pending consumers, which log
	// a few more (gathered by finish).
	var early *gathering
	if b.flushEdges(); runtime.GOMAXPROCS(0) > 1 && b.samples.Len()+b.loggedElsewhere() >= parallelSamples {
		edges := append([]*edge(nil), b.edgeList...) // numbered as the builder's log numbers them
		early = startGather(edges, append(b.logs, sampleLog{b.samples, edges}))
		b.samples, b.logs = latLog{}, nil
	}
	b.resolve(m)
	logs := append(b.logs, sampleLog{b.samples, b.edgeList})
	b.samples, b.logs = latLog{}, nil
	finishEdges(b.edgeList, f, early, logs)
	return b.export()
}

// resolve joins the pending consumers with what m says they found — a
// link, their record's producer, a message ID's — and counts their edges,
// then resolves the root producers. The pairing lists are spent.
func (b *builder) resolve(m []match) {
	b.stitches = make([]graph.Stitch, 0, b.pending.Len()) // at most one per pending consumer
	absent := b.absentLinked(m)
	b.samples.reserve(b.pending.Len())
	b.hopStitched = make(bitSet, 0, (b.pending.Len()+63)/64)
	for i := 0; i < b.pending.Len(); i++ {
		pc := b.pending.At(i)
		rel, prod, found := graph.RelSpan, producer{}, false
		if mt := &m[i]; mt.linkPos >= 0 {
			rel, prod, found = graph.RelLink, mt.linked, true
		} else {
			st := graph.Stitch{Consumer: pc.ref, Topic: pc.topic.name, Partition: -1, Offset: -1, Group: pc.group}
			if pc.partition >= 0 && pc.offset >= 0 {
				st.Partition, st.Offset = pc.partition, pc.offset
				if mt.record {
					prod, found = mt.recorded, true
				}
			}
			if !found && pc.msgID != "" {
				if mt.msgID >= 0 {
					prod, found = b.producers.at(mt.msgID), true
				}
				st.Partition, st.Offset, st.MessageID = -1, -1, pc.msgID
			}
			if found {
				rel = graph.RelStitched
				st.Producer = b.ref(&prod)
				st.Lag = time.Duration(pc.start - prod.start)
				b.stitches = append(b.stitches, st)
				b.hopNodes = append(b.hopNodes, hopKey{prod.svc, pc.topic.seq, pc.node.seq})
				b.hopStitched.add(int32(i))
			}
		}
		if !found && (pc.missingParent || slices.ContainsFunc(pc.links, func(l trace.Ref) bool { return absent[l.TraceID] })) {
			rel = graph.RelUnverified
			if !pc.missingParent { // an orphan, not a hop to judge
				b.unverifiedHops = append(b.unverifiedHops, unverifiedHop{pc.ref.TraceID, pc.topic.seq, pc.node.seq, pc.group})
			}
		}
		var lat int64
		if found {
			lat = pc.start - prod.start
		}
		e := b.edgeList[b.edge(pc.topic, pc.node, graph.EdgeConsume, rel, pc.group).seq1-1]
		if pc.client != "" {
			addTo(&e.clientIDs, pc.client)
		}
		e.count++
		if pc.err {
			e.errors++
		}
		if found {
			b.addLatency(e, lat)
		}
	}
	b.pending, b.producers, b.msgIDs = chunkList[pendingConsumer]{}, producers{}, nil
	b.cur, b.curSpans = nil, nil
	b.resolveRoots()
	b.flushEdges()
	b.edges = nil
}

// export returns the builder's graph in graph's types.
func (b *builder) export() *graph.Graph {
	g := &graph.Graph{Traces: b.traces, Spans: b.spans}
	nodes := make([]graph.Node, len(b.nodeList))
	g.Nodes = make([]*graph.Node, len(b.nodeList))
	for i, n := range b.nodeList {
		nodes[i] = graph.Node{Key: n.kind.String() + ":" + n.name, Kind: n.kind, Name: n.name, Spans: n.spans, Errors: n.errors,
			Instances: keys(n.instances), Operations: keys(n.operations), Partitions: keys(n.partitions), Samplers: keys(n.samplers)}
		g.Nodes[i] = &nodes[i]
	}
	edges := make([]graph.Edge, len(b.edgeList))
	g.Edges = make([]*graph.Edge, len(b.edgeList))
	for i, e := range b.edgeList {
		edges[i] = graph.Edge{From: g.Nodes[e.from.seq], To: g.Nodes[e.to.seq], Kind: e.kind, Relation: e.rel, Group: e.group,
			Count: e.count, Errors: e.errors, P50: e.p50, P95: e.p95, P99: e.p99, ClientIDs: keys(e.clientIDs)}
		g.Edges[i] = &edges[i]
	}
	g.Stitches = b.stitches
	permute(g.Stitches, stitchOrder(g.Stitches))
	g.Finish() // finds the stitches in order already
	return g
}

// sortRuns sorts a, which is usually a few ascending runs: each worker's
// stitches come in the order of its traces, and traces often come sorted
// (a snapshot's do). Few runs are merged, two by two, in linear passes;
// many are sorted.
func sortRuns[T any](a []T, compare func(x, y T) int) {
	var ends []int // where each run ends
	for i := 1; i <= len(a); i++ {
		if i == len(a) || compare(a[i-1], a[i]) > 0 {
			ends = append(ends, i)
			if len(ends) > 16 {
				slices.SortFunc(a, compare)
				return
			}
		}
	}
	buf := make([]T, 0, len(a))
	for len(ends) > 1 {
		var next []int
		start := 0
		for k := 0; k < len(ends); k += 2 {
			if k+1 == len(ends) {
				next = append(next, ends[k])
				break
			}
			mid, end := ends[k], ends[k+1]
			buf = buf[:0]
			i, j := start, mid
			for i < mid && j < end {
				if compare(a[j], a[i]) < 0 {
					buf = append(buf, a[j])
					j++
				} else {
					buf = append(buf, a[i])
					i++
				}
			}
			buf = append(append(buf, a[i:mid]...), a[j:end]...)
			copy(a[start:end], buf)
			next = append(next, end)
			start = end
		}
		ends = next
	}
}

// permute puts a in the order order gives (order[i]: the index of the
// value that goes to i), in place: each value moves once.
func permute[T any](a []T, order []int32) {
	for i := range order {
		if order[i] < 0 {
			continue // moved with an earlier cycle
		}
		v := a[i]
		j := i
		for {
			k := int(order[j])
			order[j] = -1
			if k == i {
				a[j] = v
				break
			}
			a[j] = a[k]
			j = k
		}
	}
}

// stitchOrder returns the stitches' indexes in graph.Finish's order. It
// sorts small keys, not the stitches: a stitch is over 200 bytes to move,
// and a set has tens of thousands.
func stitchOrder(st []graph.Stitch) []int32 {
	// The key: the stitch's kind and first span (by the order's rule) in
	// 32 bytes; ties, rare, are broken by the second span.
	type key struct {
		high, low uint64 // the first span's trace
		span      trace.SpanID
		kind      graph.StitchKind
		i         int32
	}
	ks := make([]key, len(st))
	for i := range st {
		first := &st[i].Consumer
		if st[i].Kind == graph.StitchPassThrough {
			first = &st[i].Producer
		}
		ks[i] = key{first.TraceID.High, first.TraceID.Low, first.SpanID, st[i].Kind, int32(i)}
	}
	second := func(k key) *graph.SpanRef {
		if k.kind == graph.StitchPassThrough {
			return &st[k.i].Consumer
		}
		return &st[k.i].Producer
	}
	sortRuns(ks, func(x, y key) int {
		switch {
		case x.kind != y.kind:
			return cmp.Compare(x.kind, y.kind)
		case x.high != y.high:
			return cmp.Compare(x.high, y.high)
		case x.low != y.low:
			return cmp.Compare(x.low, y.low)
		case x.span != y.span:
			return cmp.Compare(x.span, y.span)
		}
		a, b := second(x), second(y)
		if c := graph.CompareTraceIDs(a.TraceID, b.TraceID); c != 0 {
			return c
		}
		return cmp.Compare(a.SpanID, b.SpanID)
	})
	out := make([]int32, len(ks))
	for i, k := range ks {
		out[i] = k.i
	}
	return out
}

// keys returns a set's members, unsorted (graph.Finish sorts them).
func keys[K comparable](m map[K]struct{}) []K {
	if len(m) == 0 {
		return nil
	}
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// absent returns those of tids that are not in the data (none is looked
// for when tids is empty).
func (b *builder) absent(tids []trace.TraceID) map[trace.TraceID]bool {
	if len(tids) == 0 {
		return nil
	}
	out := make(map[trace.TraceID]bool, len(tids))
	for _, id := range tids {
		out[id] = true
	}
	for _, c := range b.traceIDs.Chunks() {
		for _, id := range c {
			delete(out, id)
		}
	}
	return out
}

// absentLinked returns the traces not in the data that pending consumers
// not paired through a link (m says which) link to. Usually there are
// none, and the traces are not looked through.
func (b *builder) absentLinked(m []match) map[trace.TraceID]bool {
	var tids []trace.TraceID
	for i := 0; i < b.pending.Len(); i++ {
		if m[i].linkPos < 0 {
			for _, l := range b.pending.At(i).links {
				tids = append(tids, l.TraceID)
			}
		}
	}
	return b.absent(tids)
}

// match is what a pending consumer found among the producers: the producer
// its first link to a producer of its topic points to (linkPos is the
// link's position among the span's links, -1: none), the producer of its
// record (topic, partition, offset), and the latest producer of its message
// ID (any topic), as an index into builder.producers (-1: none). The first
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
// CPUs). Where several producers of one record or message ID match, the
// latest wins (laterProducer), as graph's rules say.
func (b *builder) matchPending() []match {
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
	parts := inRuns(b.producers.Len(), 0, func(lo, hi int) (hits []hit) {
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
				if !o.record || laterProducer(h.p, o.recorded) {
					o.record, o.recorded = true, h.p
				}
			case o.linkPos < 0 || h.pos < o.linkPos || h.pos == o.linkPos && laterProducer(h.p, o.linked):
				o.linkPos, o.linked = h.pos, h.p // the first link, in the span's order, wins
			}
		}
	}
	if len(byMsgID) > 0 {
		for _, pm := range b.msgIDs {
			for _, i := range byMsgID[pm.id] {
				p := b.producers.at(pm.j)
				if p.topic == b.pending.At(i).topic.seq && (out[i].msgID < 0 || laterProducer(p, b.producers.at(out[i].msgID))) {
					out[i].msgID = pm.j
				}
			}
		}
	}
	return out
}

// laterProducer reports whether producer a is preferred to b where both
// could pair: the later start, then the greater trace and span IDs.
func laterProducer(a, b producer) bool {
	return laterSpan(a.start, graph.SpanRef{TraceID: a.tid, SpanID: a.sid}, b.start, graph.SpanRef{TraceID: b.tid, SpanID: b.sid})
}

// laterSpan is laterProducer for two spans by their starts and names.
func laterSpan(aStart int64, a graph.SpanRef, bStart int64, b graph.SpanRef) bool {
	if aStart != bStart {
		return aStart > bStart
	}
	if c := graph.CompareTraceIDs(a.TraceID, b.TraceID); c != 0 {
		return c > 0
	}
	return a.SpanID > b.SpanID
}

// ref is the span reference of a remembered producer.
func (b *builder) ref(p *producer) graph.SpanRef {
	return graph.SpanRef{TraceID: p.tid, SpanID: p.sid, Service: b.nodeList[p.svc].name}
}

// resolveRoots decides the relation of every root produce span. In a service
// that also consumes, a root produce span whose record key matches a record
// the service consumed just before is a pass-through that lost its context
// (a stateful join writing from its store): it is stitched to the latest such
// consumer span (laterSpan). Otherwise the span is an unverified
// pass-through in a service that consumes, an origin of data in one that
// does not.
func (b *builder) resolveRoots() {
	b.samples.reserve(len(b.roots))
	consumes := map[*node]bool{} // services with a consumer span counted
	if len(b.roots) > 0 {
		for _, e := range b.edgeList {
			if e.kind == graph.EdgeConsume {
				consumes[e.to] = true
			}
		}
	}
	for i := range b.roots {
		r := &b.roots[i]
		rel := graph.RelSpan
		if consumes[r.node] {
			rel = graph.RelUnverified
		}
		if r.key != "" {
			var best *keyedConsumer
			for j, c := range b.keyed[keyedKey{r.node.name, r.key}] {
				if c.start <= r.start && c.topic != r.topic.name && (best == nil || laterSpan(c.start, c.ref, best.start, best.ref)) {
					best = &b.keyed[keyedKey{r.node.name, r.key}][j]
				}
			}
			if best != nil {
				rel = graph.RelStitched
				b.stitches = append(b.stitches, graph.Stitch{Kind: graph.StitchPassThrough, Producer: r.ref, Consumer: best.ref,
					Topic: best.topic, OutTopic: r.topic.name, Partition: -1, Offset: -1, Key: r.key})
			}
		}
		b.observeClient(b.edge(r.node, r.topic, graph.EdgeProduce, rel, ""), r.err, r.dur, r.client)
	}
	b.roots = nil
	b.keyed = nil
}
