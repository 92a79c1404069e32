package analyze

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/split"
	"github.com/ktrace-dev/ktrace/trace"
)

// Rule names a kind of break. The values are part of the JSON output.
type Rule string

// The rules, in the order they rank at equal weight.
const (
	RuleLostInside    Rule = "lost-inside"
	RuleLostHop       Rule = "lost-hop"
	RuleMidGraphRoot  Rule = "mid-graph-root"
	RuleOrphan        Rule = "orphan-span"
	RuleMultipleRoots Rule = "multiple-roots"
	RuleClockSkew     Rule = "clock-skew"
)

var ruleOrder = map[Rule]int{RuleLostInside: 0, RuleLostHop: 1, RuleMidGraphRoot: 2, RuleOrphan: 3, RuleMultipleRoots: 4, RuleClockSkew: 5}

// MaxExamples bounds the example trace IDs of a finding.
const MaxExamples = 5

// Finding is one break point, with how often it occurs.
type Finding struct {
	Rule Rule
	// Where says where, for people: "stargazers-join: a, b → c".
	Where string
	// Service is the service where context is lost (the consumer, the
	// processor, the root's or orphan's service, the later of a skewed pair).
	Service string
	// Topic is the topic involved: a hop's topic, a processor's output.
	Topic string
	// From are the upstream parts: a hop's producer services, a processor's
	// input topics, a skewed child's parent service.
	From []string
	// Group is a hop's consumer group.
	Group string
	// Occurrences counts spans (records for messaging rules); Traces counts
	// distinct affected traces.
	Occurrences, Traces int
	// Examples are up to MaxExamples affected trace IDs, sorted.
	Examples []trace.TraceID
	// MaxSkew is the largest skew seen (clock-skew only).
	MaxSkew time.Duration
}

// Report is the result of Breaks.
type Report struct {
	Traces, Spans int
	// Incomplete are traces still arriving; they were not analysed.
	Incomplete []trace.TraceID
	// Findings, most affected traces first.
	Findings []Finding
}

// Options tune Breaks.
type Options struct {
	// SkewTolerance is how far a child may start before its parent (or a
	// consumer before its producer) before it is reported.
	SkewTolerance time.Duration
	// Incomplete traces are left out and listed in the report.
	Incomplete map[trace.TraceID]bool
	// Workers is how many goroutines share the traces; zero means one per
	// CPU (fewer for small sets).
	Workers int
}

type spanKey struct {
	tid trace.TraceID
	sid trace.SpanID
}

// findingKey identifies a finding by what its Where is made of, so the
// text is formatted once per finding, not once per occurrence.
type findingKey struct {
	rule    Rule
	a, b, c string
}

// finding is a Finding while it is being counted.
type finding struct {
	Finding
	key   findingKey
	last  trace.TraceID // the trace counted last: traces arrive one at a time
	first bool          // no trace counted yet
}

// collector counts findings for a run of traces, one trace at a time.
type collector struct {
	m     map[findingKey]*finding
	order []*finding // in the order they were found
	slab  []finding  // where new findings are made, a block at a time
}

// get returns the finding for k, creating an empty one (new is true) that
// the caller fills in.
func (c *collector) get(k findingKey) (f *finding, new bool) {
	if f, ok := c.m[k]; ok {
		return f, false
	}
	f = c.add(k)
	c.m[k] = f
	return f, true
}

// add returns a new finding for k, which must be the only one: k is not
// looked up, nor kept for get to find.
func (c *collector) add(k findingKey) *finding {
	if len(c.slab) == cap(c.slab) {
		c.slab = make([]finding, 0, min(256, 4+2*cap(c.slab)))
	}
	c.slab = append(c.slab, finding{first: true, key: k})
	f := &c.slab[len(c.slab)-1]
	f.Rule = k.rule
	c.order = append(c.order, f)
	return f
}

// count adds one occurrence in trace tid.
func (f *finding) count(tid trace.TraceID) {
	f.Occurrences++
	if f.first || f.last != tid {
		f.first, f.last = false, tid
		f.Traces++
		f.Examples = addExample(f.Examples, tid)
	}
}

// addExample keeps the MaxExamples smallest trace IDs, sorted.
func addExample(ex []trace.TraceID, id trace.TraceID) []trace.TraceID {
	if n := len(ex); n == 0 || less(ex[n-1], id) {
		// The usual case: a later trace, larger than all kept.
		if n == MaxExamples {
			return ex
		}
		if ex == nil {
			ex = make([]trace.TraceID, 0, MaxExamples) // grown once
		}
		return append(ex, id)
	}
	i := sort.Search(len(ex), func(i int) bool { return !less(ex[i], id) })
	if i < len(ex) && ex[i] == id {
		return ex
	}
	if i >= MaxExamples {
		return ex
	}
	if len(ex) < MaxExamples {
		ex = append(ex, trace.TraceID{})
	}
	copy(ex[i+1:], ex[i:])
	ex[i] = id
	return ex
}

