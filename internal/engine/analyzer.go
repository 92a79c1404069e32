package engine

import (
	"cmp"
	"encoding/binary"
	"slices"
	"time"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/trace"
)

// analyzer builds the service graph and finds the breaks in one pass,
// reading each span once and keeping no traces: feed it traces one at a
// time (from a stream, say) and call Finish. It gives what graph.Build
// followed by analyze.Breaks gives.
//
// Breaks needs the finished graph (who is called by others, which topics
// have producers, which consumers were stitched), which one pass cannot
// have. So the analyzer counts what needs nothing global at once (orphans,
// skew, multiple roots), counts the rest as candidates keyed the way their
// findings are (a server root per service and operation, a processor's
// unexplained produce span per service and topic), keeps the few that must
// be judged one by one (consumer roots, produce spans whose only claim to
// continue their input is a link), and judges them all in Finish. Lost hops
// come from the graph's stitches.
type analyzer struct {
	tol time.Duration // skew tolerance
	b   *builder
	idx spanIndex

	found       *collector // orphans, skew, multiple roots
	serverRoots *collector // server root spans, kept if others call the service
	rootCache   [1 << rootCacheBits]rootSlot
	inside      *collector // unexplained produce spans, kept if the service consumes
	consRoots   []consumerRoot
	linked      []linkedProducer
	// consumers are the consumer spans, for judging linked produce spans;
	// merged holds merged analyzers' lists as they are (order does not
	// matter: they are looked through as a set).
	consumers chunkList[spanKey]
	merged    []chunkList[spanKey]

	traces, spans int
	incomplete    []trace.TraceID

	rootSvcs []string
	links    []spanKey
	pending  []linkedProducer
}

const rootCacheBits = 6

// rootKey is a server root's service and operation by their addresses.
type rootKey struct{ svc, op addr }

// hash mixes the two addresses (the operation alone is shared by many
// services' roots).
func (k rootKey) hash() uint64 {
	return (k.svc.word()*0xC2B2AE3D27D4EB4F ^ k.op.word()) * 0x9E3779B97F4A7C15
}

type rootSlot struct {
	k rootKey
	f *finding
}

// consumerRoot is a consumer span that starts a trace with no link: a
// mid-graph root if its topic has instrumented producers and the span was
// not stitched to one.
type consumerRoot struct {
	span       spanKey
	svc, topic string
	server     bool  // a server span too: judged as one first
	pending    int32 // its number among the builder's pending consumers (-1: none)
}

// linkedProducer is a produce span in a service that may consume, with no
// consumer or server span above it, whose same-service chain carries links:
// it continues its input if one of them points at a consumer span.
type linkedProducer struct {
	tid     trace.TraceID
	key     findingKey
	links   []spanKey
	counted bool // its trace was already counted for key, unlinked
}

// newAnalyzer returns an empty analyzer that reports clock skew beyond tol.
func newAnalyzer(tol time.Duration) *analyzer {
	return &analyzer{tol: tol, b: newBuilder(), found: newCollector(), serverRoots: newCollector(), inside: newCollector()}
}

