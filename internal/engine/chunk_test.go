package engine

import "testing"

func TestChunkList(t *testing.T) {
	var a, b chunkList[int]
	for i := 0; i < 3*chunkLen+5; i++ {
		a.Add(i)
	}
	for i := 0; i < chunkLen+1; i++ {
		b.Add(-i)
	}
	p := a.At(chunkLen + 3)
	for j := 0; j < b.Len(); j++ {
		a.Add(*b.At(j))
	}
	if a.Len() != 4*chunkLen+6 || *p != chunkLen+3 || a.At(chunkLen+3) != p {
		t.Fatalf("len %d, value %d: growing moved or changed a value", a.Len(), *p)
	}
	j := 0
	for _, c := range a.Chunks() {
		for k := range c {
			if &c[k] != a.At(j) {
				t.Fatalf("Chunks: value %d is not At(%d)", j, j)
			}
			j++
		}
	}
	if j != a.Len() {
		t.Fatalf("Chunks hold %d values, want %d", j, a.Len())
	}
	for j := 0; j < a.Len(); j++ {
		want := j
		if j >= 3*chunkLen+5 {
			want = -(j - (3*chunkLen + 5))
		}
		if *a.At(j) != want {
			t.Fatalf("At(%d) = %d, want %d", j, *a.At(j), want)
		}
	}
}

// A list kept as it is holds its values in chunks no larger than they
// are, and still reads and grows as before.
func TestChunkListTrim(t *testing.T) {
	var l chunkList[int]
	for i := range chunkLen + 10 {
		l.Add(i)
	}
	l.trim()
	last := l.Chunks()[len(l.Chunks())-1]
	if len(last) != 10 || cap(last) != 10 {
		t.Fatalf("last chunk %d long with room for %d, want 10 and 10", len(last), cap(last))
	}
	l.Add(-1)
	for j := range chunkLen + 10 {
		if *l.At(j) != j {
			t.Fatalf("At(%d) = %d after trimming", j, *l.At(j))
		}
	}
	if l.Len() != chunkLen+11 || *l.At(chunkLen + 10) != -1 {
		t.Fatal("a value added after trimming is not where it belongs")
	}
	var lg latLog
	lg.reserve(3)
	lg.add(1, 5)
	lg.add(2, 6)
	lg.trim()
	if p := lg.packed(); len(p) != 1 || len(p[0]) != 2 || cap(lg.cur) != 2 || lg.Len() != 2 {
		t.Fatalf("latency log after trimming: %v, room %d", p, cap(lg.cur))
	}
}
