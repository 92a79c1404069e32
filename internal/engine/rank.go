package engine

// Latency percentiles: the edges' samples gathered from the builders' logs
// and ranked without sorting them.

import (
	"maps"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ktrace-dev/ktrace/graph"
)

// finishEdges computes the edges' latency percentiles (edges[i].seq == i).
// With f, f runs on this goroutine while the percentiles are computed on
// the other CPUs (so f must not read an edge's percentiles), then this
// goroutine helps with what is left of them. logs hold the edges' latency
// samples, and early, if not nil, those a startGather began to gather
// before (for the edges numbered below len(early.counts)).
func finishEdges(edges []*edge, f func(), early *gathering, logs []sampleLog) {
	samples := 0
	counts := make([]int, len(edges))
	for i, e := range edges {
		counts[i] = e.nlat
		if early != nil && i < len(early.counts) {
			counts[i] -= early.counts[i]
		}
		samples += e.nlat
	}
	lat := make([][]int64, len(edges))
	gatherSamples(edges, logs, counts, lat)
	// samplesOf returns edge i's samples, once early is done.
	samplesOf := func(i int) []int64 {
		if early == nil || i >= len(early.lat) {
			return lat[i]
		}
		if e := early.lat[i]; len(lat[i]) == 0 {
			return e
		} else if len(e) > 0 {
			return append(slices.Clip(e), lat[i]...)
		}
		return lat[i]
	}
	// Goroutines take edges in turn, as their sample counts differ widely
	// and fixed shares would not be even.
	var next atomic.Int64
	work := func() {
		if early != nil {
			<-early.done
		}
		var r ranker
		for i := int(next.Add(1)) - 1; i < len(edges); i = int(next.Add(1)) - 1 {
			e := edges[i]
			if e.nrounded > 0 {
				e.p50, e.p95, e.p99 = roundedPercentiles(samplesOf(i), e.rounded, e.nrounded)
			} else {
				e.p50, e.p95, e.p99 = r.percentiles(samplesOf(i))
				if e.nlat > graph.ExactSamples { // as graph.Percentiles says
					e.p50, e.p95, e.p99 = roundDuration(e.p50), roundDuration(e.p95), roundDuration(e.p99)
				}
			}
			// Below zero (clock skew) shows as zero, as graph.Percentiles says.
			e.p50, e.p95, e.p99 = max(e.p50, 0), max(e.p95, 0), max(e.p99, 0)
		}
	}
	workers := 1
	if samples >= parallelSamples {
		workers = min(runtime.GOMAXPROCS(0), len(edges))
	}
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	if f != nil {
		f()
	}
	work()
	wg.Wait()
}

// parallelSamples is how many latency samples make it worth gathering and
// ranking them on every CPU.
const parallelSamples = 100_000

// gathering is latency samples being gathered on a goroutine of its own
// (startGather).
type gathering struct {
	counts []int     // each edge's samples, by the edges' numbers when it began
	lat    [][]int64 // the samples, likewise, once done is closed
	done   chan struct{}
}

// startGather gathers the samples logs hold for edges, numbered by their
// seq (edges[i].seq == i) with e.nlat samples each, on a new goroutine.
// The logs and what edges are numbered then are its own until done.
func startGather(edges []*edge, logs []sampleLog) *gathering {
	gt := &gathering{counts: make([]int, len(edges)), lat: make([][]int64, len(edges)), done: make(chan struct{})}
	for i, e := range edges {
		gt.counts[i] = e.nlat
	}
	ats := logIndexes(logs)
	go func() {
		gatherInto(gt.counts, logs, ats, gt.lat)
		close(gt.done)
	}()
	return gt
}

// gatherSamples sets lat[i] to the latency samples of edges[i] (counts[i]
// of them), read from the builders' logs into one array, the edges'
// stretches in their order. The edges' seq must be their index.
func gatherSamples(edges []*edge, logs []sampleLog, counts []int, lat [][]int64) {
	gatherInto(counts, logs, logIndexes(logs), lat)
}

// logIndexes maps each log's edge numbers to the edges' seq.
func logIndexes(logs []sampleLog) [][]int32 {
	ats := make([][]int32, len(logs))
	for k, lg := range logs {
		ats[k] = make([]int32, len(lg.edges))
		for j, e := range lg.edges {
			ats[k][j] = e.seq
		}
	}
	return ats
}

// gatherInto is gatherSamples with the logs' edge numbers mapped (ats).
func gatherInto(counts []int, logs []sampleLog, ats [][]int32, lat [][]int64) {
	n := 0
	for _, c := range counts {
		n += c
	}
	all := make([]int64, n)
	pos := make([]int, len(counts)) // where an edge's next sample goes
	off := 0
	for i, c := range counts {
		pos[i] = off
		off += c
	}
	for k, lg := range logs {
		at := ats[k]
		for _, c := range lg.list.packed() {
			for _, p := range c {
				i := at[uint16(p)]
				all[pos[i]] = p >> 16
				pos[i]++
			}
		}
		for _, s := range lg.list.wide {
			i := at[s.edge]
			all[pos[i]] = s.lat
			pos[i]++
		}
	}
	off = 0
	for i, c := range counts {
		lat[i] = all[off:pos[i]:pos[i]]
		off += c
	}
}

// percentiles returns nearest-rank p50, p95 and p99 of nanosecond
// samples. Negative samples (clock skew) count as they are. The ranks are
// found without sorting the samples (ranks), which are left as they were.
func percentiles(lat []int64) (p50, p95, p99 time.Duration) {
	var r ranker
	return r.percentiles(lat)
}

// ranker finds ranks, keeping its counters from one call to the next (an
// edge's percentiles after another's need no new ones).
type ranker struct {
	count *[1 << rankBits]uint32
	slot  *[1 << rankBits]uint8
}

