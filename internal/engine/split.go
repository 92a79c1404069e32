package engine

// Work on a slice is shared among goroutines in contiguous runs, so that
// results merged in run order are what one goroutine would give.

import (
	"runtime"
	"sync"
)

// minPerRun is how many items a run gets at least when the number of runs
// is left to inRuns: fewer, and starting goroutines costs more than it saves.
const minPerRun = 2000

// inRuns cuts n items into contiguous runs, calls f on each run (lo ≤ i < hi)
// in its own goroutine, and returns the results in run order. workers is
// the number of runs; zero or less means one per CPU, fewer for small n.
// There is always at least one run, empty when n is 0.
func inRuns[R any](n, workers int, f func(lo, hi int) R) []R {
	workers = runsFor(n, workers)
	out := make([]R, workers)
	var wg sync.WaitGroup
	for w := range out {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[w] = f(lo, hi)
		}()
	}
	wg.Wait()
	return out
}

// runsFor is how many runs n items are cut into for workers goroutines
// (zero or less: one per CPU, fewer for small n); at least one.
func runsFor(n, workers int) int {
	if workers <= 0 {
		workers = min(runtime.GOMAXPROCS(0), n/minPerRun+1)
	}
	return max(1, min(workers, n))
}
