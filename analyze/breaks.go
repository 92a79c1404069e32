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
//
// What cannot be told is listed apart (Report.Unverifiable), never as a
// break: "in the data" means among the traces given, incomplete ones too.
//   - A consumer span (not under a consumer span of its topic in its
//     service) whose parent is not a producer of its topic, that no link
//     ties to a producer of its topic in the data and the graph did not
//     stitch, and that links to a trace not in the data (and names no
//     parent missing from its trace: that is an orphan), is an unverified
//     hop (topic → consumer service).
//   - A produce span that would be lost inside its service but carries,
//     on it or an ancestor in its service, a link to a trace not in the
//     data is an unverified output instead.
func Breaks(traces []trace.Trace, g *graph.Graph, o Options) Report {
	w := newWhole(g, traces, o)
	c := tally{}
	u := tally{}
	rep := Report{}
	for i := range traces {
		t := &traces[i]
		if o.Incomplete[t.ID] {
			rep.Incomplete = append(rep.Incomplete, t.ID)
			continue
		}
		rep.Traces++
		rep.Spans += len(t.Spans)
		w.trace(t, c, u)
	}
	for _, f := range c {
		f.Traces = len(f.traces)
		rep.Findings = append(rep.Findings, f.Finding)
	}
	for _, f := range u {
		f.Traces = len(f.traces)
		rep.Unverifiable = append(rep.Unverifiable, f.Finding)
	}
	rep.Coverage = EstimateCoverage(g)
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
	// present are the traces in the data; producers the produce spans in
	// it, with their topics.
	present   map[trace.TraceID]bool
	producers map[spanKey]string
}

func newWhole(g *graph.Graph, traces []trace.Trace, o Options) *whole {
	w := &whole{o: o, calledByOthers: map[string]bool{}, producedTopics: map[string]bool{},
		consumes: map[string][]string{}, stitched: map[spanKey]graph.Stitch{}, consumerSpans: map[spanKey]bool{},
		present: map[trace.TraceID]bool{}, producers: map[spanKey]string{}}
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
		w.present[traces[i].ID] = true
		byID := map[trace.SpanID]*trace.Span{}
		for j := range traces[i].Spans {
			byID[traces[i].Spans[j].SpanID] = &traces[i].Spans[j]
		}
		for j := range traces[i].Spans {
			s := &traces[i].Spans[j]
			m, ok := s.Messaging()
			switch {
			case ok && m.IsConsumer() && !o.Incomplete[traces[i].ID]:
				w.consumerSpans[spanKey{s.TraceID, s.SpanID}] = true
			case ok && m.IsProducer() && m.Destination != "":
				// As the graph pairs them: not a publish span nested in
				// another of the same record.
				pid, _ := s.Parent()
				if p := byID[pid]; p == nil || p.Service() != s.Service() || !trace.SameHop(p, m, true) {
					w.producers[spanKey{s.TraceID, s.SpanID}] = m.Destination
				}
			}
		}
	}
	return w
}

// absentLink reports whether any of refs is a link to a trace not in the
// data.
func (w *whole) absentLink(refs []trace.Ref) bool {
	for _, r := range refs {
		if r.Type == trace.RefLink && !w.present[r.TraceID] {
			return true
		}
	}
	return false
}

// unverifiedHop reports whether consumer span s, of messaging view m and
// parent p (nil: none in its trace), is an unverified hop (see Breaks).
func (w *whole) unverifiedHop(s, p *trace.Span, m trace.Messaging) bool {
	_, hasParent := s.Parent()
	switch {
	case m.Destination == "" || hasParent && p == nil:
		return false
	case p != nil && p.Service() == s.Service() && trace.SameHop(p, m, false):
		return false // a process span under its receive span
	case trace.SameHop(p, m, true):
		return false // its producer is its parent
	}
	if _, ok := w.stitched[spanKey{s.TraceID, s.SpanID}]; ok {
		return false
	}
	for _, r := range s.Refs {
		if r.Type == trace.RefLink && w.producers[spanKey{r.TraceID, r.SpanID}] == m.Destination {
			return false
		}
	}
	return w.absentLink(s.Refs)
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

func (w *whole) trace(t *trace.Trace, c, u tally) {
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
		if isMsg && m.IsConsumer() && w.unverifiedHop(s, byID[pid], m) {
			f := u.count(findingKey{rule: RuleUnverifiedHop, a: m.Destination, b: svc}, t.ID, func() Finding {
				return UnverifiedHop(m.Destination, svc, m.ConsumerGroup)
			})
			f.Group = min(f.Group, m.ConsumerGroup)
		}
		if isMsg && m.IsProducer() && m.Destination != "" && len(w.consumes[svc]) > 0 {
			switch w.carriesOn(byID, s) {
			case lost:
				c.count(findingKey{rule: RuleLostInside, a: svc, b: m.Destination}, t.ID, func() Finding {
					return LostInside(svc, w.consumes[svc], m.Destination)
				})
			case unverified:
				u.count(findingKey{rule: RuleUnverifiedOutput, a: svc, b: m.Destination}, t.ID, func() Finding {
					return UnverifiedOutput(svc, w.consumes[svc], m.Destination)
				})
			}
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

// outcome is a hop's judgement: its downstream span continued the
// context, lost it, or cannot be told.
type outcome int

const (
	continued outcome = iota
	lost
	unverified
)

// carriesOn judges produce span s (see Breaks): a chain of ancestors that
// leaves the trace counts as carrying on (it is not this rule's to judge).
func (w *whole) carriesOn(byID map[trace.SpanID]*trace.Span, s *trace.Span) outcome {
	svc := s.Service()
	absent := false
	for cur := s; ; {
		if cur != s && (cur.Kind == trace.KindConsumer || cur.Kind == trace.KindServer) {
			return continued
		}
		if cur.Service() == svc {
			for _, r := range cur.Refs {
				if r.Type == trace.RefLink && w.consumerSpans[spanKey{r.TraceID, r.SpanID}] {
					return continued
				}
			}
			absent = absent || w.absentLink(cur.Refs)
		}
		pid, ok := cur.Parent()
		if !ok {
			break
		}
		if cur = byID[pid]; cur == nil {
			return continued
		}
	}
	if absent {
		return unverified
	}
	return lost
}
