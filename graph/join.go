package graph

// joinIndex is the build side of a hash join: the entries added under each
// key, found again by key. The pending consumers (usually few) are added,
// and every producer (usually many) probes it once, so a probe must be
// cheap: open addressing over the distinct keys, kept at most half full,
// with a key's entries chained through next. The caller hashes the key
// (hashSpan, hashRecord) and keeps each entry's values in arrays parallel to
// the entry numbers, which count up from 0 in the order entries are added.
type joinIndex[K comparable] struct {
	slots []joinSlot[K]
	next  []int32 // entry → the entry added before it under the same key, +1; 0: none
	shift uint
	// filter has a bit set for every key's hash (eight bits a slot): most
	// probes find no key, and most of those are turned away by one bit
	// in a small array instead of a slot in a large one.
	filter []uint64
	fmask  uint64
}

type joinSlot[K comparable] struct {
	k    K
	last int32 // the key's last entry +1; 0: empty slot
}

// newJoinIndex returns an index for up to n entries.
func newJoinIndex[K comparable](n int) *joinIndex[K] {
	size, shift := 8, uint(61)
	for size < 2*n {
		size <<= 1
		shift--
	}
	return &joinIndex[K]{slots: make([]joinSlot[K], size), next: make([]int32, 0, n), shift: shift,
		filter: make([]uint64, size/8), fmask: uint64(size*8 - 1)}
}

func (x *joinIndex[K]) bit(h uint64) (word uint64, mask uint64) {
	f := (h ^ h>>29) & x.fmask
	return f >> 6, 1 << (f & 63)
}

// add adds the next entry under k, whose hash is h.
func (x *joinIndex[K]) add(h uint64, k K) {
	e := int32(len(x.next)) + 1
	w, b := x.bit(h)
	x.filter[w] |= b
	mask := uint64(len(x.slots) - 1)
	for i := h >> x.shift; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.last == 0 {
			*s = joinSlot[K]{k, e}
			x.next = append(x.next, 0)
			return
		}
		if s.k == k {
			x.next = append(x.next, s.last)
			s.last = e
			return
		}
	}
}

// last returns the last entry added under k (hash h) +1, or 0; the one
// added before entry e is next[e]-1 while next[e] > 0.
func (x *joinIndex[K]) last(h uint64, k K) int32 {
	if w, b := x.bit(h); x.filter[w]&b == 0 {
		return 0
	}
	mask := uint64(len(x.slots) - 1)
	for i := h >> x.shift; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.last == 0 {
			return 0
		}
		if s.k == k {
			return s.last
		}
	}
}

func hashSpan(k spanKey) uint64 {
	return (k.tid.High*0xC2B2AE3D27D4EB4F ^ k.tid.Low ^ uint64(k.sid)*0x165667B19E3779F9) * 0x9E3779B97F4A7C15
}

func hashRecord(k recordKey) uint64 {
	return (uint64(uint32(k.topic))<<32 | uint64(uint32(k.partition)) ^ uint64(k.offset)*0xC2B2AE3D27D4EB4F) * 0x9E3779B97F4A7C15
}
