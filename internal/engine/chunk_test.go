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
