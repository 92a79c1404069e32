package analyze

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ktrace-dev/ktrace/graph"
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

	traces map[trace.TraceID]struct{}
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
}

type spanKey struct {
	tid trace.TraceID
	sid trace.SpanID
}

type findingKey struct {
	rule  Rule
	where string
}

type collector struct {
	m map[findingKey]*Finding
}

func (c *collector) add(f Finding, tid trace.TraceID) *Finding {
	k := findingKey{f.Rule, f.Where}
	have, ok := c.m[k]
	if !ok {
		f.traces = map[trace.TraceID]struct{}{}
		have = &f
		c.m[k] = have
	}
	have.Occurrences++
	have.traces[tid] = struct{}{}
	return have
}

// Breaks analyses traces (with g, the graph built from the same traces)
// and returns the break points, ranked by affected traces.
func Breaks(traces []trace.Trace, g *graph.Graph, o Options) Report {
	rep := Report{}
	c := &collector{m: map[findingKey]*Finding{}}

	// What the graph knows: who is called or produced to by instrumented
	// upstreams, which services consume, which consumers were stitched.
	calledByOthers := map[string]bool{}
	producedTopics := map[string]bool{}
	consumes := map[string][]string{}
	for _, e := range g.Edges {
		switch {
		case e.Kind == graph.EdgeCall && e.Relation == graph.RelParent:
			calledByOthers[e.To.Name] = true
		case e.Kind == graph.EdgeProduce:
			producedTopics[e.To.Name] = true
		case e.Kind == graph.EdgeConsume:
			consumes[e.To.Name] = appendUnique(consumes[e.To.Name], e.From.Name)
		}
	}
	stitched := map[spanKey]graph.Stitch{}
	for _, s := range g.Stitches {
		if s.Kind == graph.StitchHop {
			stitched[spanKey{s.Consumer.TraceID, s.Consumer.SpanID}] = s
		}
	}

	// Global indexes: consumer spans (link targets) and producer start times.
	consumerSpans := map[spanKey]string{}
	producerStart := map[spanKey]time.Time{}
	for i := range traces {
		t := &traces[i]
		if o.Incomplete[t.ID] {
			continue
		}
		for j := range t.Spans {
			s := &t.Spans[j]
			if m, ok := s.Messaging(); ok {
				if m.IsConsumer() {
					consumerSpans[spanKey{s.TraceID, s.SpanID}] = s.Service()
				} else if m.IsProducer() {
					producerStart[spanKey{s.TraceID, s.SpanID}] = s.Start
				}
			}
		}
	}

	idx := map[trace.SpanID]*trace.Span{}
	for i := range traces {
		t := &traces[i]
		if o.Incomplete[t.ID] {
			rep.Incomplete = append(rep.Incomplete, t.ID)
			continue
		}
		rep.Traces++
		rep.Spans += len(t.Spans)
		clear(idx)
		for j := range t.Spans {
			idx[t.Spans[j].SpanID] = &t.Spans[j]
		}
		var rootSvcs []string
		for j := range t.Spans {
			s := &t.Spans[j]
			svc := s.Service()
			pid, hasParent := s.Parent()
			parent := idx[pid]
			m, isMsg := s.Messaging()
			switch {
			case !hasParent:
				rootSvcs = appendUnique(rootSvcs, svc)
				checkRoot(c, s, m, isMsg, calledByOthers, producedTopics, stitched)
			case parent == nil:
				c.add(Finding{Rule: RuleOrphan, Service: svc, Where: svc + ": parent span not in the trace"}, t.ID)
			case parent.Service() != svc && s.Start.Before(parent.Start.Add(-o.SkewTolerance)):
				skew(c, parent.Service(), svc, parent.Start.Sub(s.Start), t.ID, "starts before its parent")
			}
			if isMsg && m.IsConsumer() {
				if st, ok := stitched[spanKey{s.TraceID, s.SpanID}]; ok {
					f := c.add(Finding{Rule: RuleLostHop, Service: svc, Topic: st.Topic, Group: m.ConsumerGroup,
						Where: fmt.Sprintf("%s → %s → %s", st.Producer.Service, st.Topic, svc)}, t.ID)
					f.From = appendUnique(f.From, st.Producer.Service)
					if ps, ok := producerStart[spanKey{st.Producer.TraceID, st.Producer.SpanID}]; ok && s.Start.Before(ps.Add(-o.SkewTolerance)) {
						skew(c, st.Producer.Service, svc, ps.Sub(s.Start), t.ID, "consumes before it was produced")
					}
				}
			}
			if isMsg && m.IsProducer() && len(consumes[svc]) > 0 && !continuesInput(s, idx, consumerSpans) {
				f := c.add(Finding{Rule: RuleLostInside, Service: svc, Topic: m.Destination,
					Where: fmt.Sprintf("%s: %s → %s", svc, strings.Join(consumes[svc], ", "), m.Destination)}, t.ID)
				f.From = consumes[svc]
			}
		}
		if len(rootSvcs) > 1 || countRoots(t) > 1 {
			sort.Strings(rootSvcs)
			c.add(Finding{Rule: RuleMultipleRoots, Service: rootSvcs[0], Where: "roots in " + strings.Join(rootSvcs, ", ")}, t.ID)
		}
	}

	for _, f := range c.m {
		f.Traces = len(f.traces)
		for id := range f.traces {
			f.Examples = append(f.Examples, id)
		}
		sort.Slice(f.Examples, func(i, j int) bool { return less(f.Examples[i], f.Examples[j]) })
		if len(f.Examples) > MaxExamples {
			f.Examples = f.Examples[:MaxExamples]
		}
		sort.Strings(f.From)
		f.traces = nil
		rep.Findings = append(rep.Findings, *f)
	}
	sort.Slice(rep.Findings, func(i, j int) bool {
		a, b := rep.Findings[i], rep.Findings[j]
		switch {
		case a.Traces != b.Traces:
			return a.Traces > b.Traces
		case a.Rule != b.Rule:
			return ruleOrder[a.Rule] < ruleOrder[b.Rule]
		}
		return a.Where < b.Where
	})
	sort.Slice(rep.Incomplete, func(i, j int) bool { return less(rep.Incomplete[i], rep.Incomplete[j]) })
	return rep
}

