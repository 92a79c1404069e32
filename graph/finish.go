package graph

// The end of a build: pending consumers joined with the producers,
// root producers resolved, the graph made.

import (
	"runtime"
	"time"

	"github.com/ktrace-dev/ktrace/internal/chunk"
	"github.com/ktrace-dev/ktrace/internal/split"
)

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
