package analyze

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/chunk"
	"github.com/ktrace-dev/ktrace/internal/split"
	"github.com/ktrace-dev/ktrace/internal/straddr"
	"github.com/ktrace-dev/ktrace/trace"
)

// Analyzer builds the service graph and finds the breaks in one pass,
// reading each span once and keeping no traces: feed it traces one at a
// time (from a stream, say) and call Finish. It gives what graph.Build
// followed by Breaks gives.
//
// Breaks needs the finished graph (who is called by others, which topics
// have producers, which consumers were stitched), which one pass cannot
// have. So the Analyzer counts what needs nothing global at once (orphans,
// skew, multiple roots), counts the rest as candidates keyed the way their
// findings are (a server root per service and operation, a processor's
// unexplained produce span per service and topic), keeps the few that must
// be judged one by one (consumer roots, produce spans whose only claim to
// continue their input is a link), and judges them all in Finish. Lost hops
// come from the graph's stitches.
type Analyzer struct {
	o   Options
	b   *graph.Builder
	idx trace.Index

	found       *collector // orphans, skew, multiple roots
	serverRoots *collector // server root spans, kept if others call the service
	rootCache   [1 << rootCacheBits]rootSlot
	inside      *collector // unexplained produce spans, kept if the service consumes
	consRoots   []consumerRoot
	linked      []linkedProducer
	// consumers are the consumer spans, for judging linked produce spans;
	// merged holds merged analyzers' lists as they are (order does not
	// matter: they are looked through as a set).
	consumers chunk.List[spanKey]
	merged    []chunk.List[spanKey]

	traces, spans int
	incomplete    []trace.TraceID

	rootSvcs []string
	links    []spanKey
	pending  []linkedProducer
}

const rootCacheBits = 6

// rootKey is a server root's service and operation by their addresses.
type rootKey struct{ svc, op straddr.Addr }

