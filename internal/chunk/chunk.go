// Package chunk holds an append-only list grown in fixed-size chunks:
// appending never copies what is already there, so a list that grows with
// the input leaves no garbage behind it, and a list of pointer-free values
// is never scanned by the collector.
package chunk

// Len is the number of values in each chunk.
const Len = 4096

// List is an append-only list. The zero value is empty and ready to use.
type List[T any] struct {
	chunks [][]T
	n      int
}

// Add appends v.
func (l *List[T]) Add(v T) {
	if l.n%Len == 0 {
		l.chunks = append(l.chunks, make([]T, 0, Len))
	}
	last := &l.chunks[len(l.chunks)-1]
	*last = append(*last, v)
	l.n++
}

// Len returns the number of values.
func (l *List[T]) Len() int { return l.n }

// At returns the j-th value, for reading or changing in place.
func (l *List[T]) At(j int) *T { return &l.chunks[j/Len][j%Len] }

// Chunks returns the list's values as its chunks, in order, for a caller
// that reads them all: the last may be partly filled. Do not append to
// them.
func (l *List[T]) Chunks() [][]T { return l.chunks }
