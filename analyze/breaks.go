package analyze

import (
	"time"

	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/trace"
)

// Breaks analyses traces, with g, the graph graph.Build made of the same
// traces, and returns the break points, ranked by affected traces. It is
// the reference: one trace at a time, plain maps, written to be read.
// ktrace's commands find the same breaks faster, in the same walk that
// builds the graph (internal/engine), and a differential test holds the
// two equal. Traces must pass trace.Validate and be distinct by ID.
//
// The rules, per trace that is not incomplete, span by span:
//   - a span that names a parent not in the trace is an orphan;
//   - a trace with more than one root span (or roots in more than one
//     service) has multiple roots;
//   - a root server span of a service that instrumented services call
//     (a call edge through a parent leads to it) is a mid-graph root, and
//     so is a root consumer span with no link that was not stitched, of a
//     topic that instrumented producers write;
//   - a consumer span the graph stitched to its record's producer is a
//     lost hop (producer service → topic → consumer service; its group is
//     the least group name of the hop's stitches);
//   - a produce span, with a destination, of a service that consumes, is
//     lost inside the service when it does not carry on from its input:
//     no consumer or server span above it in the trace, and no link, on it
//     or on an ancestor in its service, to a consumer span (in any trace
//     analysed). A chain of ancestors that leaves the trace (an orphan's)
//     is not judged;
//   - a span that starts more than SkewTolerance before its parent in
//     another service, or a stitched consumer more than SkewTolerance
//     before its producer, is clock skew.
func Breaks(traces []trace.Trace, g *graph.Graph, o Options) Report {
	w := newWhole(g, traces, o)
	c := tally{}
	rep := Report{}
	for i := range traces {
		t := &traces[i]
		if o.Incomplete[t.ID] {
			rep.Incomplete = append(rep.Incomplete, t.ID)
			continue
		}
		rep.Traces++
		rep.Spans += len(t.Spans)
		w.trace(t, c)
	}
	for _, f := range c {
		f.Traces = len(f.traces)
		rep.Findings = append(rep.Findings, f.Finding)
	}
	rep.Sort()
	return rep
}

// whole is what the whole set says, read before the traces one by one.
type whole struct {
	o Options
	// What the graph knows: who is called or produced to by instrumented
	// upstreams, which services consume which topics, which consumer spans
	// were stitched.
	calledByOthers map[string]bool
	producedTopics map[string]bool
	consumes       map[string][]string
	stitched       map[spanKey]graph.Stitch
	// consumerSpans are the consumer spans of the traces analysed.
	consumerSpans map[spanKey]bool
}

func newWhole(g *graph.Graph, traces []trace.Trace, o Options) *whole {
	w := &whole{o: o, calledByOthers: map[string]bool{}, producedTopics: map[string]bool{},
		consumes: map[string][]string{}, stitched: map[spanKey]graph.Stitch{}, consumerSpans: map[spanKey]bool{}}
	for _, e := range g.Edges {
		switch {
		case e.Kind == graph.EdgeCall && e.Relation == graph.RelParent:
			w.calledByOthers[e.To.Name] = true
		case e.Kind == graph.EdgeProduce:
			w.producedTopics[e.To.Name] = true
		case e.Kind == graph.EdgeConsume:
			w.consumes[e.To.Name] = appendUnique(w.consumes[e.To.Name], e.From.Name)
		}
	}
	for _, st := range g.Stitches {
		if st.Kind == graph.StitchHop {
			w.stitched[spanKey{st.Consumer.TraceID, st.Consumer.SpanID}] = st
		}
	}
	for i := range traces {
		if o.Incomplete[traces[i].ID] {
			continue
		}
		for j := range traces[i].Spans {
			s := &traces[i].Spans[j]
			if m, ok := s.Messaging(); ok && m.IsConsumer() {
				w.consumerSpans[spanKey{s.TraceID, s.SpanID}] = true
			}
		}
	}
	return w
}

// tally counts findings by what they are made of.
type tally map[findingKey]*counted

// findingKey names a finding by its rule and the names it is made of.
type findingKey struct {
	rule    Rule
	a, b, c string
}

type counted struct {
	Finding
	traces map[trace.TraceID]bool
}

