package trace

import (
	"strings"
	"time"
)

// Kind is a span's kind, as OpenTelemetry defines it.
type Kind uint8

// Span kinds.
const (
	KindUnspecified Kind = iota
	KindInternal
	KindServer
	KindClient
	KindProducer
	KindConsumer
)

var kindNames = [...]string{"unspecified", "internal", "server", "client", "producer", "consumer"}

// String returns the lowercase name Jaeger uses in its span.kind tag.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unspecified"
}

// ParseKind reads a kind from Jaeger's span.kind tag or OTLP's enum name
// ("SPAN_KIND_SERVER"). Unknown names give KindUnspecified.
func ParseKind(s string) Kind {
	if k, ok := kindNamed(s); ok { // the usual spelling, without changing case
		return k
	}
	k, _ := kindNamed(strings.ToLower(strings.TrimPrefix(strings.ToUpper(s), "SPAN_KIND_")))
	return k
}

// kindNamed finds the kind whose String is s.
func kindNamed(s string) (Kind, bool) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), true
		}
	}
	return KindUnspecified, false
}

// RefType says how a span refers to another.
type RefType uint8

const (
	// RefParent is a parent (Jaeger CHILD_OF).
	RefParent RefType = iota
	// RefLink is a span link (Jaeger FOLLOWS_FROM). It may point into another trace.
	RefLink
)

// String returns "parent" or "link".
func (r RefType) String() string {
	if r == RefLink {
		return "link"
	}
	return "parent"
}

// Ref is a reference from one span to another.
type Ref struct {
	Type    RefType
	TraceID TraceID
	SpanID  SpanID
	// Sampled is what the reference says of its span's sampling, where
	// the source says it (an OTLP link's W3C trace flags).
	Sampled Sampled
}

// Sampled says whether a referenced span was sampled, as far as known.
type Sampled uint8

// Sampled values.
const (
	SampledUnknown Sampled = iota
	SampledYes
	SampledNo
)

// Attribute is one key/value pair. Values are kept as their string form:
// ktrace compares and displays them, it never computes with them, and the
// numeric fields it needs (partition, offset) are parsed by the views.
type Attribute struct {
	Key   string
	Value string
}

// Attributes is an attribute list, in source order.
type Attributes []Attribute

// Get returns the value of the first attribute named key.
func (a Attributes) Get(key string) (string, bool) {
	for i := range a {
		if a[i].Key == key {
			return a[i].Value, true
		}
	}
	return "", false
}

// Sampler returns what a Jaeger client's sampler tags on a root span say,
// "TYPE PARAM" (sampler.type and sampler.param, e.g. "probabilistic 0.3"),
// or "" when the span carries no sampler.type. OpenTelemetry SDKs do not
// tag their spans so.
func (s *Span) Sampler() string {
	typ, ok := s.Attributes.Get("sampler.type")
	if !ok || typ == "" {
		return ""
	}
	param, _ := s.Attributes.Get("sampler.param")
	return strings.TrimSpace(typ + " " + param)
}

// Resource describes the process that emitted a span. Spans of one process
// share one *Resource; treat it as read-only.
type Resource struct {
	Service    string
	Attributes Attributes
}

// Instance returns the service instance: service.instance.id, else host.name,
// else "".
func (r *Resource) Instance() string {
	if r == nil {
		return ""
	}
	if v, ok := r.Attributes.Get("service.instance.id"); ok && v != "" {
		return v
	}
	v, _ := r.Attributes.Get("host.name")
	return v
}

// Span is one unit of work.
type Span struct {
	TraceID       TraceID
	SpanID        SpanID
	Operation     string
	Start         time.Time
	Duration      time.Duration
	StatusMessage string
	Refs          []Ref
	Attributes    Attributes
	Resource      *Resource
	Kind          Kind
	// Error is true when the span's status is error (OTLP status code 2,
	// Jaeger's error=true tag, or otel.status_code=ERROR).
	Error bool
	// The fields are in this order so that the two one-byte ones share
	// the last eight bytes: 152 bytes a span, not 160.
}

// Service returns the name of the service that emitted the span.
func (s *Span) Service() string {
	if s.Resource == nil {
		return ""
	}
	return s.Resource.Service
}

// Parent returns the span's first parent reference within its own trace.
func (s *Span) Parent() (SpanID, bool) {
	for _, r := range s.Refs {
		if r.Type == RefParent && r.TraceID == s.TraceID {
			return r.SpanID, true
		}
	}
	return 0, false
}

// HasLink reports whether the span has a span link.
func (s *Span) HasLink() bool {
	for _, r := range s.Refs {
		if r.Type == RefLink {
			return true
		}
	}
	return false
}

// Trace is the spans that share one trace ID, in no particular order.
type Trace struct {
	ID    TraceID
	Spans []Span
}

// Pack moves the trace's attributes and refs into one block each, shared by
// its spans: two allocations a trace instead of two a span, and a span's
// data near its neighbours' for whoever reads the trace next. Readers call
// it on what they decode.
func (t *Trace) Pack() {
	na, nr := 0, 0
	for i := range t.Spans {
		na += len(t.Spans[i].Attributes)
		nr += len(t.Spans[i].Refs)
	}
	attrs := make(Attributes, 0, na)
	refs := make([]Ref, 0, nr)
	for i := range t.Spans {
		s := &t.Spans[i]
		if len(s.Attributes) > 0 {
			from := len(attrs)
			attrs = append(attrs, s.Attributes...)
			s.Attributes = attrs[from:len(attrs):len(attrs)]
		}
		if len(s.Refs) > 0 {
			from := len(refs)
			refs = append(refs, s.Refs...)
			s.Refs = refs[from:len(refs):len(refs)]
		}
	}
}
