package trace

import (
	"errors"
	"fmt"
)

// ErrDuplicateSpan and ErrParentCycle are the broken-trace cases Validate finds.
var (
	ErrDuplicateSpan = errors.New("duplicate span id")
	ErrParentCycle   = errors.New("parent references form a cycle")
)

// Validate checks that a trace can be analysed: every span carries the
// trace's ID, span IDs are unique, and following parents never loops. Errors
// wrap ErrDuplicateSpan or ErrParentCycle and name the trace and span.
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
