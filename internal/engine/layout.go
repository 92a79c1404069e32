package engine

import (
	"unsafe"

	"github.com/ktrace-dev/ktrace/trace"
)

// Spans of one shape — one instrumented call site — carry the same
// attribute names in the same order, and readers share those names'
// strings (trace.Strings). A layout remembers such a list of names by their
// addresses, with the position of each view field's name in it, so that
// the spans that repeat the list are read without looking each name up.

// A layout is one list of attribute names and where each field is in it.
// A list that names some field twice has none: which of its names gives
// the field depends on the values.
type layout struct {
	names []addr // the names' addresses and lengths, in order
	at    trace.Fields
}

const (
	layoutBits = 6
	// maxLayouts bounds the layouts an Index makes: where a source does
	// not share attribute names, every span brings new addresses, and
	// the layouts must not grow with the input.
	maxLayouts = 1 << 12
)

// layouts are an Index's layouts, found by their first name's address and
// their length.
type layouts struct {
	slots [1 << layoutBits]*layout
	made  int
}

// fields finds a's fields (as trace's ScanFields does) in v, through a's
// layout when it has one, and else makes one when it may.
func (ls *layouts) fields(a trace.Attributes, v *trace.Fields) {
	if len(a) == 0 {
		*v = trace.NoFields
		return
	}
	p := unsafe.StringData(a[0].Key)
	h := (uint64(uintptr(unsafe.Pointer(p)))*0x9E3779B97F4A7C15 ^ uint64(len(a))) * 0xC2B2AE3D27D4EB4F >> (64 - layoutBits)
	if l := ls.slots[h]; l != nil && len(l.names) == len(a) {
		// Every name is compared, the differences gathered with no branch
		// until the end: the list is usually the layout's.
		names := l.names[:len(a)]
		var diff uintptr
		for i := range a {
			k := a[i].Key
			diff |= uintptr(unsafe.Pointer(names[i].P)) ^ uintptr(unsafe.Pointer(unsafe.StringData(k))) | uintptr(names[i].N^len(k))
		}
		if diff == 0 {
			// A field's only name gives its value, empty or not: an
			// empty value reads as no value.
			*v = l.at
			return
		}
	}
	a.ScanFields(v)
	if ls.made < maxLayouts {
		if l := newLayout(a); l != nil {
			ls.slots[h] = l
			ls.made++
		}
	}
}

// newLayout returns a's layout, or nil when a names some field twice.
func newLayout(a trace.Attributes) *layout {
	l := &layout{names: make([]addr, len(a)), at: trace.NoFields}
	for i := range a {
		k := a[i].Key
		l.names[i] = addrOf(k)
		if f, ok := trace.FieldOf(k); ok {
			if l.at[f] >= 0 {
				return nil
			}
			l.at[f] = int32(i)
		}
	}
	return l
}
