package engine

// The builder's latency log: samples in the order they were taken.

// sample is a latency sample of the edge numbered edge where it was taken.
type sample struct {
	lat  int64
	edge int32
}

// latLog is latency samples in the order they were taken, by the numbers
// their edges had where they were taken, eight bytes each: the latency in
// the high 48 bits and the edge's number in the low 16. Half the bytes of
// a sample whole are half the memory to clear, write and read back (a
// million spans log 700,000 samples). Samples that do not pack (a
// latency of 39 hours or more, or a builder's 65,536th edge) are kept
// whole in wide.
//
// Room is made before the samples come (reserve), a trace's worth at a
// time, so that add, which every span calls, neither checks for room
// beyond its bounds check nor makes it, and is inlined.
type latLog struct {
	full [][]int64 // the filled blocks
	cur  []int64   // the block being filled: cur[:i]
	i    int
	wide []sample // few: a plain slice
}

// reserve makes room for n more samples.
func (l *latLog) reserve(n int) {
	if len(l.cur)-l.i >= n {
		return
	}
	if l.i > 0 {
		l.full = append(l.full, l.cur[:l.i])
	}
	l.cur, l.i = make([]int64, max(chunkLen, n)), 0
}

// trim moves the samples of the block being filled into a block just
// their size, for a log that is kept as it is (chunkList.trim).
func (l *latLog) trim() {
	if l.i < len(l.cur) {
		c := make([]int64, l.i)
		copy(c, l.cur)
		l.cur = c
	}
}

// add logs latency v of edge number edge, in room reserve made.
func (l *latLog) add(edge int32, v int64) {
	if uint64(v+1<<47)>>48|uint64(uint32(edge))>>16 != 0 {
		l.wide = append(l.wide, sample{v, edge})
		return
	}
	l.cur[l.i] = v<<16 | int64(edge)
	l.i++
}

// packed returns the packed samples in their blocks, in order.
func (l *latLog) packed() [][]int64 {
	if l.i == 0 {
		return l.full
	}
	return append(l.full[:len(l.full):len(l.full)], l.cur[:l.i])
}

// Len returns the number of samples.
func (l *latLog) Len() int {
	n := l.i + len(l.wide)
	for _, b := range l.full {
		n += len(b)
	}
	return n
}

// sampleLog is a latLog and the edges its samples belong to, by the numbers
// they had there.
type sampleLog struct {
	list  latLog
	edges []*edge
}
