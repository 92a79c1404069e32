package split

import (
	"testing"
	"time"
)

func TestRuns(t *testing.T) {
	for _, c := range []struct{ n, workers, runs int }{
		{0, 0, 1}, {0, 4, 1}, {5, 0, 1}, {5, 3, 3}, {5, 9, 5}, {10000, 4, 4},
	} {
		seen := make([]int, c.n)
		got := Runs(c.n, c.workers, func(lo, hi int) [2]int {
			for i := lo; i < hi; i++ {
				seen[i]++
			}
			return [2]int{lo, hi}
		})
		if len(got) != c.runs {
			t.Errorf("n %d, workers %d: %d runs, want %d", c.n, c.workers, len(got), c.runs)
		}
		next := 0
		for _, r := range got {
			if r[0] != next {
				t.Errorf("n %d, workers %d: runs %v are not contiguous and in order", c.n, c.workers, got)
			}
			next = r[1]
		}
		for i, k := range seen {
			if k != 1 {
				t.Fatalf("n %d, workers %d: item %d done %d times", c.n, c.workers, i, k)
			}
		}
	}
}

// TestBalanced: every item is taken exactly once, in runs that are
// contiguous and come back in order, and a goroutine slowed down has the
// rest of its run taken by the others.
func TestBalanced(t *testing.T) {
	for _, c := range []struct{ n, workers, minSteal int }{
		{0, 0, 1}, {1, 4, 1}, {5, 3, 1}, {1000, 2, 10}, {1000, 4, 1}, {1000, 4, 1000},
	} {
		seen := make([]int32, c.n)
		got := Balanced(c.n, c.workers, c.minSteal, func(lo int, take func(int) bool) [2]int {
			i := lo
			for ; take(i); i++ {
				seen[i]++
				if lo == 0 && c.n >= 1000 {
					time.Sleep(50 * time.Microsecond) // the first run is slow
				}
			}
			return [2]int{lo, i}
		})
		next := 0
		for _, r := range got {
			if r[0] != next {
				t.Fatalf("n %d, workers %d: runs %v are not contiguous and in order", c.n, c.workers, got)
			}
			next = r[1]
		}
		if next != c.n {
			t.Fatalf("n %d, workers %d: runs %v end at %d", c.n, c.workers, got, next)
		}
		for i, k := range seen {
			if k != 1 {
				t.Fatalf("n %d, workers %d: item %d taken %d times", c.n, c.workers, i, k)
			}
		}
		w := c.workers
		if w == 0 {
			w = 1
		}
		switch {
		case c.n >= 1000 && c.minSteal < c.n/4 && len(got) <= min(w, c.n):
			t.Errorf("n %d, workers %d: %d runs, want the slow run's rest taken by others", c.n, c.workers, len(got))
		case c.minSteal >= c.n && len(got) != min(w, max(c.n, 1)):
			t.Errorf("n %d, workers %d, steals of at least %d: %d runs, want none stolen", c.n, c.workers, c.minSteal, len(got))
		}
	}
}
