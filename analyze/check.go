package analyze

import (
	"fmt"
	"sort"
	"time"

	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/trace"
)

// Verdict is the outcome of a flow check.
type Verdict string

// Verdicts.
const (
	Pass         Verdict = "pass"
	Fail         Verdict = "fail"
	Inconclusive Verdict = "inconclusive"
)

// HopResult is one hop of a flow.
type HopResult struct {
	From, To string
	Kind     string // produce, consume, call
	Relation Relation
	Line     int
	// Seen counts the hop's downstream spans; Continuous those that continue
	// (with the required relation) from the hop before; Unverifiable those
	// whose other end is not in the data (Why says how), so that whether
	// they continue cannot be told. Continuity is Continuous over the
	// verifiable spans, Seen − Unverifiable. A flow's first hop starts at
	// its entry and is continuous by definition.
	Seen, Continuous int
	Unverifiable     int
	Why              string
	Continuity       float64
	P99, MaxLatency  time.Duration
	Verdict          Verdict
	Reason           string
	// Examples are traces where the hop broke.
	Examples []trace.TraceID
}

// FlowResult is the outcome for one flow.
type FlowResult struct {
	Name string
	Line int
	File string
	Hops []HopResult
	// Reaching counts the verifiable traces that reach the flow's end;
	// Covering those whose every hop back to the entry is continuous
	// (through parents or links). Unverifiable counts the traces reaching
	// the end whose way back meets a hop that cannot be told (and none that
	// is lost): left out of Reaching and of the ratio.
	Reaching, Covering int
	Unverifiable       int
	// Unit is what Reaching counts: "traces" (flows) or "records" (the
	// spec-less check).
	Unit          string
	Continuity    float64
	MinContinuity float64
	MinTraces     int
	Verdict       Verdict
	Reason        string
	// Worst is the index of the hop that broke most, or -1.
	Worst    int
	Examples []trace.TraceID
}

type node struct{ topic, service string }

func (n node) name() string {
	if n.topic != "" {
		return n.topic
	}
	return n.service
}

type checker struct {
	byKey map[spanKey]*trace.Span
}

// Why a hop cannot be told.
const (
	whyLinkOut       = "linked trace not in the data"
	whyLinkUnsampled = "linked trace not sampled (its trace flags say so)"
	whyLinkLost      = "linked trace sampled, yet not in the data"
	whyParentOut     = "parent span not in the data"
)

// outOfData says why span s's way back leaves the data — a link (on it,
// or for produce and call hops on an ancestor) to a span not in the data,
// or an ancestor's parent not in it — or "" when it does not.
func (c *checker) outOfData(kind string, s *trace.Span) string {
	for cur := s; cur != nil; cur = c.parent(cur) {
		for _, r := range cur.Refs {
			if r.Type == trace.RefLink && c.byKey[spanKey{r.TraceID, r.SpanID}] == nil {
				switch r.Sampled {
				case trace.SampledNo:
					return whyLinkUnsampled
				case trace.SampledYes:
					return whyLinkLost
				}
				return whyLinkOut
			}
		}
		if pid, ok := cur.Parent(); ok && c.parent(cur) == nil && pid != 0 {
			return whyParentOut
		}
		if kind == "consume" {
			break
		}
	}
	return ""
}

func newChecker(traces []trace.Trace) *checker {
	c := &checker{byKey: map[spanKey]*trace.Span{}}
	for i := range traces {
		for j := range traces[i].Spans {
			s := &traces[i].Spans[j]
			c.byKey[spanKey{s.TraceID, s.SpanID}] = s
		}
	}
	return c
}

func (c *checker) parent(s *trace.Span) *trace.Span {
	if pid, ok := s.Parent(); ok {
		return c.byKey[spanKey{s.TraceID, pid}]
	}
	return nil
}