// Add folds one trace in; an incomplete one (still arriving) is added to
// the graph only, and listed in the report. The analyzer does not keep t.
// Traces must be distinct by ID.
func (a *analyzer) Add(t *trace.Trace, incomplete bool) {
	a.idx.Reset(t.Spans)
	if incomplete {
		a.b.AddIndexed(t, &a.idx)
		a.incomplete = append(a.incomplete, t.ID)
		return
	}
	// The graph is built in the same walk over the spans, so a large
	// trace is read from memory once more, not twice.
	a.b.Begin(t, &a.idx)
	a.traces++
	a.spans += len(t.Spans)
	a.rootSvcs = a.rootSvcs[:0]
	a.pending = a.pending[:0]
	roots := 0
	for j := range t.Spans {
		s := &t.Spans[j]
		in := a.idx.Info(j)
		pending := a.b.AddSpanInfo(j, s, in)
		svc := s.Service()
		pi, m := in.Parent, in.View
		switch {
		case pi == noParent:
			roots++
			a.rootSvcs = appendUnique(a.rootSvcs, svc)
			a.root(s, svc, m, pending)
		case pi == missingParent:
			a.found.count(findingKey{rule: analyze.RuleOrphan, a: svc}, t.ID, func() analyze.Finding { return analyze.Orphan(svc) })
		default:
			if parent := &t.Spans[pi]; in.Cross && startsBefore(s.Start, parent.Start, a.tol) {
				skew(a.found, parent.Service(), svc, analyze.SkewBeforeParent, parent.Start.Sub(s.Start), t.ID)
			}
		}
		if m == nil {
			continue
		}
		if m.IsConsumer() {
			a.consumers.Add(spanKey{s.TraceID, s.SpanID})
		}
		if m.IsProducer() && m.Destination != "" {
			a.producer(t.Spans, j, svc, m.Destination)
		}
	}
	for _, lp := range a.pending {
		if f, ok := a.inside.m[lp.key]; ok && !f.first && f.last == t.ID {
			lp.counted = true
		}
		a.linked = append(a.linked, lp)
	}
	if len(a.rootSvcs) > 1 || roots > 1 {
		f := analyze.MultipleRoots(a.rootSvcs)
		a.found.count(findingKey{rule: analyze.RuleMultipleRoots, a: f.Where}, t.ID, func() analyze.Finding { return f })
	}
}

// root counts a root span as a candidate mid-graph root; pending is what
// the builder's AddSpan returned for it.
func (a *analyzer) root(s *trace.Span, svc string, m *trace.Messaging, pending int) {
	if s.Kind == trace.KindServer {
		// Most traces start at a server span: its finding is found by the
		// names' addresses before their bytes are hashed.
		k := rootKey{addrOf(svc), addrOf(s.Operation)}
		sl := &a.rootCache[k.hash()>>(64-rootCacheBits)]
		if sl.f == nil || sl.k != k {
			f, isNew := a.serverRoots.get(findingKey{rule: analyze.RuleMidGraphRoot, a: svc, b: s.Operation, c: "server"})
			if isNew {
				f.Finding = analyze.ServerRoot(svc, s.Operation)
			}
			*sl = rootSlot{k, f}
		}
		sl.f.count(s.TraceID)
	}
	if m != nil && m.IsConsumer() && !s.HasLink() {
		a.consRoots = append(a.consRoots, consumerRoot{span: spanKey{s.TraceID, s.SpanID}, svc: svc, topic: m.Destination,
			server: s.Kind == trace.KindServer, pending: int32(pending)})
	}
}

// producer counts produce span j as a candidate lost-inside when nothing
// above it in the trace is a consumer or server span.
func (a *analyzer) producer(spans []trace.Span, j int, svc, topic string) {
	a.links = a.links[:0]
	cur := j
	for steps := 0; steps <= len(spans); steps++ {
		c := &spans[cur]
		if cur != j && (c.Kind == trace.KindConsumer || c.Kind == trace.KindServer) {
			return
		}
		if c.Service() == svc {
			for _, r := range c.Refs {
				if r.Type == trace.RefLink {
					a.links = append(a.links, spanKey{r.TraceID, r.SpanID})
				}
			}
		}
		p := a.idx.Parent(cur)
		if p == noParent {
			break
		}
		if p == missingParent {
			return // the chain leaves the data (an orphan): not this rule's to judge
		}
		cur = p
	}
	k := findingKey{rule: analyze.RuleLostInside, a: svc, b: topic}
	if len(a.links) == 0 {
		f, _ := a.inside.get(k)
		f.count(spans[j].TraceID)
		return
	}
	a.pending = append(a.pending, linkedProducer{tid: spans[j].TraceID, key: k, links: append([]spanKey(nil), a.links...)})
}

// Merge folds o, which was fed the traces that come after a's, into a.
// o is spent afterwards.
func (a *analyzer) Merge(o *analyzer) {
	// The builder numbers o's pending consumers after a's.
	base := int32(a.b.Pending())
	a.b.Merge(o.b)
	a.found.merge(o.found)
	a.serverRoots.merge(o.serverRoots)
	a.inside.merge(o.inside)
	for _, r := range o.consRoots {
		if r.pending >= 0 {
			r.pending += base
		}
		a.consRoots = append(a.consRoots, r)
	}
	a.linked = append(a.linked, o.linked...)
	o.consumers.trim()
	a.merged = append(append(a.merged, o.consumers), o.merged...)
	a.traces += o.traces
	a.spans += o.spans
	a.incomplete = append(a.incomplete, o.incomplete...)
	*o = analyzer{}
}

