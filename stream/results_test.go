package stream

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A result larger than a record is cut into parts that read back as the
// whole; a missing part, or one left from another result, is an error.
func TestResultParts(t *testing.T) {
	defer SetResultMaxBytes(1000)()
	data := make([]byte, 3500)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	key := segmentKey(3, 42)
	recs := resultRecords("r", key, data)
	if len(recs) != 4 {
		t.Fatalf("%d records, want 4", len(recs))
	}
	latest := func() map[string]*kgo.Record {
		m := map[string]*kgo.Record{}
		for _, r := range recs {
			m[string(r.Key)] = r
			if len(r.Value) > 1000 {
				t.Fatalf("a part of %d bytes, more than the bound", len(r.Value))
			}
			if r.Timestamp != recs[0].Timestamp {
				t.Fatal("the parts' times differ")
			}
		}
		return m
	}
	m := latest()
	for k := range m {
		if isResultPart(k) != (k != string(key)) {
			t.Errorf("isResultPart(%q) = %v", k, isResultPart(k))
		}
	}
	got, err := resultValue(string(key), recs[0], m)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (%v), want the %d written", len(got), err, len(data))
	}
	if len(m) != 1 {
		t.Errorf("%d records left unread, want the first alone", len(m))
	}

	m = latest()
	delete(m, string(key)+"#2")
	if _, err := resultValue(string(key), recs[0], m); err == nil || !strings.Contains(err.Error(), "part 3 of its 4 is missing") {
		t.Errorf("a missing part: %v", err)
	}
	m = latest()
	other := resultRecords("r", key, bytes.Repeat([]byte{7}, 3500))
	m[string(key)+"#1"] = other[1]
	if _, err := resultValue(string(key), recs[0], m); err == nil || !strings.Contains(err.Error(), "CRC-32C differs") {
		t.Errorf("a part of another result: %v", err)
	}

	// A result within the bound is one record, as it always was.
	small := resultRecords("r", key, data[:1000])
	if len(small) != 1 || len(small[0].Headers) != 0 {
		t.Fatalf("a result at the bound: %d records, %d headers", len(small), len(small[0].Headers))
	}
	if got, err := resultValue(string(key), small[0], nil); err != nil || !bytes.Equal(got, data[:1000]) {
		t.Errorf("a whole result read back as %d bytes (%v)", len(got), err)
	}
}