// merge folds o (which counted later traces) into c.
func (c *collector) merge(o *collector) {
	for _, of := range o.order {
		f, isNew := c.get(of.key)
		if isNew {
			*f = *of
			continue
		}
		f.Occurrences += of.Occurrences
		f.Traces += of.Traces
		for _, id := range of.Examples {
			f.Examples = addExample(f.Examples, id)
		}
		for _, s := range of.From {
			f.From = appendUnique(f.From, s)
		}
		if of.MaxSkew > f.MaxSkew {
			f.MaxSkew = of.MaxSkew
		}
	}
}

// context is what the whole set says, read before the traces one by one.
type context struct {
	o Options
	// What the graph knows: who is called or produced to by instrumented
	// upstreams, which services consume, which consumers were stitched.
	calledByOthers map[string]bool
	producedTopics map[string]bool
	consumes       map[string][]string
	stitched       map[spanKey]*graph.Stitch // into the graph's Stitches (Breaks; the Analyzer asks its builder)
	// consumerSpans are the link targets that are consumer spans.
	consumerSpans map[spanKey]string
}

// Breaks analyses traces (with g, the graph built from the same traces)
// and returns the break points, ranked by affected traces. Traces must be
// distinct by ID, as a trace.Set gives them. The work is shared among the
// CPUs.
func Breaks(traces []trace.Trace, g *graph.Graph, o Options) Report {
	x := newContext(g, o)
	x.indexStitches(g)
	x.index(traces)

	parts := split.Runs(len(traces), o.Workers, func(lo, hi int) part { return x.run(traces[lo:hi]) })

	rep := Report{}
	all := &collector{m: map[findingKey]*finding{}}
	for _, p := range parts {
		rep.Traces += p.traces
		rep.Spans += p.spans
		rep.Incomplete = append(rep.Incomplete, p.incomplete...)
		all.merge(p.c)
	}
	finishReport(&rep, all)
	return rep
}

// index fills consumerSpans. Only link targets are looked for, so a set
// without links costs one cheap pass.
func (x *context) index(traces []trace.Trace) {
	for i := range traces {
		if x.o.Incomplete[traces[i].ID] {
			continue
		}
		for j := range traces[i].Spans {
			for _, r := range traces[i].Spans[j].Refs {
				if r.Type == trace.RefLink {
					x.consumerSpans[spanKey{r.TraceID, r.SpanID}] = ""
				}
			}
		}
	}
	if len(x.consumerSpans) == 0 {
		return
	}
	for i := range traces {
		if x.o.Incomplete[traces[i].ID] {
			continue
		}
		for j := range traces[i].Spans {
			s := &traces[i].Spans[j]
			k := spanKey{s.TraceID, s.SpanID}
			if _, linked := x.consumerSpans[k]; !linked {
				continue
			}
			if m, ok := s.Messaging(); ok && m.IsConsumer() {
				x.consumerSpans[k] = s.Service()
			}
		}
	}
	for k, svc := range x.consumerSpans {
		if svc == "" {
			delete(x.consumerSpans, k) // not a consumer span
		}
	}
}

// part is one worker's share of the result.
type part struct {
	c             *collector
	traces, spans int
	incomplete    []trace.TraceID
}

// run analyses a run of traces.
func (x *context) run(traces []trace.Trace) part {
	p := part{c: &collector{m: map[findingKey]*finding{}}}
	c := p.c
	var idx trace.Index
	var rootSvcs []string
	for i := range traces {
		t := &traces[i]
		if x.o.Incomplete[t.ID] {
			p.incomplete = append(p.incomplete, t.ID)
			continue
		}
		p.traces++
		p.spans += len(t.Spans)
		idx.Reset(t.Spans)
		rootSvcs = rootSvcs[:0]
		roots := 0
		for j := range t.Spans {
			s := &t.Spans[j]
			svc := s.Service()
			pi := idx.Parent(j)
			m, isMsg := idx.Messaging(j)
			switch {
			case pi == trace.NoParent:
				roots++
				rootSvcs = appendUnique(rootSvcs, svc)
				x.checkRoot(c, s, m, isMsg)
			case pi == trace.MissingParent:
				orphan(c, svc, t.ID)
			default:
				if parent := &t.Spans[pi]; parent.Resource != s.Resource && parent.Service() != svc && startsBefore(s.Start, parent.Start, x.o.SkewTolerance) {
					skew(c, parent.Service(), svc, parent.Start.Sub(s.Start), t.ID, "starts before its parent")
				}
			}
			if !isMsg {
				continue
			}
			if m.IsConsumer() && len(x.stitched) > 0 {
				if st, ok := x.stitched[spanKey{s.TraceID, s.SpanID}]; ok {
					f, isNew := c.get(findingKey{rule: RuleLostHop, a: st.Producer.Service, b: st.Topic, c: svc})
					if isNew {
						f.Service, f.Topic, f.Group = svc, st.Topic, m.ConsumerGroup
						f.Where = fmt.Sprintf("%s → %s → %s", st.Producer.Service, st.Topic, svc)
						f.From = []string{st.Producer.Service}
					}
					f.count(t.ID)
					if st.Lag < -x.o.SkewTolerance {
						skew(c, st.Producer.Service, svc, -st.Lag, t.ID, "consumes before it was produced")
					}
				}
			}
			if m.IsProducer() && len(x.consumes[svc]) > 0 && !x.continuesInput(t.Spans, &idx, j) {
				f, isNew := c.get(findingKey{rule: RuleLostInside, a: svc, b: m.Destination})
				if isNew {
					f.Service, f.Topic, f.From = svc, m.Destination, x.consumes[svc]
					f.Where = fmt.Sprintf("%s: %s → %s", svc, strings.Join(x.consumes[svc], ", "), m.Destination)
				}
				f.count(t.ID)
			}
		}
		if len(rootSvcs) > 1 || roots > 1 {
			multipleRoots(c, rootSvcs, t.ID)
		}
	}
	return p
}

