package stream

// How far a partition gathered has published what the span topic was
// given: the time it says on the pairs topic, so that a hop is judged
// once both halves are there, however far behind a member lags.

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// coverage follows, for a partition gathered, up to when (in time the
// span topic was written) its spans lie before an offset: a step is an
// offset and a time (Unix ns) such that every span written to the span
// topic before that time, and gathered on this partition, lies before
// that offset. Once the segments published end at or past a step's
// offset, everything the span topic was given up to its time is
// published (coverage.upTo).
//
// Read by trace ID, the steps come from the span topic's end offsets,
// asked for at every tick. Re-keyed, they come from the re-keying's marks
// (rekeyedHeader), written among the re-keyed spans: a mark says how far
// each partition of the span topic was re-keyed when it was written.
type coverage struct {
	steps []coverStep // ascending in offset and time
	// rekeyed is, by partition of the span topic, the time up to which
	// the marks read said it was re-keyed; sources is how many
	// partitions the span topic has (the most a mark said).
	rekeyed map[int32]int64
	sources int
}

type coverStep struct{ offset, upTo int64 }

// maxSteps bounds the steps held: past it the oldest go, which only
// delays what the partition says (steps are let go as segments are
// published, so a partition holds about a window of them).
const maxSteps = 4096

// reach notes that every span written to the span topic before upTo
// and gathered here lies before offset.
func (c *coverage) reach(offset, upTo int64) {
	n := len(c.steps)
	if n > 0 && upTo <= c.steps[n-1].upTo {
		return
	}
	for n > 0 && c.steps[n-1].offset >= offset { // said again, earlier in the partition
		n--
	}
	c.steps = append(c.steps[:n], coverStep{offset, upTo})
	if len(c.steps) > maxSteps {
		c.steps = c.steps[1:]
	}
}

// upTo is the time up to which every span the span topic was given and
// gathered here lies before offset commit (0: no such time is known).
// The steps before the one it takes are let go: commit only moves on.
func (c *coverage) upTo(commit int64) int64 {
	i := sort.Search(len(c.steps), func(i int) bool { return c.steps[i].offset > commit }) - 1
	if i < 0 {
		return 0
	}
	c.steps = c.steps[i:]
	return c.steps[0].upTo
}

// again is the coverage of the same partition read again: the steps
// are facts of the partition and stay; what the marks said is read again
// with them.
func (c *coverage) again() coverage {
	return coverage{steps: slices.Clone(c.steps)}
}

// rekeyedHeader names the header of a re-keying mark, a record of the
// spans topic with no value: "N;P=T;P=T…", the span topic has N
// partitions and its partition P was re-keyed up to T (Unix ns): every
// record written to it before T is on the spans topic before the mark.
const rekeyedHeader = "ktrace-rekeyed"

// rekeyMark reads a re-keying mark's header (ok false: r is not a mark;
// read by trace ID, no record is: the topic gathered is the span topic,
// and a header there is the sender's).
func (m *member) rekeyMark(r *kgo.Record) (value []byte, ok bool) {
	if m.cfg.ByTraceID {
		return nil, false
	}
	return markOf(r)
}

// markOf reads a re-keying mark's header (ok false: r is not a mark).
func markOf(r *kgo.Record) (value []byte, ok bool) {
	for _, h := range r.Headers {
		if h.Key == rekeyedHeader {
			return h.Value, true
		}
	}
	return nil, false
}

// rekeyedValue writes a mark's header value: n partitions, up to by
// partition.
func rekeyedValue(n int, upTo map[int32]int64) []byte {
	parts := slices.Sorted(maps.Keys(upTo))
	v := strconv.AppendInt(nil, int64(n), 10)
	for _, p := range parts {
		v = fmt.Appendf(v, ";%d=%d", p, upTo[p])
	}
	return v
}

// parseRekeyed reads a mark's header value.
func parseRekeyed(v []byte) (n int, upTo map[int32]int64, err error) {
	fields := bytes.Split(v, []byte(";"))
	if n, err = strconv.Atoi(string(fields[0])); err != nil || n < 0 {
		return 0, nil, fmt.Errorf("a re-keying mark %q: no partition count", v)
	}
	upTo = map[int32]int64{}
	for _, f := range fields[1:] {
		ps, ts, found := bytes.Cut(f, []byte("="))
		p, err1 := strconv.ParseInt(string(ps), 10, 32)
		t, err2 := strconv.ParseInt(string(ts), 10, 64)
		if !found || err1 != nil || err2 != nil || p < 0 || int(p) >= n {
			return 0, nil, fmt.Errorf("a re-keying mark %q: %q is not PARTITION=TIME", v, f)
		}
		upTo[int32(p)] = t
	}
	return n, upTo, nil
}

// mark takes the re-keying mark at offset: the partitions of the span
// topic it names were re-keyed up to their times, and once every
// partition was, the spans written to the span topic before the earliest
// of those times lie before the mark.
func (c *coverage) mark(offset int64, v []byte) error {
	n, upTo, err := parseRekeyed(v)
	if err != nil {
		return err
	}
	if c.rekeyed == nil {
		c.rekeyed = map[int32]int64{}
	}
	c.sources = max(c.sources, n)
	for p, t := range upTo {
		c.rekeyed[p] = max(c.rekeyed[p], t)
	}
	earliest := int64(-1)
	for p := range int32(c.sources) {
		t, ok := c.rekeyed[p]
		if !ok {
			return nil
		}
		if earliest < 0 || t < earliest {
			earliest = t
		}
	}
	if earliest > 0 {
		c.reach(offset+1, earliest)
	}
	return nil
}