// percentiles is the package's percentiles.
func (rk *ranker) percentiles(lat []int64) (p50, p95, p99 time.Duration) {
	n := len(lat)
	if n == 0 {
		return 0, 0, 0
	}
	lo, hi := lat[0], lat[0]
	for _, v := range lat {
		lo, hi = min(lo, v), max(hi, v)
	}
	r := percentileRanks(n)
	var v [3]int64
	rk.ranks(lat, lo, hi, r[:], v[:])
	return time.Duration(v[0]), time.Duration(v[1]), time.Duration(v[2])
}

// percentileRanks are the nearest ranks of p50, p95 and p99 among n
// samples, counted from 0.
func percentileRanks(n int) [3]int {
	rank := func(p int) int { return max(0, (p*n+99)/100-1) }
	return [3]int{rank(50), rank(95), rank(99)}
}

// rankBits sets the most buckets ranks counts into: 2^rankBits. Fewer
// values get fewer buckets (two to four values each), so that an edge with
// a few hundred samples does not clear and scan 2^rankBits counters, and
// finding the ranks' buckets costs less than counting the values.
const rankBits = 11

// ranks sets out[i] to the value a sorted copy of a holds at rs[i] (rs
// ascending, at most 255 ranks) without sorting a, whose least and greatest
// values are lo and hi: it counts the values into buckets by their high
// bits above lo, then gathers, in one more
// pass, the values of the buckets the ranks fall in and looks at those the
// same way, with the next bits. Each level reads the values in order with
// no unpredictable branch (a quickselect's comparisons with its pivot are a
// coin toss each), and the levels are few: the buckets' width shrinks by
// 2^rankBits each time. It does not change a.
func (rk *ranker) ranks(a []int64, lo, hi int64, rs []int, out []int64) {
	n := len(a)
	if n <= 64 {
		b := slices.Clone(a)
		slices.Sort(b)
		for i, r := range rs {
			out[i] = b[r]
		}
		return
	}
	if lo == hi {
		for i := range rs {
			out[i] = lo
		}
		return
	}
	// Differences from lo, unsigned: any int64 range fits.
	nb := min(rankBits, bits.Len(uint(n))-2)
	shift := max(0, bits.Len64(uint64(hi)-uint64(lo))-nb)
	if rk.count == nil {
		rk.count, rk.slot = new([1 << rankBits]uint32), new([1 << rankBits]uint8)
	}
	// A level is done with them before the next begins. The buckets'
	// numbers are below 2^nb; masking them tells the compiler so.
	const m = 1<<rankBits - 1
	count, slot := rk.count, rk.slot
	clear(count[:1<<nb])
	clear(slot[:1<<nb])
	for _, v := range a {
		count[(uint64(v)-uint64(lo))>>shift&m]++
	}
	// The bucket each rank falls in, and the ranks below that bucket; ranks
	// in one bucket form a group, which gathers the bucket's values.
	type group struct {
		i, j   int // the group's ranks: rs[i:j]
		below  int
		in     []int64
		lo, hi int64 // of in
	}
	var groups []group
	// slot: a bucket's group number + 1; 0: none.
	b, seen := 0, 0
	for i, r := range rs {
		for seen+int(count[b&m]) <= r {
			seen += int(count[b&m])
			b++
		}
		if slot[b&m] == 0 {
			groups = append(groups, group{i: i, below: seen, in: make([]int64, 0, count[b&m]), lo: math.MaxInt64, hi: math.MinInt64})
			slot[b&m] = uint8(len(groups))
		}
		groups[len(groups)-1].j = i + 1
	}
	for _, v := range a {
		if g := slot[(uint64(v)-uint64(lo))>>shift&m]; g != 0 {
			gr := &groups[g-1]
			gr.in = append(gr.in, v)
			gr.lo, gr.hi = min(gr.lo, v), max(gr.hi, v)
		}
	}
	for _, g := range groups {
		sub := make([]int, g.j-g.i)
		for k := range sub {
			sub[k] = rs[g.i+k] - g.below
		}
		rk.ranks(g.in, g.lo, g.hi, sub, out[g.i:g.j])
	}
}

func roundDuration(d time.Duration) time.Duration { return time.Duration(graph.RoundLatency(int64(d))) }

// rounding returns the counts of samples' rounded values, with those of
// rounded (which stays as it was).
func rounding(samples []int64, rounded map[int64]int) map[int64]int {
	counts := maps.Clone(rounded)
	if counts == nil {
		counts = make(map[int64]int)
	}
	for _, v := range samples {
		counts[graph.RoundLatency(v)]++
	}
	return counts
}

// roundedPercentiles returns the nearest-rank p50, p95 and p99 of the
// samples and of n more counted by rounded value (rounded): those of
// them all rounded, as graph.Percentiles gives them past
// graph.ExactSamples.
func roundedPercentiles(samples []int64, rounded map[int64]int, n int) (p50, p95, p99 time.Duration) {
	counts := rounding(samples, rounded)
	n += len(samples)
	var out [3]time.Duration
	ranks := percentileRanks(n)
	seen, j := 0, 0
	for _, v := range slices.Sorted(maps.Keys(counts)) {
		seen += counts[v]
		for j < len(ranks) && ranks[j] < seen {
			out[j] = time.Duration(v)
			j++
		}
	}
	return out[0], out[1], out[2]
}

// addRounded adds samples counted by rounded value to the edge's.
func (e *edge) addRounded(counts map[int64]int) {
	for v, c := range counts {
		if e.rounded == nil {
			e.rounded = make(map[int64]int)
		}
		e.rounded[v] += c
		e.nrounded += c
	}
}
