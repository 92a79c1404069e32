package trace

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrDuplicateSpan, ErrParentCycle and ErrImpossibleTime are the
// broken-trace cases Validate finds.
var (
	ErrDuplicateSpan  = errors.New("duplicate span id")
	ErrParentCycle    = errors.New("parent references form a cycle")
	ErrImpossibleTime = errors.New("impossible time")
)

// MaxDuration is the longest span Validate accepts (about 100 years): any
// longer is a corrupt number, and latencies of such spans would overflow.
const MaxDuration = 100 * 365 * 24 * time.Hour

// A span's start, when known, is a time in nanoseconds since the epoch
// that fits an int64 (1677–2262), as every format and store keeps it.
var (
	minStart = time.Unix(0, math.MinInt64)
	maxStart = time.Unix(0, math.MaxInt64)
)

// checkTimes rejects a negative or impossibly long duration and a start
// time that no format can hold (the zero time stands for an unknown start).
func checkTimes(s *Span) error {
	switch {
	case s.Duration < 0:
		return fmt.Errorf("duration %s is negative: %w", s.Duration, ErrImpossibleTime)
	case s.Duration > MaxDuration:
		return fmt.Errorf("duration %s is longer than 100 years: %w", s.Duration, ErrImpossibleTime)
	case !s.Start.IsZero() && (s.Start.Before(minStart) || s.Start.After(maxStart)):
		return fmt.Errorf("start time %s is outside 1677–2262: %w", s.Start.UTC().Format(time.RFC3339), ErrImpossibleTime)
	}
	return nil
}

// Validate checks that a trace can be analysed: every span carries the
// trace's ID, span IDs are unique, times are possible (see checkTimes), and
// following parents never loops. Errors wrap ErrDuplicateSpan,
// ErrImpossibleTime or ErrParentCycle and name the trace and span.
func Validate(t *Trace) error {
	idx := make(map[SpanID]int, len(t.Spans))
	for i := range t.Spans {
		s := &t.Spans[i]
		if s.TraceID != t.ID {
			return fmt.Errorf("trace %s: span %s carries trace id %s", t.ID, s.SpanID, s.TraceID)
		}
		if s.SpanID == 0 {
			return fmt.Errorf("trace %s: span with zero id", t.ID)
		}
		if err := checkTimes(s); err != nil {
			return fmt.Errorf("trace %s: span %s: %w", t.ID, s.SpanID, err)
		}
		if _, dup := idx[s.SpanID]; dup {
			return fmt.Errorf("trace %s: span %s: %w", t.ID, s.SpanID, ErrDuplicateSpan)
		}
		idx[s.SpanID] = i
	}
	// state: 0 unseen, 1 on the current path, 2 known to reach a root.
	state := make([]uint8, len(t.Spans))
	var path []int
	for i := range t.Spans {
		path = path[:0]
		j := i
		for state[j] == 0 {
			state[j] = 1
			path = append(path, j)
			pid, ok := t.Spans[j].Parent()
			if !ok {
				break
			}
			k, ok := idx[pid]
			if !ok {
				break
			}
			j = k
		}
		if state[j] == 1 && len(path) > 0 {
			if pid, ok := t.Spans[j].Parent(); ok {
				if k, ok := idx[pid]; ok && state[k] == 1 {
					return fmt.Errorf("trace %s: span %s: %w", t.ID, t.Spans[j].SpanID, ErrParentCycle)
				}
			}
		}
		for _, p := range path {
			state[p] = 2
		}
	}
	return nil
}
