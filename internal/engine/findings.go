package engine

import (
	"slices"
	"time"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/trace"
)

// findingKey identifies a finding by what its text is made of, so the text
// is made once per finding (by analyze's constructors), not once per
// occurrence.
type findingKey struct {
	rule    analyze.Rule
	a, b, c string
}

// finding is a Finding while it is being counted.
type finding struct {
	analyze.Finding
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

func newCollector() *collector { return &collector{m: map[findingKey]*finding{}} }

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

// count counts one occurrence in trace tid of finding k, made by make the
// first time.
func (c *collector) count(k findingKey, tid trace.TraceID, make func() analyze.Finding) *finding {
	f, isNew := c.get(k)
	if isNew {
		f.Finding = make()
	}
	f.count(tid)
	return f
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

// addExample is analyze.Finding's AddExample, with the usual case — a
// later trace, larger than all kept — taken without a search.
func addExample(ex []trace.TraceID, id trace.TraceID) []trace.TraceID {
	if n := len(ex); n == 0 || graph.CompareTraceIDs(ex[n-1], id) < 0 {
		if n == analyze.MaxExamples {
			return ex
		}
		if ex == nil {
			ex = make([]trace.TraceID, 0, analyze.MaxExamples) // grown once
		}
		return append(ex, id)
	}
	f := analyze.Finding{Examples: ex}
	f.AddExample(id)
	return f.Examples
}

// merge folds o (which counted other traces) into c.
func (c *collector) merge(o *collector) {
	for _, of := range o.order {
		f, isNew := c.get(of.key)
		if isNew {
			*f = *of
			continue
		}
		f.Merge(&of.Finding)
	}
}

func skew(c *collector, from, to, what string, d time.Duration, tid trace.TraceID) {
	f := c.count(findingKey{rule: analyze.RuleClockSkew, a: from, b: to, c: what}, tid, func() analyze.Finding {
		return analyze.ClockSkew(from, to, what)
	})
	f.MaxSkew = max(f.MaxSkew, d)
}

// startsBefore is analyze.StartsBefore: times within a century of 1970 are
// compared in nanoseconds, which costs a fraction of time.Time's
// arithmetic (spans read from a source carry no monotonic reading).
func startsBefore(s, p time.Time, tol time.Duration) bool {
	const near = 100 * 365 * 24 * 3600 // seconds: far from UnixNano's limits
	if ss, ps := s.Unix(), p.Unix(); ss > -near && ss < near && ps > -near && ps < near {
		return p.UnixNano()-s.UnixNano() > int64(tol)
	}
	return analyze.StartsBefore(s, p, tol)
}

func appendUnique(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