func less(a, b trace.TraceID) bool {
	if a.High != b.High {
		return a.High < b.High
	}
	return a.Low < b.Low
}

func countRoots(t *trace.Trace) int {
	n := 0
	for i := range t.Spans {
		if _, ok := t.Spans[i].Parent(); !ok {
			n++
		}
	}
	return n
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
	f := c.add(Finding{Rule: RuleClockSkew, Service: to, Where: fmt.Sprintf("%s → %s: %s", from, to, what)}, tid)
	f.From = appendUnique(f.From, from)
	if d > f.MaxSkew {
		f.MaxSkew = d
	}
}

// checkRoot reports a consumer or server root span when the graph shows
// that its service (or topic) has instrumented upstreams. A consumer root
// that links to a producer is a healthy link-based hop; one paired by
// stitching is reported as a lost hop instead.
func checkRoot(c *collector, s *trace.Span, m trace.Messaging, isMsg bool, calledByOthers, producedTopics map[string]bool, stitched map[spanKey]graph.Stitch) {
	svc := s.Service()
	switch {
	case s.Kind == trace.KindServer && calledByOthers[svc]:
		c.add(Finding{Rule: RuleMidGraphRoot, Service: svc,
			Where: fmt.Sprintf("%s: server span %q starts a trace, though instrumented services call %s", svc, s.Operation, svc)}, s.TraceID)
	case isMsg && m.IsConsumer() && producedTopics[m.Destination]:
		if _, ok := stitched[spanKey{s.TraceID, s.SpanID}]; ok {
			return
		}
		for _, r := range s.Refs {
			if r.Type == trace.RefLink {
				return
			}
		}
		c.add(Finding{Rule: RuleMidGraphRoot, Service: svc, Topic: m.Destination,
			Where: fmt.Sprintf("%s → %s: consumer span starts a trace, though instrumented producers write %s", m.Destination, svc, m.Destination)}, s.TraceID)
	}
}

// continuesInput reports whether a producer span in a service that consumes
// carries on from something: a consumer or server span among its ancestors
// in the trace, or a link (on it or an ancestor of its service) to a
// consumer span.
func continuesInput(s *trace.Span, idx map[trace.SpanID]*trace.Span, consumerSpans map[spanKey]string) bool {
	svc := s.Service()
	for cur, steps := s, 0; cur != nil && steps < len(idx)+1; steps++ {
		if cur != s && (cur.Kind == trace.KindConsumer || cur.Kind == trace.KindServer) {
			return true
		}
		if cur.Service() == svc {
			for _, r := range cur.Refs {
				if r.Type == trace.RefLink {
					if _, ok := consumerSpans[spanKey{r.TraceID, r.SpanID}]; ok {
						return true
					}
				}
			}
		}
		pid, ok := cur.Parent()
		if !ok {
			return false
		}
		cur = idx[pid]
		if cur == nil {
			return true // the chain leaves the data (an orphan): not this rule's to judge
		}
	}
	return false
}
