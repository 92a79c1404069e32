package engine

// joinIndex is the build side of a hash join: the entries added under each
// key, found again by key. The pending consumers (usually few) are added,
// and every producer (usually many) probes it once, so a probe must be
// cheap: open addressing over the distinct keys, kept at most half full,
// with a key's entries chained through next. The caller hashes the key
// (hashSpan, hashRecord) and keeps each entry's values in arrays parallel to
// the entry numbers, which count up from 0 in the order entries are added.
//
// A slot is eight bytes, a tag from the key's hash and the key's last
// entry; the keys are kept by entry, and read only when a tag matches. So
// the slots of tens of thousands of keys stay in a CPU's second-level
// cache while the producers stream past, where slots holding the keys
// themselves (24 bytes for a record) did not.
type joinIndex[K comparable] struct {
	slots []joinSlot
	keys  []K     // entry → its key
	next  []int32 // entry → the entry added before it under the same key, +1; 0: none
	shift uint
	// filter sets two bits of one word for every key's hash (sixteen bits
	// or more a key): most probes find no key, and nearly all of those
	// (over 99%) are turned away by one word of a small array.
	filter []uint64
	fshift uint
}

type joinSlot struct {
	tag  uint32
	last int32 // the key's last entry +1; 0: empty slot
}

// newJoinIndex returns an index for up to n entries.
func newJoinIndex[K comparable](n int) *joinIndex[K] {
	size, shift := 8, uint(61)
	for size < 2*n {
		size <<= 1
		shift--
	}
	// size/8 words: eight bits a slot, sixteen or more a key.
	return &joinIndex[K]{slots: make([]joinSlot, size), keys: make([]K, 0, n), next: make([]int32, 0, n), shift: shift,
		filter: make([]uint64, size/8), fshift: shift + 3}
}

// bits returns the filter word of hash h and its two bits, taken from
// parts of h that the word and the slot are not.
func (x *joinIndex[K]) bits(h uint64) (word uint64, mask uint64) {
	return h >> x.fshift, 1<<(h>>32&63) | 1<<(h>>38&63)
}

// tag is the part of h a slot keeps.
func tag(h uint64) uint32 { return uint32(h >> 16) }

// add adds the next entry under k, whose hash is h.
func (x *joinIndex[K]) add(h uint64, k K) {
	e := int32(len(x.next)) + 1
	w, b := x.bits(h)
	x.filter[w] |= b
	x.keys = append(x.keys, k)
	mask := uint64(len(x.slots) - 1)
	t := tag(h)
	for i := h >> x.shift; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.last == 0 {
			*s = joinSlot{t, e}
			x.next = append(x.next, 0)
			return
		}
		if s.tag == t && x.keys[s.last-1] == k {
			x.next = append(x.next, s.last)
			s.last = e
			return
		}
	}
}

// last returns the last entry added under k (hash h) +1, or 0; the one
// added before entry e is next[e]-1 while next[e] > 0.
func (x *joinIndex[K]) last(h uint64, k K) int32 {
	if w, b := x.bits(h); x.filter[w]&b != b {
		return 0
	}
	mask := uint64(len(x.slots) - 1)
	t := tag(h)
	for i := h >> x.shift; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.last == 0 {
			return 0
		}
		if s.tag == t && x.keys[s.last-1] == k {
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
