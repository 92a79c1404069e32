package analyze

import (
	"cmp"
	"fmt"
	"slices"
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

// The rules of what cannot be verified: the other end of a hop is not in
// the data (sampling leaves it out), so whether context continued cannot
// be told. They are not breaks: Report.Unverifiable lists them.
const (
	// RuleUnverifiedHop: a consumer no producer pairs with, that links to a
	// trace not in the data.
	RuleUnverifiedHop Rule = "unverified-hop"
	// RuleUnverifiedOutput: a produce span of a service that consumes, whose
	// only claim to carry on from its input is a link to a trace not in
	// the data.
	RuleUnverifiedOutput Rule = "unverified-output"
)

// RuleRank is the rule's place in the order above.
func RuleRank(r Rule) int {
	switch r {
	case RuleLostInside:
		return 0
	case RuleLostHop:
		return 1
	case RuleMidGraphRoot:
		return 2
	case RuleOrphan:
		return 3
	case RuleMultipleRoots:
		return 4
	case RuleClockSkew:
		return 5
	case RuleUnverifiedHop:
		return 6
	}
	return 7
}

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
	// Unverifiable are the hops whose other end is not in the data
	// (RuleUnverifiedHop, RuleUnverifiedOutput), in the same order: not
	// breaks, and not continued either.
	Unverifiable []Finding
	// Coverage is what the data says of each service's sampling
	// (EstimateCoverage).
	Coverage []Coverage
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

// The findings, one constructor each: the rule's texts are written here
// only. A finding made by one of them has no counts yet.

// LostHop is a consumer in service to that lost the context of producer
// service from's record on topic, read in consumer group group.
func LostHop(from, topic, to, group string) Finding {
	return Finding{Rule: RuleLostHop, Where: from + " → " + topic + " → " + to, Service: to, Topic: topic, Group: group, From: []string{from}}
}

// LostInside is a produce span to topic in service, which consumes inputs,
// that carries on from none of them.
func LostInside(service string, inputs []string, topic string) Finding {
	return Finding{Rule: RuleLostInside, Where: fmt.Sprintf("%s: %s → %s", service, strings.Join(inputs, ", "), topic),
		Service: service, Topic: topic, From: slices.Clone(inputs)}
}

// ServerRoot is a server span of operation starting a trace, though
// instrumented services call service.
func ServerRoot(service, operation string) Finding {
	return Finding{Rule: RuleMidGraphRoot, Service: service,
		Where: fmt.Sprintf("%s: server span %q starts a trace, though instrumented services call %s", service, operation, service)}
}

// ConsumerRoot is a consumer span of service starting a trace, though
// instrumented producers write topic.
func ConsumerRoot(service, topic string) Finding {
	return Finding{Rule: RuleMidGraphRoot, Service: service, Topic: topic,
		Where: fmt.Sprintf("%s → %s: consumer span starts a trace, though instrumented producers write %s", topic, service, topic)}
}

// Orphan is a span of service whose parent is not in its trace.
func Orphan(service string) Finding {
	return Finding{Rule: RuleOrphan, Service: service, Where: service + ": parent span not in the trace"}
}

// MultipleRoots is a trace with roots in services (distinct; any order).
func MultipleRoots(services []string) Finding {
	s := slices.Sorted(slices.Values(services))
	return Finding{Rule: RuleMultipleRoots, Service: s[0], Where: "roots in " + strings.Join(s, ", ")}
}

// What a clock-skew finding says of the later span.
const (
	SkewBeforeParent   = "starts before its parent"
	SkewBeforeProducer = "consumes before it was produced"
)

// ClockSkew is a span of service to that starts before a span of service
// from it follows (what says how: SkewBeforeParent, SkewBeforeProducer).
func ClockSkew(from, to, what string) Finding {
	return Finding{Rule: RuleClockSkew, Service: to, Where: fmt.Sprintf("%s → %s: %s", from, to, what), From: []string{from}}
}

// ReasonNotInData is what an unverifiable hop's Where ends with.
const ReasonNotInData = "linked trace not in the data"

// UnverifiedHop is a consumer in service to, reading topic in consumer
// group group, that links to a trace not in the data.
func UnverifiedHop(topic, to, group string) Finding {
	return Finding{Rule: RuleUnverifiedHop, Where: topic + " → " + to + ": " + ReasonNotInData, Service: to, Topic: topic, Group: group}
}

// UnverifiedOutput is a produce span to topic in service, which consumes
// inputs, whose links point only at traces not in the data.
func UnverifiedOutput(service string, inputs []string, topic string) Finding {
	return Finding{Rule: RuleUnverifiedOutput, Where: fmt.Sprintf("%s: %s → %s: %s", service, strings.Join(inputs, ", "), topic, ReasonNotInData),
		Service: service, Topic: topic, From: slices.Clone(inputs)}
}

// AddExample adds trace id to the finding's examples, which keep the
// MaxExamples smallest IDs, sorted.
func (f *Finding) AddExample(id trace.TraceID) {
	ex := f.Examples
	i, found := slices.BinarySearchFunc(ex, id, graph.CompareTraceIDs)
	if found || i >= MaxExamples {
		return
	}
	if ex == nil {
		ex = make([]trace.TraceID, 0, MaxExamples) // grown once
	}
	if len(ex) < MaxExamples {
		ex = append(ex, trace.TraceID{})
	}
	copy(ex[i+1:], ex[i:])
	ex[i] = id
	f.Examples = ex
}

// Merge adds the counts of o, the same finding counted over other traces.
func (f *Finding) Merge(o *Finding) {
	f.Occurrences += o.Occurrences
	f.Traces += o.Traces
	for _, id := range o.Examples {
		f.AddExample(id)
	}
	for _, s := range o.From {
		if !slices.Contains(f.From, s) {
			f.From = append(f.From, s)
		}
	}
	f.MaxSkew = max(f.MaxSkew, o.MaxSkew)
	if o.Group < f.Group {
		f.Group = o.Group
	}
}

// Sort puts the report in its order: findings with the most affected
// traces first, then by rule (in the order the rules are listed), then by
// Where (and what else tells two findings apart); each finding's From
// sorted; incomplete traces by ID.
func (r *Report) Sort() {
	cmpf := func(a, b Finding) int { return CompareFindings(&a, &b) }
	for _, list := range [][]Finding{r.Findings, r.Unverifiable} {
		for i := range list {
			slices.Sort(list[i].From)
		}
		if !slices.IsSortedFunc(list, cmpf) {
			slices.SortFunc(list, cmpf)
		}
	}
	slices.SortFunc(r.Incomplete, graph.CompareTraceIDs)
}

// CompareFindings orders findings as Report.Sort does. (cmp.Or would work
// out every comparison before choosing; a report may hold thousands.)
func CompareFindings(a, b *Finding) int {
	switch {
	case a.Traces != b.Traces:
		return cmp.Compare(b.Traces, a.Traces)
	case a.Rule != b.Rule:
		return cmp.Compare(RuleRank(a.Rule), RuleRank(b.Rule))
	case a.Where != b.Where:
		return strings.Compare(a.Where, b.Where)
	}
	return cmp.Or(strings.Compare(a.Service, b.Service), strings.Compare(a.Topic, b.Topic),
		strings.Compare(a.Group, b.Group), slices.Compare(a.From, b.From))
}

// StartsBefore reports whether a span starting at s starts more than tol
// before the span it follows, starting at p: s.Before(p.Add(-tol)).
func StartsBefore(s, p time.Time, tol time.Duration) bool {
	return s.Before(p.Add(-tol))
}
