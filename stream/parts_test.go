package stream

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// cutValue is a value of n bytes cut into records of at most 1000.
func cutValue(t *testing.T, n int, seed uint64) (data []byte, recs []*kgo.Record) {
	t.Helper()
	data = make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	starts := kgo.RecordHeader{Key: startsHeader, Value: []byte("1:2")}
	recs = cut(&kgo.Record{Topic: "r", Partition: 2, Key: segmentKey(3, 42), Value: data, Headers: []kgo.RecordHeader{starts}}, 1000)
	for _, r := range recs {
		if len(r.Value) > 1000 || r.Timestamp != recs[0].Timestamp || r.Partition != 2 {
			t.Fatalf("a piece of %d bytes, at %v on partition %d", len(r.Value), r.Timestamp, r.Partition)
		}
	}
	if _, _, ok := startsOf(recs[0]); !ok {
		t.Fatal("the first piece lost its headers")
	}
	return data, recs
}

// A value larger than a record is cut into pieces that read back as the
// whole; a missing piece, or one of another value, is an error.
func TestCut(t *testing.T) {
	data, recs := cutValue(t, 3500, 1)
	if len(recs) != 4 {
		t.Fatalf("%d records, want 4", len(recs))
	}
	key := string(recs[0].Key)
	latest := func() map[string]*kgo.Record {
		m := map[string]*kgo.Record{}
		for _, r := range recs {
			m[string(r.Key)] = r
		}
		return m
	}
	m := latest()
	for k := range m {
		if of, piece := pieceOf(k); piece != (k != key) || piece && of != key {
			t.Errorf("pieceOf(%q) = %q, %v", k, of, piece)
		}
	}
	got, err := resultValue(key, recs[0], m)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (%v), want the %d written", len(got), err, len(data))
	}
	if len(m) != 1 {
		t.Errorf("%d records left unread, want the first alone", len(m))
	}

	m = latest()
	delete(m, key+"#2")
	if _, err := resultValue(key, recs[0], m); err == nil || !strings.Contains(err.Error(), "piece 3 of its 4 is missing") {
		t.Errorf("a missing piece: %v", err)
	}
	m = latest()
	_, other := cutValue(t, 3500, 2)
	m[key+"#1"] = other[1]
	if _, err := resultValue(key, recs[0], m); err != errPieces {
		t.Errorf("a piece of another value: %v", err)
	}

	// A header that does not say two pieces or more is an error.
	for _, v := range []string{"1/00000000", "x/0", "3"} {
		bad := &kgo.Record{Key: []byte(key), Value: data[:10], Headers: []kgo.RecordHeader{{Key: partsHeader, Value: []byte(v)}}}
		if _, err := resultValue(key, bad, nil); err == nil {
			t.Errorf("header %q read", v)
		}
	}

	// A value within the bound is one record, as it always was.
	small := cut(&kgo.Record{Key: []byte(key), Value: data[:1000]}, 1000)
	if len(small) != 1 || len(small[0].Headers) != 0 {
		t.Fatalf("a value at the bound: %d records, %d headers", len(small), len(small[0].Headers))
	}
	if got, err := resultValue(key, small[0], nil); err != nil || !bytes.Equal(got, data[:1000]) {
		t.Errorf("a whole value read back as %d bytes (%v)", len(got), err)
	}
}

// The pairs topic's parts written in pieces are held whole once their
// last piece came, interleaved with other members' records; until then
// they are not judged, and the offset committed does not pass them.
func TestPairsPieces(t *testing.T) {
	data, recs := cutValue(t, 2500, 3)
	other := &kgo.Record{Partition: 2, Key: segmentKey(5, 7), Value: []byte("whole")}
	stray := &kgo.Record{Partition: 2, Key: pieceKey(string(segmentKey(9, 9)), 1), Value: []byte("no first piece")}
	order := []*kgo.Record{recs[0], other, recs[1], stray, recs[2]}
	for i, r := range order {
		r.Offset = int64(10 + i)
	}
	pr := &pairs{held: map[int32][]heldPart{}, said: map[int32]map[int32]time.Time{}}
	for i, r := range order {
		pr.add(r, false)
		held := pr.held[2]
		if complete := i == len(order)-1; (held[0].join == nil) != complete {
			t.Fatalf("after record %d the part is whole: %v", i, held[0].join == nil)
		}
	}
	held := pr.held[2]
	if len(held) != 2 || !bytes.Equal(held[0].data, data) || string(held[1].data) != "whole" {
		t.Fatalf("held %d parts (%d and %d bytes), want the part whole and the other", len(held), len(held[0].data), len(held[1].data))
	}
	if held[0].offset != 10 || held[0].next != 15 {
		t.Errorf("the part lies at %d up to %d, want 10 up to 15", held[0].offset, held[0].next)
	}

	// A piece of another value makes the part empty: skipped when read.
	_, foreign := cutValue(t, 2500, 4)
	pr = &pairs{held: map[int32][]heldPart{}, said: map[int32]map[int32]time.Time{}}
	for _, r := range []*kgo.Record{recs[0], foreign[1], recs[2]} {
		pr.add(r, false)
	}
	if h := pr.held[2][0]; h.join != nil || len(h.data) != 0 {
		t.Errorf("a part of mixed pieces is held with %d bytes (joining: %v)", len(h.data), h.join != nil)
	}
}