// Finish returns the graph and the report. The analyzer is spent afterwards.
func (a *analyzer) Finish() (*graph.Graph, analyze.Report) {
	var rep analyze.Report
	// The report is judged while the graph's latency percentiles are
	// computed, which it does not read.
	g := a.b.GraphWith(func() { rep = a.judge() })
	rep.Coverage = analyze.EstimateCoverage(g)
	return g, rep
}

// judge finds the breaks in the builder's finished graph.
func (a *analyzer) judge() analyze.Report {
	x := newWhole(a.b)
	out := a.found

	// A hop's counts are found by its three nodes' numbers, and its
	// finding is made once they are counted.
	hops := newHopCounts(len(a.b.stitches) / 4)
	var incomplete map[trace.TraceID]bool
	if len(a.incomplete) > 0 {
		incomplete = make(map[trace.TraceID]bool, len(a.incomplete))
		for _, id := range a.incomplete {
			incomplete[id] = true
		}
	}
	nodes := a.b.nodeList
	for i, k := range a.b.hopNodes {
		st := &a.b.stitches[i]
		if incomplete[st.Consumer.TraceID] {
			continue
		}
		hops.count(k, st)
		if st.Lag < -a.tol {
			skew(out, nodes[k.from].name, nodes[k.to].name, analyze.SkewBeforeProducer, -st.Lag, st.Consumer.TraceID)
		}
	}
	for i := range hops.hops {
		c := &hops.hops[i]
		from, topic, svc := nodes[c.k.from].name, nodes[c.k.topic].name, nodes[c.k.to].name
		f := out.add(findingKey{rule: analyze.RuleLostHop, a: from, b: topic, c: svc})
		f.Finding = analyze.LostHop(from, topic, svc, c.group)
		f.Occurrences, f.Traces, f.Examples = c.occurrences, c.traces, c.ex
		f.first, f.last = false, c.last
	}

	keep := newCollector()
	for _, f := range a.serverRoots.order {
		if x.calledByOthers[f.key.a] {
			keep.m[f.key], keep.order = f, append(keep.order, f)
		}
	}
	for _, r := range a.consRoots {
		if r.server && x.calledByOthers[r.svc] {
			continue // reported as a server root
		}
		if a.b.Stitched(int(r.pending)) || !x.producedTopics[r.topic] {
			continue
		}
		keep.count(findingKey{rule: analyze.RuleMidGraphRoot, a: r.svc, b: r.topic, c: "consumer"}, r.span.tid, func() analyze.Finding {
			return analyze.ConsumerRoot(r.svc, r.topic)
		})
	}
	out.merge(keep)

	inside := newCollector()
	for _, f := range a.inside.order {
		if len(x.consumes[f.key.a]) > 0 {
			inside.m[f.key], inside.order = f, append(inside.order, f)
		}
	}
	outputs := newCollector() // unverified outputs, by lost-inside's keys
	a.judgeLinked(x, inside, outputs)
	for _, f := range inside.order {
		k := f.key
		counts := f.Finding
		f.Finding = analyze.LostInside(k.a, x.consumes[k.a], k.b)
		f.Occurrences, f.Traces, f.Examples = counts.Occurrences, counts.Traces, counts.Examples
	}
	out.merge(inside)

	unverified := newCollector()
	for _, h := range a.b.unverifiedHops {
		if incomplete[h.tid] {
			continue
		}
		topic, svc := nodes[h.topic].name, nodes[h.svc].name
		f := unverified.count(findingKey{rule: analyze.RuleUnverifiedHop, a: topic, b: svc}, h.tid, func() analyze.Finding {
			return analyze.UnverifiedHop(topic, svc, h.group)
		})
		f.Group = min(f.Group, h.group)
	}
	for _, f := range outputs.order {
		counts := f.Finding
		f.Finding = analyze.UnverifiedOutput(f.key.a, x.consumes[f.key.a], f.key.b)
		f.Occurrences, f.Traces, f.Examples = counts.Occurrences, counts.Traces, counts.Examples
		f.key.rule = analyze.RuleUnverifiedOutput
		unverified.order = append(unverified.order, f)
	}

	rep := analyze.Report{Traces: a.traces, Spans: a.spans, Incomplete: a.incomplete}
	if len(out.order) > 0 {
		rep.Findings = make([]analyze.Finding, len(out.order))
		for i, k := range findingOrder(out.order) {
			rep.Findings[i] = out.order[k].Finding
		}
	}
	for i, k := range findingOrder(unverified.order) {
		if i == 0 {
			rep.Unverifiable = make([]analyze.Finding, len(unverified.order))
		}
		rep.Unverifiable[i] = unverified.order[k].Finding
	}
	rep.Sort()
	return rep
}