// evidence returns the downstream spans of a hop from a to b.
func (c *checker) evidence(a, b node) (kind string, spans []*trace.Span) {
	for _, s := range c.byKey {
		m, isMsg := s.Messaging()
		p := c.parent(s)
		switch {
		case a.service != "" && b.topic != "": // produce
			kind = "produce"
			if isMsg && m.IsProducer() && s.Service() == a.service && m.Destination == b.topic && !sameRecord(p, s, m, true) {
				spans = append(spans, s)
			}
		case a.topic != "" && b.service != "": // consume
			kind = "consume"
			if isMsg && m.IsConsumer() && s.Service() == b.service && m.Destination == a.topic && !sameRecord(p, s, m, false) {
				spans = append(spans, s)
			}
		default: // call
			kind = "call"
			if s.Service() == b.service && p != nil && p.Service() == a.service {
				spans = append(spans, s)
			}
		}
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].TraceID != spans[j].TraceID {
			return graph.CompareTraceIDs(spans[i].TraceID, spans[j].TraceID) < 0
		}
		return spans[i].SpanID < spans[j].SpanID
	})
	return kind, spans
}

// sameRecord reports whether p is the same service's span for the same
// record (a process span under its receive span, a nested publish).
func sameRecord(p, s *trace.Span, m trace.Messaging, producer bool) bool {
	return p != nil && p.Service() == s.Service() && trace.SameHop(p, m, producer)
}

// up finds, for a downstream span of a hop, the upstream span it continues
// (one of prev) and whether it got there through a parent or a link.
func (c *checker) up(kind string, s *trace.Span, prev map[*trace.Span]bool, rel Relation) (*trace.Span, bool) {
	allowParent := rel != RelLink
	allowLink := rel != RelParent
	linked := func(x *trace.Span) *trace.Span {
		for _, r := range x.Refs {
			if r.Type == trace.RefLink {
				if t := c.byKey[spanKey{r.TraceID, r.SpanID}]; t != nil && prev[t] {
					return t
				}
			}
		}
		return nil
	}
	if kind == "consume" {
		if p := c.parent(s); allowParent && p != nil && prev[p] {
			return p, true
		}
		if allowLink {
			if t := linked(s); t != nil {
				return t, true
			}
		}
		return nil, false
	}
	// produce and call: an ancestor, or a link from the span or an ancestor.
	for cur, steps := s, 0; cur != nil && steps < 100000; steps++ {
		if cur != s && allowParent && prev[cur] {
			return cur, true
		}
		if allowLink {
			if t := linked(cur); t != nil {
				return t, true
			}
		}
		cur = c.parent(cur)
	}
	return nil, false
}

func durationP99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[(99*len(ds)+99)/100-1]
}

// Check evaluates every flow of spec against traces.
func Check(traces []trace.Trace, spec *Spec) []FlowResult {
	c := newChecker(traces)
	var out []FlowResult
	for _, f := range spec.Flows {
		out = append(out, c.flow(f, spec.File))
	}
	return out
}

