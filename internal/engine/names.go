package engine

import (
	"math"
	"unsafe"

	"github.com/ktrace-dev/ktrace/trace"
)

// The readers share equal short strings among the spans they decode
// (trace.Strings: one string for an operation name, a topic), and spans
// of one process share one *trace.Resource. So the builder can know a name
// it has seen by the string's address and length, without hashing its
// bytes, and then work with a small number in place of the string: names
// gives each distinct name an id, and per-id arrays replace string-keyed
// maps. A name that is not shared (another copy of the same bytes) is
// found by its bytes, as before, and gets the same id.

// maxAddrs bounds the addresses names remembers: where a source does not
// share its strings, every span brings new addresses, and the table must
// not grow with the input.
const maxAddrs = 1 << 14

// names maps strings to small dense ids. Make it with newNames.
type names struct {
	slots []addrSlot // open addressing by address; a power of two long
	mask  uint64     // len(slots)-1
	used  int
	ids   map[string]int32
}

func newNames() names {
	return names{slots: make([]addrSlot, 64), mask: 63, ids: map[string]int32{}}
}

// addrSlot is a name by its address and length (names longer than
// math.MaxInt32 bytes are not kept), 16 bytes.
type addrSlot struct {
	p  *byte
	n  int32
	id int32 // id+1; 0: empty
}

func addrHash(p *byte) uint64 {
	return uint64(uintptr(unsafe.Pointer(p))) * 0x9E3779B97F4A7C15 >> 32
}

// id returns the id of s. A name at its home slot, the usual case, is
// found inline; else id probes on.
func (t *names) id(s string) int32 {
	p := unsafe.StringData(s)
	if sl := &t.slots[addrHash(p)&t.mask]; sl.p == p && int(sl.n) == len(s) && sl.id != 0 {
		return sl.id - 1
	}
	return t.probe(s, p)
}

// probe is id past the home slot.
func (t *names) probe(s string, p *byte) int32 {
	for h := addrHash(p) & t.mask; ; h = (h + 1) & t.mask {
		sl := &t.slots[h]
		if sl.id == 0 {
			break
		}
		if sl.p == p && int(sl.n) == len(s) {
			return sl.id - 1
		}
	}
	return t.slow(s, p)
}

// slow finds s by its bytes and remembers its address.
func (t *names) slow(s string, p *byte) int32 {
	id, ok := t.ids[s]
	if !ok {
		id = int32(len(t.ids))
		t.ids[s] = id
	}
	if t.used >= maxAddrs || len(s) > math.MaxInt32 {
		return id
	}
	if 2*(t.used+1) > len(t.slots) {
		old := t.slots
		t.slots = make([]addrSlot, 2*len(old))
		t.mask = uint64(len(t.slots) - 1)
		t.used = 0
		for _, sl := range old {
			if sl.id != 0 {
				t.insert(sl)
			}
		}
	}
	t.insert(addrSlot{p, int32(len(s)), id + 1})
	return id
}

func (t *names) insert(sl addrSlot) {
	h := addrHash(sl.p) & t.mask
	for t.slots[h].id != 0 {
		h = (h + 1) & t.mask
	}
	t.slots[h] = sl
	t.used++
}

// bitSet is a set of small non-negative numbers.
type bitSet []uint64

// has reports whether i is in the set.
func (s bitSet) has(i int) bool {
	return i >= 0 && i>>6 < len(s) && s[i>>6]&(1<<(i&63)) != 0
}

// add adds i and reports whether it was new.
func (s *bitSet) add(i int32) bool {
	w := int(i >> 6)
	if w >= len(*s) {
		*s = append(*s, make([]uint64, w+1-len(*s))...)
	}
	bit := uint64(1) << (i & 63)
	if (*s)[w]&bit != 0 {
		return false
	}
	(*s)[w] |= bit
	return true
}

const resCacheBits = 8

type resSlot struct {
	r    *trace.Resource
	node *node
}

// resCache maps resources to their service nodes, in front of a map.
type resCache [1 << resCacheBits]resSlot

func (c *resCache) slot(r *trace.Resource) *resSlot {
	return &c[(uint64(uintptr(unsafe.Pointer(r)))*0x9E3779B97F4A7C15)>>(64-resCacheBits)]
}
