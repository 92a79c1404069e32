package split

import (
	"sort"
	"sync"
)

// Balanced is Runs for work that may be uneven: items of different sizes
// (one huge trace among small ones), or a CPU slowed by other programs.
// Each goroutine starts on its own contiguous run; one that finishes takes
// the second half of what is left of the run with the most left, as a run
// of its own, while at least 2×minSteal items are left there (zero or
// less: a 16th of a goroutine's share, so that a stolen run is worth the
// result it adds for the caller to merge). f is called once per run, with
// the run's first item and take, which f calls before each item in turn
// (lo, lo+1, …): take(i) reports whether item i is still the run's, and f
// stops at the first false. The results come back in item order, so that
// merging them in order gives what one pass would.
func Balanced[R any](n, workers, minSteal int, f func(lo int, take func(i int) bool) R) []R {
	workers = runsFor(n, workers)
	if minSteal <= 0 {
		minSteal = n / (16 * workers)
	}
	minSteal = max(1, minSteal)
	b := &balance{minSteal: minSteal}
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		b.runs = append(b.runs, &run{lo: lo, next: lo, end: hi})
	}
	type result struct {
		lo int
		r  R
	}
	out := make([][]result, workers)
	var wg sync.WaitGroup
	first := append([]*run(nil), b.runs...) // steals append to b.runs
	for w := range workers {
		wg.Go(func() {
			for r := first[w]; r != nil; r = b.steal() {
				out[w] = append(out[w], result{r.lo, f(r.lo, r.taker(max(1, minSteal/8)))})
			}
		})
	}
	wg.Wait()
	var all []result
	for _, rs := range out {
		all = append(all, rs...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].lo < all[j].lo })
	res := make([]R, len(all))
	for i := range all {
		res[i] = all[i].r
	}
	return res
}

// balance is the runs of one Balanced call.
type balance struct {
	mu       sync.Mutex // guards runs (the slice; each run has its own lock)
	runs     []*run
	minSteal int
}

// run is a contiguous run of items: its goroutine has claimed lo ≤ i <
// next, and the run ends at end, which a thief may lower to no less than
// next.
type run struct {
	mu            sync.Mutex
	lo, next, end int
}

// taker returns the run's take function for its goroutine, which claims
// items batch at a time, so that the lock is not taken for every item.
func (r *run) taker(batch int) func(int) bool {
	claimed := r.lo // the goroutine's own: items below claimed
	return func(i int) bool {
		if i < claimed {
			return true
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if i >= r.end {
			return false
		}
		claimed = min(r.end, i+batch)
		r.next = claimed
		return true
	}
}

// steal cuts the second half off the run with the most items left and
// returns it as a new run, or nil when no run has enough left.
func (b *balance) steal() *run {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		var best *run
		most := 2*b.minSteal - 1
		for _, r := range b.runs {
			r.mu.Lock()
			if left := r.end - r.next; left > most {
				best, most = r, left
			}
			r.mu.Unlock()
		}
		if best == nil {
			return nil
		}
		best.mu.Lock()
		left := best.end - best.next
		if left < 2*b.minSteal { // it moved on meanwhile: look again
			best.mu.Unlock()
			continue
		}
		cut := best.next + left/2
		nr := &run{lo: cut, next: cut, end: best.end}
		best.end = cut
		best.mu.Unlock()
		b.runs = append(b.runs, nr)
		return nr
	}
}
