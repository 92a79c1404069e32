package stream

import (
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A value larger than a record may hold — a segment's result or a pairing
// part, which grow with the spans and with the strings inside the traces
// (span names that carry IDs, long message IDs) — is written as several
// records of one transaction on its partition, all with one timestamp:
// the first under its key, with its headers and the header partsHeader
// saying how many there are (two or more) and the CRC-32C of the whole
// value, then the rest of the bytes under its key with "#1", "#2"…
// appended. A reader joins them; pieces left from an earlier, longer
// value under the same key lie past the count and are not read.
const partsHeader = "ktrace.parts"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// cut returns r as the records that write it, values of at most most
// bytes: r alone when its value fits in one.
func cut(r *kgo.Record, most int) []*kgo.Record {
	if len(r.Value) <= most {
		return []*kgo.Record{r}
	}
	data := r.Value
	n := (len(data) + most - 1) / most
	if r.Timestamp.IsZero() {
		r.Timestamp = time.Now()
	}
	recs := make([]*kgo.Record, n)
	for i := range recs {
		piece := data[i*most : min(len(data), (i+1)*most)]
		if i == 0 {
			r.Value = piece
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: partsHeader,
				Value: fmt.Appendf(nil, "%d/%08x", n, crc32.Checksum(data, castagnoli))})
			recs[0] = r
			continue
		}
		recs[i] = &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: pieceKey(string(r.Key), i), Value: piece, Timestamp: r.Timestamp}
	}
	return recs
}

// pieceKey is the key of the piece i (1 and on) of a value written under
// key.
func pieceKey(key string, i int) []byte { return fmt.Appendf(nil, "%s#%d", key, i) }

// pieceOf says whether key is that of a piece after the first, and of
// which key.
func pieceOf(key string) (of string, ok bool) {
	of, _, ok = strings.Cut(key, "#")
	return of, ok
}

// A joining gathers the pieces of a value written in several records.
type joining struct {
	n    int
	sum  uint32
	data []byte
	got  int
}

// joinOf is the joining of the value whose first record r is; nil when
// r holds its value whole.
func joinOf(r *kgo.Record) (*joining, error) {
	for _, h := range r.Headers {
		if h.Key != partsHeader {
			continue
		}
		count, sum, ok := strings.Cut(string(h.Value), "/")
		n, err1 := strconv.Atoi(count)
		crc, err2 := strconv.ParseUint(sum, 16, 32)
		if !ok || err1 != nil || err2 != nil || n < 2 {
			return nil, fmt.Errorf("%s header %q: want COUNT/CRC, two pieces or more", partsHeader, h.Value)
		}
		return &joining{n: n, sum: uint32(crc), data: append([]byte(nil), r.Value...), got: 1}, nil
	}
	return nil, nil
}

// errPieces: the pieces do not make the value written.
var errPieces = errors.New("its pieces do not make the value written (CRC-32C differs)")

// add appends the next piece; done says the value is whole (then checked).
func (j *joining) add(piece []byte) (done bool, err error) {
	j.data = append(j.data, piece...)
	j.got++
	if j.got < j.n {
		return false, nil
	}
	if crc32.Checksum(j.data, castagnoli) != j.sum {
		return true, errPieces
	}
	return true, nil
}

// resultValue is the value of the results topic's record r under key:
// r's value, or all its pieces', taken out of latest (the last record of
// each key), joined.
func resultValue(key string, r *kgo.Record, latest map[string]*kgo.Record) ([]byte, error) {
	j, err := joinOf(r)
	if err != nil || j == nil {
		return r.Value, err
	}
	for i := 1; i < j.n; i++ {
		k := string(pieceKey(key, i))
		piece, ok := latest[k]
		if !ok {
			return nil, fmt.Errorf("piece %d of its %d is missing", i+1, j.n)
		}
		delete(latest, k)
		if _, err := j.add(piece.Value); err != nil {
			return nil, err
		}
	}
	return j.data, nil
}
