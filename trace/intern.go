package trace

import "strings"

// kept is a table bounded to max entries that keeps what is in use, for a
// reader that runs for weeks (ktrace stream): it meets every process that
// ever started and every offset ever written, and must neither grow with
// them nor, once full, stop sharing the names it meets later. It holds
// two generations: an entry found in the older moves to the newer, and
// when the newer holds max/2 entries the older is dropped. An entry met
// at least once in every max/2 new ones stays; one met once ages out.
type kept[V any] struct {
	cur, old map[string]V
}

// lookup returns the value held for k, moving it to the newer generation.
// Its callers index with string(b) in place, which does not copy b.
func (t *kept[V]) lookup(k []byte, max int) (V, bool) {
	if v, ok := t.cur[string(k)]; ok {
		return v, true
	}
	v, ok := t.old[string(k)]
	if ok {
		t.promote(string(k), v, max)
	}
	return v, ok
}

// lookupString is lookup for a key held as a string.
func (t *kept[V]) lookupString(k string, max int) (V, bool) {
	if v, ok := t.cur[k]; ok {
		return v, true
	}
	v, ok := t.old[k]
	if ok {
		t.promote(k, v, max)
	}
	return v, ok
}

// promote moves k's value v from the older generation to the newer.
func (t *kept[V]) promote(k string, v V, max int) {
	delete(t.old, k)
	t.put(k, v, max)
}

// put holds v for k in the newer generation.
func (t *kept[V]) put(k string, v V, max int) {
	if len(t.cur) >= max/2 || t.cur == nil {
		t.old, t.cur = t.cur, make(map[string]V)
	}
	t.cur[k] = v
}

// len is how many entries are held.
func (t *kept[V]) len() int { return len(t.cur) + len(t.old) }

// Resources hands out one shared *Resource per distinct (service,
// attributes) pair, so a million spans of one process hold one resource.
// It holds at most MaxResources of them, those met lately (kept). The
// zero value is ready to use; it is not safe for concurrent use.
type Resources struct {
	m kept[*Resource]
	// encoded holds resources by the bytes they were read from (Encoded).
	encoded kept[*Resource]
}

// MaxResources bounds Resources.
const MaxResources = 1 << 12

// Get returns the shared resource equal to (service, attrs). It takes
// ownership of attrs.
func (r *Resources) Get(service string, attrs Attributes) *Resource {
	var b strings.Builder
	b.WriteString(service)
	for _, a := range attrs {
		b.WriteByte(0)
		b.WriteString(a.Key)
		b.WriteByte(1)
		b.WriteString(a.Value)
	}
	k := b.String()
	if res, ok := r.m.lookupString(k, MaxResources); ok {
		return res
	}
	res := &Resource{Service: service, Attributes: attrs}
	r.m.put(k, res, MaxResources)
	return res
}

// Encoded returns the resource read before from the very bytes enc (a
// reader's encoding of it, such as an OTLP Resource message), if a reader
// kept it with KeepEncoded: a reader that meets the same process's
// resource in every record need not read it again.
func (r *Resources) Encoded(enc []byte) (*Resource, bool) {
	return r.encoded.lookup(enc, MaxResources)
}

// KeepEncoded notes res as read from enc.
func (r *Resources) KeepEncoded(enc []byte, res *Resource) {
	r.encoded.put(string(enc), res, MaxResources)
}

// Strings shares equal short strings among the spans a reader decodes:
// operation names, attribute names and the usual attribute values repeat
// from span to span, so a set holds one copy of each, and code that meets a
// name again can know it by its address (internal/engine does). Strings
// longer than MaxShared bytes are not shared, and at most MaxStrings are
// held, those met lately (kept): offsets and IDs never repeat, and the
// table must not grow with the input. The zero value is ready to use; it
// is not safe for concurrent use.
type Strings struct {
	m kept[string]
	// attrs holds attributes by the bytes they were read from (Attribute).
	attrs kept[Attribute]
}

// Limits of Strings.
const (
	MaxShared  = 64
	MaxStrings = 1 << 14
)

// Bytes returns b as a string, shared when it may be.
func (s *Strings) Bytes(b []byte) string {
	if len(b) > MaxShared {
		return string(b)
	}
	if v, ok := s.m.lookup(b, MaxStrings); ok {
		return v
	}
	v := string(b)
	s.m.put(v, v, MaxStrings)
	return v
}

// Get returns the shared copy of v, or v.
func (s *Strings) Get(v string) string {
	if len(v) > MaxShared {
		return v
	}
	if w, ok := s.m.lookupString(v, MaxStrings); ok {
		return w
	}
	s.m.put(v, v, MaxStrings)
	return v
}

// Attribute returns the attribute read before from the very bytes enc (a
// reader's encoding of it, such as an OTLP KeyValue message), if a reader
// kept it with KeepAttribute: spans of one call site carry the same
// attributes, and a reader need not read them again.
func (s *Strings) Attribute(enc []byte) (Attribute, bool) {
	if len(enc) > 2*MaxShared {
		return Attribute{}, false
	}
	return s.attrs.lookup(enc, MaxStrings)
}

// KeepAttribute notes a as read from enc, if its encoding is short.
func (s *Strings) KeepAttribute(enc []byte, a Attribute) {
	if len(enc) <= 2*MaxShared {
		s.attrs.put(string(enc), a, MaxStrings)
	}
}
