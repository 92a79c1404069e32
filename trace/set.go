package trace

import (
	"fmt"
	"sort"
)

// Set collects traces from one or more sources, merging spans that arrive
// under the same trace ID in several pieces (an OTLP file writes a trace over
// many lines; two pulls may overlap). The zero value is ready to use.
type Set struct {
	byID   map[TraceID]int
	traces []Trace
	spans  int
}

// Add merges t into the set. A span whose ID the set already holds for that
// trace is dropped when it is the same span (same service, operation, start
// and duration) and is an error wrapping ErrDuplicateSpan otherwise. Add takes
// ownership of t.Spans.
func (s *Set) Add(t Trace) error {
	if s.byID == nil {
		s.byID = make(map[TraceID]int)
	}
	i, ok := s.byID[t.ID]
	if !ok {
		s.byID[t.ID] = len(s.traces)
		s.traces = append(s.traces, t)
		s.spans += len(t.Spans)
		return nil
	}
	have := &s.traces[i]
	seen := make(map[SpanID]*Span, len(have.Spans))
	for j := range have.Spans {
		seen[have.Spans[j].SpanID] = &have.Spans[j]
	}
	for j := range t.Spans {
		n := &t.Spans[j]
		if o, dup := seen[n.SpanID]; dup {
			if o.Service() == n.Service() && o.Operation == n.Operation && o.Start.Equal(n.Start) && o.Duration == n.Duration {
				continue
			}
			return fmt.Errorf("trace %s: span %s: %w", t.ID, n.SpanID, ErrDuplicateSpan)
		}
		have.Spans = append(have.Spans, *n)
		s.spans++
	}
	return nil
}

// Len returns the number of traces.
func (s *Set) Len() int { return len(s.traces) }

// SpanCount returns the number of spans across all traces.
func (s *Set) SpanCount() int { return s.spans }

// Traces returns the traces sorted by ID. The slice is the set's own; do not
// modify it.
func (s *Set) Traces() []Trace {
	sort.Slice(s.traces, func(a, b int) bool {
		x, y := s.traces[a].ID, s.traces[b].ID
		if x.High != y.High {
			return x.High < y.High
		}
		return x.Low < y.Low
	})
	for i, t := range s.traces {
		s.byID[t.ID] = i
	}
	return s.traces
}