func (c *checker) flow(f Flow, file string) FlowResult {
	res := FlowResult{Name: f.Name, Line: f.Line, File: file, MinContinuity: f.MinContinuity, MinTraces: f.MinTraces, Worst: -1, Unit: "traces"}
	nodes := []node{{service: f.Entry}}
	for _, st := range f.Path {
		nodes = append(nodes, node{topic: st.Topic, service: st.Service})
	}
	evidence := make([][]*trace.Span, len(nodes))
	sets := make([]map[*trace.Span]bool, len(nodes))
	upOf := make([]map[*trace.Span]*trace.Span, len(nodes))
	for i := 1; i < len(nodes); i++ {
		st := f.Path[i-1]
		kind, spans := c.evidence(nodes[i-1], nodes[i])
		evidence[i] = spans
		sets[i] = map[*trace.Span]bool{}
		for _, s := range spans {
			sets[i][s] = true
		}
		h := HopResult{From: nodes[i-1].name(), To: nodes[i].name(), Kind: kind, Relation: st.Relation, Line: st.Line,
			Seen: len(spans), MaxLatency: st.MaxLatency}
		res.Hops = append(res.Hops, h)
	}
	unverifiable := make([]map[*trace.Span]bool, len(nodes))
	for i := 1; i < len(nodes); i++ {
		h := &res.Hops[i-1]
		upOf[i] = map[*trace.Span]*trace.Span{}
		unverifiable[i] = map[*trace.Span]bool{}
		var lat []time.Duration
		for _, s := range evidence[i] {
			if i == 1 {
				h.Continuous++
				continue
			}
			u, ok := c.up(h.Kind, s, sets[i-1], h.Relation)
			if !ok {
				if why := c.outOfData(h.Kind, s); why != "" {
					h.Unverifiable++
					if h.Why == "" {
						h.Why = why // the first, in the spans' order
					}
					unverifiable[i][s] = true
					continue
				}
				if len(h.Examples) < MaxExamples {
					h.Examples = appendTrace(h.Examples, s.TraceID)
				}
				continue
			}
			upOf[i][s] = u
			h.Continuous++
			lat = append(lat, s.Start.Sub(u.Start))
		}
		verifiable := h.Seen - h.Unverifiable
		if verifiable > 0 {
			h.Continuity = float64(h.Continuous) / float64(verifiable)
		}
		h.P99 = durationP99(lat)
		switch {
		case h.Seen == 0:
			h.Verdict, h.Reason = Inconclusive, "never seen"
		case verifiable == 0:
			h.Verdict, h.Reason = Inconclusive, fmt.Sprintf("none verifiable (%s)", unverifiedText(h))
		case h.Continuity < f.MinContinuity:
			h.Verdict, h.Reason = Fail, fmt.Sprintf("continuity %.2f < %.2f (%s)", h.Continuity, f.MinContinuity, continuedText(h))
		case h.MaxLatency > 0 && h.P99 > h.MaxLatency:
			h.Verdict, h.Reason = Fail, fmt.Sprintf("p99 latency %s > max_latency %s", h.P99.Round(time.Microsecond), h.MaxLatency)
		default:
			h.Verdict = Pass
		}
	}

	// Whole-flow continuity: traces reaching the end whose chain reaches
	// the entry; a trace whose chain meets an unverifiable hop (and no lost
	// one) before cannot be told.
	last := len(nodes) - 1
	reaching := map[trace.TraceID]outcome{} // the best of the trace's end spans
	for _, s := range evidence[last] {
		o := continued
		cur := s
		for i := last; i >= 2; i-- {
			u, ok := upOf[i][cur]
			if !ok {
				o = lost
				if unverifiable[i][cur] {
					o = unverified
				}
				break
			}
			cur = u
		}
		if prev, seen := reaching[s.TraceID]; !seen || better(o, prev) {
			reaching[s.TraceID] = o
		}
	}
	for id, o := range reaching {
		switch o {
		case continued:
			res.Reaching++
			res.Covering++
		case unverified:
			res.Unverifiable++
		default:
			res.Reaching++
			if len(res.Examples) < MaxExamples {
				res.Examples = appendTrace(res.Examples, id)
			}
		}
	}
	sort.Slice(res.Examples, func(i, j int) bool { return graph.CompareTraceIDs(res.Examples[i], res.Examples[j]) < 0 })
	if res.Reaching > 0 {
		res.Continuity = float64(res.Covering) / float64(res.Reaching)
	}
	worst := 2.0
	for i, h := range res.Hops {
		if h.Verdict == Fail && h.Continuity < worst {
			worst, res.Worst = h.Continuity, i
		}
	}
	for i, h := range res.Hops {
		if res.Worst < 0 && h.Verdict == Fail {
			res.Worst = i
		}
	}
	switch {
	case res.Reaching < f.MinTraces:
		// Too few traces to judge: never broken, whatever the hops show.
		res.Verdict, res.Reason = Inconclusive, fmt.Sprintf("%d verifiable %s reach the end of the flow; min_traces is %d", res.Reaching, plural(res.Reaching, "trace", "traces"), f.MinTraces)
		if res.Unverifiable > 0 {
			res.Reason += fmt.Sprintf(" (%d more cannot be told: their way back leaves the data)", res.Unverifiable)
		}
		tooFew(res.Hops)
	case res.Worst >= 0 || res.Continuity < f.MinContinuity:
		res.Verdict = Fail
		if res.Worst >= 0 {
			h := res.Hops[res.Worst]
			res.Reason = fmt.Sprintf("hop %s → %s: %s", h.From, h.To, h.Reason)
		} else {
			res.Reason = fmt.Sprintf("continuity %.2f < %.2f", res.Continuity, f.MinContinuity)
		}
	case anyUnseen(res.Hops):
		res.Verdict, res.Reason = Inconclusive, "some hops were never seen"
	default:
		res.Verdict = Pass
	}
	return res
}