// count counts one occurrence in trace tid of the finding k, which make
// makes the first time.
func (c tally) count(k findingKey, tid trace.TraceID, make func() Finding) *Finding {
	f := c[k]
	if f == nil {
		f = &counted{Finding: make(), traces: map[trace.TraceID]bool{}}
		c[k] = f
	}
	f.Occurrences++
	f.traces[tid] = true
	f.AddExample(tid)
	return &f.Finding
}

func (w *whole) trace(t *trace.Trace, c tally) {
	byID := map[trace.SpanID]*trace.Span{}
	for i := range t.Spans {
		byID[t.Spans[i].SpanID] = &t.Spans[i]
	}
	var rootSvcs []string
	roots := 0
	for i := range t.Spans {
		s := &t.Spans[i]
		svc := s.Service()
		m, isMsg := s.Messaging()
		pid, hasParent := s.Parent()
		switch p := byID[pid]; {
		case !hasParent:
			roots++
			rootSvcs = appendUnique(rootSvcs, svc)
			w.root(c, s, m, isMsg)
		case p == nil:
			c.count(findingKey{rule: RuleOrphan, a: svc}, t.ID, func() Finding { return Orphan(svc) })
		case p.Service() != svc && StartsBefore(s.Start, p.Start, w.o.SkewTolerance):
			w.skew(c, p.Service(), svc, SkewBeforeParent, p.Start.Sub(s.Start), t.ID)
		}
		if st, ok := w.stitched[spanKey{s.TraceID, s.SpanID}]; ok {
			from := st.Producer.Service
			f := c.count(findingKey{rule: RuleLostHop, a: from, b: st.Topic, c: svc}, t.ID, func() Finding {
				return LostHop(from, st.Topic, svc, st.Group)
			})
			f.Group = min(f.Group, st.Group)
			if st.Lag < -w.o.SkewTolerance {
				w.skew(c, from, svc, SkewBeforeProducer, -st.Lag, t.ID)
			}
		}
		if isMsg && m.IsProducer() && m.Destination != "" && len(w.consumes[svc]) > 0 && !w.continuesInput(byID, s) {
			c.count(findingKey{rule: RuleLostInside, a: svc, b: m.Destination}, t.ID, func() Finding {
				return LostInside(svc, w.consumes[svc], m.Destination)
			})
		}
	}
	if len(rootSvcs) > 1 || roots > 1 {
		f := MultipleRoots(rootSvcs)
		c.count(findingKey{rule: RuleMultipleRoots, a: f.Where}, t.ID, func() Finding { return f })
	}
}

func (w *whole) skew(c tally, from, to, what string, d time.Duration, tid trace.TraceID) {
	f := c.count(findingKey{rule: RuleClockSkew, a: from, b: to, c: what}, tid, func() Finding { return ClockSkew(from, to, what) })
	f.MaxSkew = max(f.MaxSkew, d)
}

// root judges a root span (see Breaks).
func (w *whole) root(c tally, s *trace.Span, m trace.Messaging, isMsg bool) {
	svc := s.Service()
	switch {
	case s.Kind == trace.KindServer && w.calledByOthers[svc]:
		c.count(findingKey{rule: RuleMidGraphRoot, a: svc, b: s.Operation, c: "server"}, s.TraceID, func() Finding {
			return ServerRoot(svc, s.Operation)
		})
	case isMsg && m.IsConsumer() && w.producedTopics[m.Destination] && !s.HasLink():
		if _, ok := w.stitched[spanKey{s.TraceID, s.SpanID}]; ok {
			return // a lost hop
		}
		c.count(findingKey{rule: RuleMidGraphRoot, a: svc, b: m.Destination, c: "consumer"}, s.TraceID, func() Finding {
			return ConsumerRoot(svc, m.Destination)
		})
	}
}

// continuesInput reports whether produce span s carries on from its input
// (see Breaks); a chain that leaves the trace counts as carrying on.
func (w *whole) continuesInput(byID map[trace.SpanID]*trace.Span, s *trace.Span) bool {
	svc := s.Service()
	for cur := s; ; {
		if cur != s && (cur.Kind == trace.KindConsumer || cur.Kind == trace.KindServer) {
			return true
		}
		if cur.Service() == svc {
			for _, r := range cur.Refs {
				if r.Type == trace.RefLink && w.consumerSpans[spanKey{r.TraceID, r.SpanID}] {
					return true
				}
			}
		}
		pid, ok := cur.Parent()
		if !ok {
			return false
		}
		if cur = byID[pid]; cur == nil {
			return true
		}
	}
}
