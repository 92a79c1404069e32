package stream

import (
	"slices"
	"testing"
	"time"
)

// TestPairsLetGo: judged parts are let go once no part still to judge
// can pair with them by their spans' times, and, whatever those times
// say, once published long ago; parts still to judge are kept.
func TestPairsLetGo(t *testing.T) {
	now := time.Now()
	wait := time.Minute
	old := func(at time.Time) bool { return now.Sub(at) > (contextWaits+1)*wait }
	span := now.UnixNano()
	part := func(offset int64, published time.Time, from int64, judged bool) heldPart {
		return heldPart{offset: offset, at: published, from: from, to: from, timed: true, judged: judged, data: []byte{1}}
	}
	cases := []struct {
		name  string
		held  []heldPart
		judge []int64
		kept  []int64
	}{
		{"spans that never move on, published long ago", []heldPart{
			part(0, now.Add(-10*wait), span, false),
			part(1, now.Add(-10*wait), span, false),
			part(2, now.Add(-wait), span, false),
		}, []int64{0, 1, 2}, []int64{2}},
		{"spans long before the earliest still to judge", []heldPart{
			part(0, now.Add(-wait), span-int64(3*wait), false),
			part(1, now.Add(-wait), span, false),
			part(2, now, span, false),
		}, []int64{0, 1}, []int64{1, 2}},
		{"a part still to judge is kept however old", []heldPart{
			part(0, now.Add(-10*wait), span, false),
			part(1, now.Add(-10*wait), span, false),
		}, []int64{0}, []int64{1}},
	}
	for _, c := range cases {
		pr := &pairs{held: map[int32][]heldPart{0: c.held}}
		pr.judged(0, c.judge, 2*wait, old)
		var kept []int64
		for _, h := range pr.held[0] {
			kept = append(kept, h.offset)
		}
		if !slices.Equal(kept, c.kept) {
			t.Errorf("%s: kept %v, want %v", c.name, kept, c.kept)
		}
	}
}
