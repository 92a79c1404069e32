package trace

import "strings"

// Resources hands out one shared *Resource per distinct (service,
// attributes) pair, so a million spans of one process hold one resource.
// The zero value is ready to use; it is not safe for concurrent use.
type Resources struct {
	m map[string]*Resource
}

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
	r.m[k] = res
	return res
}