// hash mixes the two addresses (the operation alone is shared by many
// services' roots).
func (k rootKey) hash() uint64 {
	return (k.svc.Word()*0xC2B2AE3D27D4EB4F ^ k.op.Word()) * 0x9E3779B97F4A7C15
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

// NewAnalyzer returns an empty analyzer.
func NewAnalyzer(o Options) *Analyzer {
	return &Analyzer{o: o, b: graph.NewBuilder(), found: newCollector(), serverRoots: newCollector(), inside: newCollector()}
}

func newCollector() *collector { return &collector{m: map[findingKey]*finding{}} }

// Add folds one trace in. The analyzer does not keep t. Traces must be
// distinct by ID.
func (a *Analyzer) Add(t *trace.Trace) {
	a.idx.Reset(t.Spans)
	if a.o.Incomplete[t.ID] {
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
		case pi == trace.NoParent:
			roots++
			a.rootSvcs = appendUnique(a.rootSvcs, svc)
			a.root(s, svc, m, pending)
		case pi == trace.MissingParent:
			orphan(a.found, svc, t.ID)
		default:
			if parent := &t.Spans[pi]; in.Cross && startsBefore(s.Start, parent.Start, a.o.SkewTolerance) {
				skew(a.found, parent.Service(), svc, parent.Start.Sub(s.Start), t.ID, "starts before its parent")
			}
		}
		if m == nil {
			continue
		}
		if m.IsConsumer() {
			a.consumers.Add(spanKey{s.TraceID, s.SpanID})
		}
		if m.IsProducer() {
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
		multipleRoots(a.found, a.rootSvcs, t.ID)
	}
}

// root counts a root span as a candidate mid-graph root; pending is what
// the builder's AddSpan returned for it.
func (a *Analyzer) root(s *trace.Span, svc string, m *trace.Messaging, pending int) {
	if s.Kind == trace.KindServer {
		// Most traces start at a server span: its finding is found by the
		// names' addresses before their bytes are hashed.
		k := rootKey{straddr.Of(svc), straddr.Of(s.Operation)}
		sl := &a.rootCache[k.hash()>>(64-rootCacheBits)]
		if sl.f == nil || sl.k != k {
			f, isNew := a.serverRoots.get(findingKey{rule: RuleMidGraphRoot, a: svc, b: s.Operation, c: "server"})
			if isNew {
				f.Service = svc
				f.Where = fmt.Sprintf("%s: server span %q starts a trace, though instrumented services call %s", svc, s.Operation, svc)
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
func (a *Analyzer) producer(spans []trace.Span, j int, svc, topic string) {
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
		if p == trace.NoParent {
			break
		}
		if p == trace.MissingParent {
			return // the chain leaves the data (an orphan): not this rule's to judge
		}
		cur = p
	}
	k := findingKey{rule: RuleLostInside, a: svc, b: topic}
	if len(a.links) == 0 {
		f, _ := a.inside.get(k)
		f.count(spans[j].TraceID)
		return
	}
	a.pending = append(a.pending, linkedProducer{tid: spans[j].TraceID, key: k, links: append([]spanKey(nil), a.links...)})
}

func orphan(c *collector, svc string, tid trace.TraceID) {
	f, isNew := c.get(findingKey{rule: RuleOrphan, a: svc})
	if isNew {
		f.Service, f.Where = svc, svc+": parent span not in the trace"
	}
	f.count(tid)
}

func multipleRoots(c *collector, rootSvcs []string, tid trace.TraceID) {
	sort.Strings(rootSvcs)
	where := "roots in " + strings.Join(rootSvcs, ", ")
	f, isNew := c.get(findingKey{rule: RuleMultipleRoots, a: where})
	if isNew {
		f.Service, f.Where = rootSvcs[0], where
	}
	f.count(tid)
}

// Merge folds o, which was fed the traces that come after a's, into a.
// o is spent afterwards.
func (a *Analyzer) Merge(o *Analyzer) {
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
	a.merged = append(append(a.merged, o.consumers), o.merged...)
	a.traces += o.traces
	a.spans += o.spans
	a.incomplete = append(a.incomplete, o.incomplete...)
	*o = Analyzer{}
}

// Finish returns the graph and the report. The analyzer is spent afterwards.
func (a *Analyzer) Finish() (*graph.Graph, Report) {
	var rep Report
	// The report is judged while the graph's latency percentiles are
	// computed, which it does not read.
	g := a.b.GraphWith(func(g *graph.Graph) { rep = a.judge(g) })
	return g, rep
}

// judge finds the breaks in the finished graph g.
func (a *Analyzer) judge(g *graph.Graph) Report {
	x := newContext(g, a.o)
	out := a.found

	// A hop's stitches share their names' strings (the graph gives a hop
	// stitch its nodes' names, one string a node), so its counts are found
	// by the strings' addresses, and its finding is made once they are
	// counted.
	hops := newHopCounts(len(g.Stitches) / 4)
	for i := range g.Stitches {
		st := &g.Stitches[i]
		if st.Kind != graph.StitchHop || a.o.Incomplete[st.Consumer.TraceID] {
			continue
		}
		hops.count(st)
		if st.Lag < -a.o.SkewTolerance {
			skew(out, st.Producer.Service, st.Consumer.Service, -st.Lag, st.Consumer.TraceID, "consumes before it was produced")
		}
	}
	for i := range hops.hops {
		c := &hops.hops[i]
		from, topic, svc := c.st.Producer.Service, c.st.Topic, c.st.Consumer.Service
		f := out.add(findingKey{rule: RuleLostHop, a: from, b: topic, c: svc})
		f.Service, f.Topic, f.Group = svc, topic, c.st.Group
		f.Where = from + " → " + topic + " → " + svc
		f.From = []string{from}
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
		f, isNew := keep.get(findingKey{rule: RuleMidGraphRoot, a: r.svc, b: r.topic, c: "consumer"})
		if isNew {
			f.Service, f.Topic = r.svc, r.topic
			f.Where = fmt.Sprintf("%s → %s: consumer span starts a trace, though instrumented producers write %s", r.topic, r.svc, r.topic)
		}
		f.count(r.span.tid)
	}
	out.merge(keep)

	inside := newCollector()
	for _, f := range a.inside.order {
		if len(x.consumes[f.key.a]) > 0 {
			inside.m[f.key], inside.order = f, append(inside.order, f)
		}
	}
	a.judgeLinked(x, inside)
	for _, f := range inside.order {
		k := f.key
		f.Service, f.Topic, f.From = k.a, k.b, x.consumes[k.a]
		f.Where = fmt.Sprintf("%s: %s → %s", k.a, strings.Join(x.consumes[k.a], ", "), k.b)
	}
	out.merge(inside)

	rep := Report{Traces: a.traces, Spans: a.spans, Incomplete: a.incomplete}
	finishReport(&rep, out)
	return rep
}

// judgeLinked counts the linked produce spans none of whose links points at
// a consumer span, in services that consume.
func (a *Analyzer) judgeLinked(x *context, inside *collector) {
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
	for _, l := range append([]chunk.List[spanKey]{a.consumers}, a.merged...) {
		for j := 0; j < l.Len(); j++ {
			k := *l.At(j)
			if _, ok := want[k]; ok {
				want[k] = true
			}
		}
	}
	for _, lp := range a.linked {
		if len(x.consumes[lp.key.a]) == 0 {
			continue
		}
		continues := false
		for _, k := range lp.links {
			if want[k] {
				continues = true
				break
			}
		}
		if continues {
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

// newContext reads what the finished graph knows.
func newContext(g *graph.Graph, o Options) *context {
	x := &context{o: o, calledByOthers: map[string]bool{}, producedTopics: map[string]bool{},
		consumes: map[string][]string{}, consumerSpans: map[spanKey]string{}}
	for _, e := range g.Edges {
		switch {
		case e.Kind == graph.EdgeCall && e.Relation == graph.RelParent:
			x.calledByOthers[e.To.Name] = true
		case e.Kind == graph.EdgeProduce:
			x.producedTopics[e.To.Name] = true
		case e.Kind == graph.EdgeConsume:
			x.consumes[e.To.Name] = appendUnique(x.consumes[e.To.Name], e.From.Name)
		}
	}
	return x
}

// indexStitches fills stitched, for judges that have the consumer spans
// and not their numbers among the builder's pending consumers.
func (x *context) indexStitches(g *graph.Graph) {
	x.stitched = make(map[spanKey]*graph.Stitch, len(g.Stitches))
	for i := range g.Stitches {
		if s := &g.Stitches[i]; s.Kind == graph.StitchHop {
			x.stitched[spanKey{s.Consumer.TraceID, s.Consumer.SpanID}] = s
		}
	}
}

// finishReport sorts the findings and incomplete traces into rep.
func finishReport(rep *Report, c *collector) {
	// Sorted by keys of their own, then copied: a Finding is large to
	// move, and comparing through pointers to thousands of findings read
	// them at random (and looked a rule's rank up in a map each time). The
	// keys hold no pointers, so that moving them is a plain copy. Most
	// findings tie on traces and rule, so a key also holds the first eight
	// bytes of Where as a number: the texts themselves are compared only
	// when those are the same.
	type sortKey struct {
		traces uint64 // ^Traces: most traces first
		head   uint64
		rule   int32
		i      int32 // in c.order
	}
	ks := make([]sortKey, len(c.order))
	for i, f := range c.order {
		sort.Strings(f.From)
		ks[i] = sortKey{^uint64(f.Traces), head(f.Where), int32(ruleOrder[f.Rule]), int32(i)}
	}
	slices.SortFunc(ks, func(a, b sortKey) int {
		switch {
		case a.traces != b.traces:
			return cmp.Compare(a.traces, b.traces)
		case a.rule != b.rule:
			return cmp.Compare(a.rule, b.rule)
		case a.head != b.head:
			return cmp.Compare(a.head, b.head)
		}
		return strings.Compare(c.order[a.i].Where, c.order[b.i].Where)
	})
	if len(ks) > 0 {
		rep.Findings = make([]Finding, len(ks))
		for i, k := range ks {
			rep.Findings[i] = c.order[k.i].Finding
		}
	}
	sort.Slice(rep.Incomplete, func(i, j int) bool { return less(rep.Incomplete[i], rep.Incomplete[j]) })
}

// head is the first eight bytes of s as a big-endian number, zeros past
// its end: strings with different heads compare as their heads do.
func head(s string) uint64 {
	var b [8]byte
	copy(b[:], s)
	return binary.BigEndian.Uint64(b[:])
}

// Run builds the graph of traces and finds their breaks in one pass, the
// traces shared among the CPUs (Options.Workers) in runs, a CPU done early
// taking half of what is left of another's; the analyzers are merged in
// the traces' order.
func Run(traces []trace.Trace, o Options) (*graph.Graph, Report) {
	as := split.Balanced(len(traces), o.Workers, 0, func(lo int, take func(int) bool) *Analyzer {
		a := NewAnalyzer(o)
		for i := lo; take(i); i++ {
			a.Add(&traces[i])
		}
		return a
	})
	for _, o := range as[1:] {
		as[0].Merge(o)
	}
	return as[0].Finish()
}

// hopKey is a lost hop by its names' addresses: producer service, topic,
// consumer service.
type hopKey struct{ from, topic, to straddr.Addr }

func (k hopKey) hash() uint64 {
	a := k.from.Word() * 0xC2B2AE3D27D4EB4F
	b := k.topic.Word() * 0x165667B19E3779F9
	return (a ^ b ^ k.to.Word()) * 0x9E3779B97F4A7C15
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
	st                  *graph.Stitch // the hop's first stitch, for its names and group
}

// newHopCounts returns a table for about n hops.
func newHopCounts(n int) *hopCounts {
	size := 64
	for size < 2*n {
		size <<= 1
	}
	return &hopCounts{slots: make([]hopSlot, size), hops: make([]hopCount, 0, n)}
}

// count counts hop stitch st.
func (t *hopCounts) count(st *graph.Stitch) {
	k := hopKey{straddr.Of(st.Producer.Service), straddr.Of(st.Topic), straddr.Of(st.Consumer.Service)}
	c := t.find(k, st)
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
	if len(t.slab) < MaxExamples {
		t.slab = make([]trace.TraceID, 256*MaxExamples)
	}
	t.hops = append(t.hops, hopCount{k: k, st: st, ex: t.slab[:0:MaxExamples]})
	t.slab = t.slab[MaxExamples:]
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