// judgeLinked counts the linked produce spans, in services that consume,
// none of whose links points at a consumer span: as unverified outputs
// when a link points at a trace not in the data, else as lost inside.
func (a *analyzer) judgeLinked(x *whole, inside, outputs *collector) {
	want := map[spanKey]bool{}
	for _, lp := range a.linked {
		if len(x.consumes[lp.key.a]) > 0 {
			for _, k := range lp.links {
				want[k] = false
			}
		}
	}
	if len(want) == 0 {
		return
	}
	for _, l := range append([]chunkList[spanKey]{a.consumers}, a.merged...) {
		for j := 0; j < l.Len(); j++ {
			k := *l.At(j)
			if _, ok := want[k]; ok {
				want[k] = true
			}
		}
	}
	var lost []*linkedProducer
	var tids []trace.TraceID
	for i := range a.linked {
		lp := &a.linked[i]
		if len(x.consumes[lp.key.a]) == 0 || slices.ContainsFunc(lp.links, func(k spanKey) bool { return want[k] }) {
			continue
		}
		lost = append(lost, lp)
		for _, k := range lp.links {
			tids = append(tids, k.tid)
		}
	}
	absent := a.b.absent(tids)
	for _, lp := range lost {
		if slices.ContainsFunc(lp.links, func(k spanKey) bool { return absent[k.tid] }) {
			f, _ := outputs.get(lp.key)
			f.count(lp.tid)
			continue
		}
		f, _ := inside.get(lp.key)
		if lp.counted {
			f.Occurrences++
		} else {
			f.count(lp.tid)
		}
	}
}

// findingOrder returns the findings' indexes in the report's order
// (analyze.Report.Sort, which then finds them sorted). It sorts small keys,
// not the findings: a Finding is large to move, and comparing through
// pointers to thousands of them reads them at random. Most findings tie on
// traces and rule, so a key also holds the first eight bytes of Where as a
// number: the texts themselves are compared only when those are the same.
func findingOrder(fs []*finding) []int32 {
	type key struct {
		traces uint64 // ^Traces: most traces first
		head   uint64
		rule   int32
		i      int32
	}
	ks := make([]key, len(fs))
	for i, f := range fs {
		ks[i] = key{^uint64(f.Traces), head(f.Where), int32(analyze.RuleRank(f.Rule)), int32(i)}
	}
	slices.SortFunc(ks, func(a, b key) int {
		switch {
		case a.traces != b.traces:
			return cmp.Compare(a.traces, b.traces)
		case a.rule != b.rule:
			return cmp.Compare(a.rule, b.rule)
		case a.head != b.head:
			return cmp.Compare(a.head, b.head)
		}
		return analyze.CompareFindings(&fs[a.i].Finding, &fs[b.i].Finding)
	})
	out := make([]int32, len(ks))
	for i, k := range ks {
		out[i] = k.i
	}
	return out
}

// head is the first eight bytes of s as a big-endian number, zeros past
// its end: strings with different heads compare as their heads do.
func head(s string) uint64 {
	var b [8]byte
	copy(b[:], s)
	return binary.BigEndian.Uint64(b[:])
}

// whole is what the whole set says, read from the builder once the graph
// is made: which services instrumented services call, which topics have
// producers, which topics each service consumes.
type whole struct {
	calledByOthers map[string]bool
	producedTopics map[string]bool
	consumes       map[string][]string
}