// startsBefore reports whether a span starting at s starts more than tol
// before its parent, starting at p: s.Before(p.Add(-tol)) by the wall
// clock (spans read from a source carry no monotonic reading). Times
// within a century of 1970 are compared in nanoseconds, which costs a
// fraction of time.Time's arithmetic.
func startsBefore(s, p time.Time, tol time.Duration) bool {
	const near = 100 * 365 * 24 * 3600 // seconds: far from UnixNano's limits
	if ss, ps := s.Unix(), p.Unix(); ss > -near && ss < near && ps > -near && ps < near {
		return p.UnixNano()-s.UnixNano() > int64(tol)
	}
	return s.Before(p.Add(-tol))
}

func less(a, b trace.TraceID) bool {
	if a.High != b.High {
		return a.High < b.High
	}
	return a.Low < b.Low
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func skew(c *collector, from, to string, d time.Duration, tid trace.TraceID, what string) {
	f, isNew := c.get(findingKey{rule: RuleClockSkew, a: from, b: to, c: what})
	if isNew {
		f.Service, f.Where, f.From = to, fmt.Sprintf("%s → %s: %s", from, to, what), []string{from}
	}
	f.count(tid)
	if d > f.MaxSkew {
		f.MaxSkew = d
	}
}

// checkRoot reports a consumer or server root span when the graph shows
// that its service (or topic) has instrumented upstreams. A consumer root
// that links to a producer is a healthy link-based hop; one paired by
// stitching is reported as a lost hop instead.
func (x *context) checkRoot(c *collector, s *trace.Span, m trace.Messaging, isMsg bool) {
	svc := s.Service()
	switch {
	case s.Kind == trace.KindServer && x.calledByOthers[svc]:
		f, isNew := c.get(findingKey{rule: RuleMidGraphRoot, a: svc, b: s.Operation, c: "server"})
		if isNew {
			f.Service = svc
			f.Where = fmt.Sprintf("%s: server span %q starts a trace, though instrumented services call %s", svc, s.Operation, svc)
		}
		f.count(s.TraceID)
	case isMsg && m.IsConsumer() && x.producedTopics[m.Destination]:
		if _, ok := x.stitched[spanKey{s.TraceID, s.SpanID}]; ok {
			return
		}
		if s.HasLink() {
			return
		}
		f, isNew := c.get(findingKey{rule: RuleMidGraphRoot, a: svc, b: m.Destination, c: "consumer"})
		if isNew {
			f.Service, f.Topic = svc, m.Destination
			f.Where = fmt.Sprintf("%s → %s: consumer span starts a trace, though instrumented producers write %s", m.Destination, svc, m.Destination)
		}
		f.count(s.TraceID)
	}
}

// continuesInput reports whether a producer span in a service that consumes
// carries on from something: a consumer or server span among its ancestors
// in the trace, or a link (on it or an ancestor of its service) to a
// consumer span.
func (x *context) continuesInput(spans []trace.Span, idx *trace.Index, i int) bool {
	s := &spans[i]
	svc := s.Service()
	for cur, steps := i, 0; steps < len(spans)+1; steps++ {
		c := &spans[cur]
		if cur != i && (c.Kind == trace.KindConsumer || c.Kind == trace.KindServer) {
			return true
		}
		if len(x.consumerSpans) > 0 && c.Service() == svc {
			for _, r := range c.Refs {
				if r.Type == trace.RefLink {
					if _, ok := x.consumerSpans[spanKey{r.TraceID, r.SpanID}]; ok {
						return true
					}
				}
			}
		}
		switch cur = idx.Parent(cur); cur {
		case trace.NoParent:
			return false
		case trace.MissingParent:
			return true // the chain leaves the data (an orphan): not this rule's to judge
		}
	}
	return false
}
