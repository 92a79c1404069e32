package trace

import "strings"

// Resources hands out one shared *Resource per distinct (service,
// attributes) pair, so a million spans of one process hold one resource.
// Once MaxResources distinct resources are held, new ones are handed out
// unshared: a reader that runs for weeks (ktrace stream) meets every
// process that ever started, and the table must not grow with them. The
// zero value is ready to use; it is not safe for concurrent use.
type Resources struct {
	m map[string]*Resource
	// encoded holds resources by the bytes they were read from (Encoded).
	encoded map[string]*Resource
}

// MaxResources bounds Resources.
const MaxResources = 1 << 12

// Get returns the shared resource equal to (service, attrs). It takes
// ownership of attrs.
func (r *Resources) Get(service string, attrs Attributes) *Resource {
	if r.m == nil {
		r.m = make(map[string]*Resource)
	}
	var b strings.Builder
	b.WriteString(service)
	for _, a := range attrs {
		b.WriteByte(0)
		b.WriteString(a.Key)
		b.WriteByte(1)
		b.WriteString(a.Value)
	}
	k := b.String()
	if res, ok := r.m[k]; ok {
		return res
	}
	res := &Resource{Service: service, Attributes: attrs}
	if len(r.m) < MaxResources {
		r.m[k] = res
	}
	return res
}

// Encoded returns the resource read before from the very bytes enc (a
// reader's encoding of it, such as an OTLP Resource message), if a reader
// kept it with KeepEncoded: a reader that meets the same process's
// resource in every record need not read it again.
func (r *Resources) Encoded(enc []byte) (*Resource, bool) {
	res, ok := r.encoded[string(enc)]
	return res, ok
}

// KeepEncoded notes res as read from enc, while fewer than MaxResources
// are noted.
func (r *Resources) KeepEncoded(enc []byte, res *Resource) {
	if r.encoded == nil {
		r.encoded = make(map[string]*Resource)
	}
	if len(r.encoded) < MaxResources {
		r.encoded[string(enc)] = res
	}
}

// Strings shares equal short strings among the spans a reader decodes:
// operation names, attribute names and the usual attribute values repeat
// from span to span, so a set holds one copy of each, and code that meets a
// name again can know it by its address (internal/engine does). Strings
// longer than MaxShared bytes are not shared, and once MaxStrings distinct
// strings are held new ones are no longer kept (offsets and IDs never
// repeat; the table must not grow with the input). The zero value is ready
// to use; it is not safe for concurrent use.
type Strings struct {
	m map[string]string
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
	if v, ok := s.m[string(b)]; ok {
		return v
	}
	return s.keep(string(b))
}

// Get returns the shared copy of v, or v.
func (s *Strings) Get(v string) string {
	if len(v) > MaxShared {
		return v
	}
	if w, ok := s.m[v]; ok {
		return w
	}
	return s.keep(v)
}

func (s *Strings) keep(v string) string {
	if s.m == nil {
		s.m = make(map[string]string)
	}
	if len(s.m) < MaxStrings {
		s.m[v] = v
	}
	return v
}