func newWhole(b *builder) *whole {
	x := &whole{calledByOthers: map[string]bool{}, producedTopics: map[string]bool{}, consumes: map[string][]string{}}
	for _, e := range b.edgeList {
		switch {
		case e.kind == graph.EdgeCall && e.rel == graph.RelParent:
			x.calledByOthers[e.to.name] = true
		case e.kind == graph.EdgeProduce:
			x.producedTopics[e.to.name] = true
		case e.kind == graph.EdgeConsume && !slices.Contains(x.consumes[e.to.name], e.from.name):
			x.consumes[e.to.name] = append(x.consumes[e.to.name], e.from.name)
		}
	}
	for _, list := range x.consumes {
		slices.Sort(list)
	}
	return x
}

// hopKey is a lost hop by its nodes' numbers: producer service, topic,
// consumer service.
type hopKey struct{ from, topic, to int32 }

func (k hopKey) hash() uint64 {
	a := uint64(uint32(k.from)) * 0xC2B2AE3D27D4EB4F
	b := uint64(uint32(k.topic)) * 0x165667B19E3779F9
	return (a ^ b ^ uint64(uint32(k.to))) * 0x9E3779B97F4A7C15
}

// hopCounts counts the lost hops' stitches by hopKey: a table of eight-byte
// slots (a tag from the key's hash and the hop's number) over a dense array
// of the hops' counts. Tens of thousands of stitches, in the order of their
// traces, fall on thousands of hops at random; this way each reads and
// writes a few lines of a few hundred kilobytes, where a map of findings
// had it read a slot and a finding's scattered fields out of megabytes.
type hopCounts struct {
	slots []hopSlot
	hops  []hopCount
	slab  []trace.TraceID // where the hops' examples are kept, MaxExamples each
}

type hopSlot struct {
	tag uint32
	i   int32 // the hop's number + 1; 0: empty
}

// hopCount is a lost hop's counts, as finding.count keeps them.
type hopCount struct {
	k                   hopKey
	occurrences, traces int
	last                trace.TraceID // the trace counted last
	ex                  []trace.TraceID
	group               string // the least group of its stitches
}

// newHopCounts returns a table for about n hops.
func newHopCounts(n int) *hopCounts {
	size := 64
	for size < 2*n {
		size <<= 1
	}
	return &hopCounts{slots: make([]hopSlot, size), hops: make([]hopCount, 0, n)}
}

// count counts hop stitch st, of the hop k.
func (t *hopCounts) count(k hopKey, st *graph.Stitch) {
	c := t.find(k, st)
	if st.Group < c.group {
		c.group = st.Group
	}
	tid := st.Consumer.TraceID
	c.occurrences++
	if c.traces == 0 || c.last != tid {
		c.last = tid
		c.traces++
		c.ex = addExample(c.ex, tid)
	}
}

// find returns k's counts, made from st if k is new.
func (t *hopCounts) find(k hopKey, st *graph.Stitch) *hopCount {
	h := k.hash()
	tag := uint32(h >> 16)
	mask := uint64(len(t.slots) - 1)
	for i := h >> 40 & mask; ; i = (i + 1) & mask {
		sl := &t.slots[i]
		if sl.i == 0 {
			break
		}
		if sl.tag == tag && t.hops[sl.i-1].k == k {
			return &t.hops[sl.i-1]
		}
	}
	if len(t.slab) < analyze.MaxExamples {
		t.slab = make([]trace.TraceID, 256*analyze.MaxExamples)
	}
	t.hops = append(t.hops, hopCount{k: k, group: st.Group, ex: t.slab[:0:analyze.MaxExamples]})
	t.slab = t.slab[analyze.MaxExamples:]
	if 2*len(t.hops) > len(t.slots) {
		t.slots = make([]hopSlot, 2*len(t.slots))
		mask = uint64(len(t.slots) - 1)
		for j := range t.hops {
			t.put(t.hops[j].k.hash(), int32(j), mask)
		}
	} else {
		t.put(h, int32(len(t.hops)-1), mask)
	}
	return &t.hops[len(t.hops)-1]
}

// put puts hop j, whose key's hash is h, in its slot.
func (t *hopCounts) put(h uint64, j int32, mask uint64) {
	i := h >> 40 & mask
	for t.slots[i].i != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = hopSlot{uint32(h >> 16), j + 1}
}
