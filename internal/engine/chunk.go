package engine

// chunkLen is the number of values in each chunk of a chunkList.
const chunkLen = 4096

// chunkList is an append-only list grown in fixed-size chunks: appending
// never copies what is already there, so a list that grows with the input
// leaves no garbage behind it, and a list of pointer-free values is never
// scanned by the collector. The zero value is empty and ready to use.
type chunkList[T any] struct {
	chunks [][]T
	n      int
}

// Add appends v.
func (l *chunkList[T]) Add(v T) {
	if l.n%chunkLen == 0 {
		l.chunks = append(l.chunks, make([]T, 0, chunkLen))
	}
	last := &l.chunks[len(l.chunks)-1]
	*last = append(*last, v)
	l.n++
}

// Len returns the number of values.
func (l *chunkList[T]) Len() int { return l.n }

// At returns the j-th value, for reading or changing in place.
func (l *chunkList[T]) At(j int) *T { return &l.chunks[j/chunkLen][j%chunkLen] }

// Chunks returns the list's values as its chunks, in order, for a caller
// that reads them all: the last may be partly filled. Do not append to
// them.
func (l *chunkList[T]) Chunks() [][]T { return l.chunks }

// trim moves a partly filled last chunk into one just its size, for a
// list that is kept as it is (merged analyzers' lists are moved whole):
// a partial of a few hundred spans must not hold a chunk of 4096 values
// per list. Appending after it copies that chunk once.
func (l *chunkList[T]) trim() {
	if k := len(l.chunks) - 1; k >= 0 && len(l.chunks[k]) < cap(l.chunks[k]) {
		c := make([]T, len(l.chunks[k]))
		copy(c, l.chunks[k])
		l.chunks[k] = c
	}
}
