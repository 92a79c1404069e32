package engine

import (
	"testing"
)

func TestRuns(t *testing.T) {
	for _, c := range []struct{ n, workers, runs int }{
		{0, 0, 1}, {0, 4, 1}, {5, 0, 1}, {5, 3, 3}, {5, 9, 5}, {10000, 4, 4},
	} {
		seen := make([]int, c.n)
		got := inRuns(c.n, c.workers, func(lo, hi int) [2]int {
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