// better reports whether outcome a of a trace's end span says more for the
// trace than b: continued beats unverified beats lost.
func better(a, b outcome) bool {
	rank := [...]int{continued: 0, unverified: 1, lost: 2}
	return rank[a] < rank[b]
}

// continuedText says how many of a hop's spans continue: "7 of 9 continue
// the trace", or with unverifiable ones "7 of 7 verifiable continue; 2
// unverifiable: linked trace not in the data".
func continuedText(h *HopResult) string {
	if h.Unverifiable == 0 {
		return fmt.Sprintf("%d of %d continue the trace", h.Continuous, h.Seen)
	}
	return fmt.Sprintf("%d of %d verifiable continue; %s", h.Continuous, h.Seen-h.Unverifiable, unverifiedText(h))
}

func unverifiedText(h *HopResult) string {
	return fmt.Sprintf("%d unverifiable: %s", h.Unverifiable, h.Why)
}

// tooFew marks a flow's failing hops inconclusive: with too few traces a
// low ratio is not evidence of a break.
func tooFew(hops []HopResult) {
	for i := range hops {
		if hops[i].Verdict == Fail {
			hops[i].Verdict = Inconclusive
			hops[i].Reason += " (too few traces to judge)"
		}
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func anyUnseen(hops []HopResult) bool {
	for _, h := range hops {
		if h.Seen == 0 {
			return true
		}
	}
	return false
}

func appendTrace(list []trace.TraceID, id trace.TraceID) []trace.TraceID {
	for _, x := range list {
		if x == id {
			return list
		}
	}
	return append(list, id)
}

// CheckAll is the spec-less check: every messaging hop of the graph — each
// consumer group on a topic, and each output of a service that consumes —
// must continue its trace context (parent or link) in at least
// minContinuity of its records.
func CheckAll(g *graph.Graph, minContinuity float64, minTraces int) FlowResult {
	res := FlowResult{Name: "all messaging hops", MinContinuity: minContinuity, MinTraces: minTraces, Worst: -1, Continuity: 1, Unit: "records"}
	consumes := map[string]bool{}
	for _, e := range g.Edges {
		if e.Kind == graph.EdgeConsume {
			consumes[e.To.Name] = true
		}
	}
	type key struct{ from, to, group string }
	hops := map[key]*HopResult{}
	var order []key
	depth := flowDepth(g)
	depthOf := map[key][2]int{}
	for _, e := range g.Edges {
		if e.Kind != graph.EdgeConsume && !(e.Kind == graph.EdgeProduce && consumes[e.From.Name]) {
			continue
		}
		if e.Kind == graph.EdgeConsume && e.Relation == graph.RelSpan {
			continue // nothing to compare with: no producer, no reference to one
		}
		k := key{e.From.Name, e.To.Name, e.Group}
		h := hops[k]
		if h == nil {
			h = &HopResult{From: e.From.Name, To: e.To.Name, Kind: e.Kind.String(), Relation: RelEither}
			hops[k] = h
			order = append(order, k)
			depthOf[k] = [2]int{depth[e.From], depth[e.To]}
		}
		h.Seen += e.Count
		switch {
		case e.Relation == graph.RelParent || e.Relation == graph.RelLink:
			h.Continuous += e.Count
		case e.Relation == graph.RelUnverified && e.Kind == graph.EdgeConsume:
			// Its producer is not in the data. (An unverified produce edge
			// is a root produce span of a service that consumes: its
			// context was lost, whatever its input was.)
			h.Unverifiable += e.Count
			h.Why = whyLinkOut + " (or parent span not in it)"
		}
		// The hop's p99 is the slowest of its edges' (one per relation).
		h.P99 = max(h.P99, e.P99)
	}
	// In the order data flows: from the sources down, then by name.
	sort.SliceStable(order, func(i, j int) bool {
		di, dj := depthOf[order[i]], depthOf[order[j]]
		if di != dj {
			return di[0] < dj[0] || (di[0] == dj[0] && di[1] < dj[1])
		}
		a, b := order[i], order[j]
		if a.from != b.from {
			return a.from < b.from
		}
		if a.to != b.to {
			return a.to < b.to
		}
		return a.group < b.group
	})
	for _, k := range order {
		h := hops[k]
		verifiable := h.Seen - h.Unverifiable
		h.Verdict = Pass
		switch {
		case verifiable == 0:
			h.Verdict, h.Reason = Inconclusive, fmt.Sprintf("none verifiable (%s)", unverifiedText(h))
		default:
			h.Continuity = float64(h.Continuous) / float64(verifiable)
			if h.Continuity < minContinuity {
				h.Verdict, h.Reason = Fail, fmt.Sprintf("continuity %.2f < %.2f (%s)", h.Continuity, minContinuity, continuedText(h))
			}
		}
		res.Hops = append(res.Hops, *h)
		res.Reaching += verifiable
		res.Covering += h.Continuous
		res.Unverifiable += h.Unverifiable
	}
	if res.Reaching > 0 {
		res.Continuity = float64(res.Covering) / float64(res.Reaching)
	}
	for _, s := range g.Stitches {
		if len(res.Examples) < MaxExamples {
			id := s.Consumer.TraceID
			if s.Kind == graph.StitchPassThrough {
				id = s.Producer.TraceID
			}
			res.Examples = appendTrace(res.Examples, id)
		}
	}
	worst := 2.0
	for i, h := range res.Hops {
		if h.Verdict == Fail && h.Continuity < worst {
			worst, res.Worst = h.Continuity, i
		}
	}
	switch {
	case len(res.Hops) == 0 || res.Reaching < minTraces:
		res.Verdict, res.Reason = Inconclusive, fmt.Sprintf("%d verifiable messaging %s seen; need %d", res.Reaching, plural(res.Reaching, "record", "records"), minTraces)
		if res.Unverifiable > 0 {
			res.Reason += fmt.Sprintf(" (%d more cannot be told: their producer is not in the data)", res.Unverifiable)
		}
		tooFew(res.Hops)
		res.Worst = -1
	case res.Worst >= 0:
		h := res.Hops[res.Worst]
		res.Verdict, res.Reason = Fail, fmt.Sprintf("hop %s → %s: %s", h.From, h.To, h.Reason)
	default:
		res.Verdict = Pass
	}
	return res
}

// flowDepth is each node's distance from the graph's sources (nodes no
// edge leads to), so that hops can be listed in the order data flows.
func flowDepth(g *graph.Graph) map[*graph.Node]int {
	depth := map[*graph.Node]int{}
	in := map[*graph.Node]bool{}
	for _, e := range g.Edges {
		in[e.To] = true
	}
	var queue []*graph.Node
	for _, n := range g.Nodes {
		if !in[n] {
			depth[n] = 0
			queue = append(queue, n)
		}
	}
	out := map[*graph.Node][]*graph.Node{}
	for _, e := range g.Edges {
		out[e.From] = append(out[e.From], e.To)
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, m := range out[n] {
			if _, seen := depth[m]; !seen {
				depth[m] = depth[n] + 1
				queue = append(queue, m)
			}
		}
	}
	for _, n := range g.Nodes { // cycles with no source: after the rest
		if _, seen := depth[n]; !seen {
			depth[n] = len(g.Nodes)
		}
	}
	return depth
}
