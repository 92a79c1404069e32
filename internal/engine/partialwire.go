package engine

// The partial format: the flattened state (wirePartial) written field by
// field, in the order the types declare them, as varints, strings and
// fixed-size IDs, every list behind its length. It replaced encoding/gob
// (version 1), which spent more time writing a segment's partial than the
// analysis spent making it, and wrote every type's description into every
// partial and pairing part. Version 3 added edges' rounded samples
// (wireEdge.Rounded). Versions 1 and 2 are still read, for results
// published before.
//
// Reading checks every length against the bytes left, so no input makes
// it allocate more than the input's size; fromWire then checks every
// number that indexes something. A field added to a wire type must be
// added here: TestPartialWireFields fails until it is.

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/trace"
)

// wireWriter appends the format's values to b.
type wireWriter struct{ b []byte }

func (w *wireWriter) uint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *wireWriter) int(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *wireWriter) str(s string)  { w.uint(uint64(len(s))); w.b = append(w.b, s...) }

func (w *wireWriter) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

func (w *wireWriter) traceID(id trace.TraceID) {
	w.b = binary.BigEndian.AppendUint64(w.b, id.High)
	w.b = binary.BigEndian.AppendUint64(w.b, id.Low)
}

func (w *wireWriter) span(s wireSpan) {
	w.traceID(s.Trace)
	w.b = binary.BigEndian.AppendUint64(w.b, uint64(s.Span))
}

func (w *wireWriter) ref(r wireRef) { w.span(r.Span); w.str(r.Service) }

// list writes a list's length, then each element with write.
func list[T any](w *wireWriter, l []T, write func(T)) {
	w.uint(uint64(len(l)))
	for _, v := range l {
		write(v)
	}
}

func (w *wireWriter) strs(l []string)       { list(w, l, w.str) }
func (w *wireWriter) spans(l []wireSpan)    { list(w, l, w.span) }
func (w *wireWriter) ids(l []trace.TraceID) { list(w, l, w.traceID) }

// sizeHint is about the size of p written, so that the buffer is made
// once: the lists of IDs are most of it.
func (p *wirePartial) sizeHint() int {
	n := 1024 + 17*(len(p.Incomplete)+len(p.TraceIDs)) + 25*len(p.Consumers) + 40*len(p.Producers) +
		64*(len(p.Pending)+len(p.Roots)+len(p.Keyed)+len(p.ConsRoots)+len(p.Linked))
	for _, e := range p.Edges {
		n += 32 + 4*len(e.Latencies)
	}
	return n
}

func (w *wireWriter) partial(p *wirePartial) {
	w.int(int64(p.SkewTolerance))
	w.int(int64(p.Traces))
	w.int(int64(p.Spans))
	w.int(int64(p.GraphTraces))
	w.int(int64(p.GraphSpans))
	w.ids(p.Incomplete)
	w.ids(p.TraceIDs)
	list(w, p.Nodes, func(n wireNode) {
		w.uint(uint64(n.Kind))
		w.str(n.Name)
		w.int(int64(n.Spans))
		w.int(int64(n.Errors))
		w.strs(n.Instances)
		w.strs(n.Operations)
		list(w, n.Partitions, func(v int32) { w.int(int64(v)) })
		w.strs(n.Samplers)
	})
	list(w, p.Edges, func(e wireEdge) {
		w.int(int64(e.From))
		w.int(int64(e.To))
		w.uint(uint64(e.Kind))
		w.uint(uint64(e.Relation))
		w.str(e.Group)
		w.int(int64(e.Count))
		w.int(int64(e.Errors))
		w.strs(e.ClientIDs)
		list(w, e.Latencies, w.int)
		list(w, e.Rounded, func(c wireCount) { w.int(c.Value); w.int(int64(c.Count)) })
	})
	list(w, p.Producers, func(pr wireProducer) {
		w.span(pr.Span)
		w.int(pr.Start)
		w.int(pr.Offset)
		w.int(int64(pr.Partition))
		w.int(int64(pr.Service))
		w.int(int64(pr.Topic))
	})
	list(w, p.MsgIDs, func(m wireMsgID) { w.int(int64(m.Producer)); w.str(m.ID) })
	list(w, p.Pending, func(pc wirePending) {
		w.ref(pc.Ref)
		w.int(int64(pc.Node))
		w.int(int64(pc.Topic))
		w.str(pc.Group)
		w.str(pc.Client)
		w.str(pc.MsgID)
		w.int(int64(pc.Partition))
		w.int(pc.Offset)
		w.int(pc.Start)
		w.bool(pc.Err)
		w.spans(pc.Links)
		w.bool(pc.MissingParent)
	})
	list(w, p.Roots, func(r wireRoot) {
		w.ref(r.Ref)
		w.int(int64(r.Node))
		w.int(int64(r.Topic))
		w.str(r.Key)
		w.str(r.Client)
		w.int(r.Start)
		w.int(r.Dur)
		w.bool(r.Err)
	})
	list(w, p.Keyed, func(k wireKeyed) {
		w.str(k.Service)
		w.str(k.Key)
		w.ref(k.Ref)
		w.str(k.Topic)
		w.int(k.Start)
	})
	for _, fs := range p.Findings {
		list(w, fs, func(f wireFinding) {
			w.str(string(f.Rule))
			w.str(f.A)
			w.str(f.B)
			w.str(f.C)
			w.finding(f.Finding)
			w.traceID(f.Last)
			w.bool(f.First)
		})
	}
	list(w, p.ConsRoots, func(r wireConsRoot) {
		w.span(r.Span)
		w.str(r.Service)
		w.str(r.Topic)
		w.bool(r.Server)
		w.int(int64(r.Pending))
	})
	list(w, p.Linked, func(l wireLinked) {
		w.traceID(l.Trace)
		w.str(string(l.Rule))
		w.str(l.A)
		w.str(l.B)
		w.str(l.C)
		w.spans(l.Links)
		w.bool(l.Counted)
	})
	w.spans(p.Consumers)
}

func (w *wireWriter) finding(f analyze.Finding) {
	w.str(string(f.Rule))
	w.str(f.Where)
	w.str(f.Service)
	w.str(f.Topic)
	w.strs(f.From)
	w.str(f.Group)
	w.int(int64(f.Occurrences))
	w.int(int64(f.Traces))
	w.ids(f.Examples)
	w.int(int64(f.MaxSkew))
}

// wireReader reads what wireWriter wrote. The first error is kept and
// every later read gives zero values.
type wireReader struct {
	b       []byte
	err     error
	version byte // of the format
}

var errShort = errors.New("cut short")

func (r *wireReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *wireReader) uint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(errShort)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *wireReader) int() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(errShort)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// i32 and count read an int64 that must fit.
func (r *wireReader) i32() int32 {
	v := r.int()
	if v != int64(int32(v)) {
		r.fail(errors.New("number out of range"))
		return 0
	}
	return int32(v)
}

func (r *wireReader) u8() uint8 {
	v := r.uint()
	if v > 255 {
		r.fail(errors.New("number out of range"))
		return 0
	}
	return uint8(v)
}

// length reads a length of things at least min bytes each: never more
// than the bytes left hold.
func (r *wireReader) length(min int) int {
	n := r.uint()
	if n > uint64(len(r.b)/min) {
		r.fail(errShort)
		return 0
	}
	return int(n)
}

func (r *wireReader) take(n int) []byte {
	if n > len(r.b) {
		r.fail(errShort)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *wireReader) str() string { return string(r.take(r.length(1))) }

func (r *wireReader) bool() bool {
	b := r.take(1)
	if len(b) == 0 {
		return false
	}
	if b[0] > 1 {
		r.fail(errors.New("bad boolean"))
	}
	return b[0] == 1
}

func (r *wireReader) traceID() trace.TraceID {
	b := r.take(16)
	if len(b) < 16 {
		return trace.TraceID{}
	}
	return trace.TraceID{High: binary.BigEndian.Uint64(b), Low: binary.BigEndian.Uint64(b[8:])}
}

func (r *wireReader) span() wireSpan {
	id := r.traceID()
	b := r.take(8)
	if len(b) < 8 {
		return wireSpan{}
	}
	return wireSpan{id, trace.SpanID(binary.BigEndian.Uint64(b))}
}

func (r *wireReader) ref() wireRef { return wireRef{r.span(), r.str()} }

// readList reads a list of things at least min bytes each; empty, nil
// (as gob read them).
func readList[T any](r *wireReader, min int, read func() T) []T {
	n := r.length(min)
	if n == 0 {
		return nil
	}
	l := make([]T, n)
	for i := range l {
		l[i] = read()
	}
	if r.err != nil {
		return nil
	}
	return l
}

func (r *wireReader) strs() []string           { return readList(r, 1, r.str) }
func (r *wireReader) spans() []wireSpan        { return readList(r, 24, r.span) }
func (r *wireReader) ids() []trace.TraceID     { return readList(r, 16, r.traceID) }
func (r *wireReader) count() int               { return int(r.int()) }
func (r *wireReader) duration() time.Duration  { return time.Duration(r.int()) }
func (r *wireReader) rule() analyze.Rule       { return analyze.Rule(r.str()) }
func (r *wireReader) nodeKind() graph.NodeKind { return graph.NodeKind(r.u8()) }
func (r *wireReader) edgeKind() graph.EdgeKind { return graph.EdgeKind(r.u8()) }
func (r *wireReader) relation() graph.Relation { return graph.Relation(r.u8()) }

func (r *wireReader) partial() (*wirePartial, error) {
	p := &wirePartial{}
	p.SkewTolerance = r.duration()
	p.Traces, p.Spans, p.GraphTraces, p.GraphSpans = r.count(), r.count(), r.count(), r.count()
	p.Incomplete = r.ids()
	p.TraceIDs = r.ids()
	p.Nodes = readList(r, 8, func() wireNode {
		return wireNode{Kind: r.nodeKind(), Name: r.str(), Spans: r.count(), Errors: r.count(), Instances: r.strs(), Operations: r.strs(),
			Partitions: readList(r, 1, r.i32), Samplers: r.strs()}
	})
	p.Edges = readList(r, 9, func() wireEdge {
		e := wireEdge{From: r.i32(), To: r.i32(), Kind: r.edgeKind(), Relation: r.relation(), Group: r.str(), Count: r.count(), Errors: r.count(),
			ClientIDs: r.strs(), Latencies: readList(r, 1, r.int)}
		if r.version >= 3 {
			e.Rounded = readList(r, 2, func() wireCount { return wireCount{Value: r.int(), Count: r.count()} })
		}
		return e
	})
	p.Producers = readList(r, 29, func() wireProducer {
		return wireProducer{Span: r.span(), Start: r.int(), Offset: r.int(), Partition: r.i32(), Service: r.i32(), Topic: r.i32()}
	})
	p.MsgIDs = readList(r, 2, func() wireMsgID { return wireMsgID{Producer: r.count(), ID: r.str()} })
	p.Pending = readList(r, 36, func() wirePending {
		return wirePending{Ref: r.ref(), Node: r.i32(), Topic: r.i32(), Group: r.str(), Client: r.str(), MsgID: r.str(), Partition: r.i32(),
			Offset: r.int(), Start: r.int(), Err: r.bool(), Links: r.spans(), MissingParent: r.bool()}
	})
	p.Roots = readList(r, 32, func() wireRoot {
		return wireRoot{Ref: r.ref(), Node: r.i32(), Topic: r.i32(), Key: r.str(), Client: r.str(), Start: r.int(), Dur: r.int(), Err: r.bool()}
	})
	p.Keyed = readList(r, 29, func() wireKeyed {
		return wireKeyed{Service: r.str(), Key: r.str(), Ref: r.ref(), Topic: r.str(), Start: r.int()}
	})
	for i := range p.Findings {
		p.Findings[i] = readList(r, 31, func() wireFinding {
			return wireFinding{Rule: r.rule(), A: r.str(), B: r.str(), C: r.str(), Finding: r.finding(), Last: r.traceID(), First: r.bool()}
		})
	}
	p.ConsRoots = readList(r, 28, func() wireConsRoot {
		return wireConsRoot{Span: r.span(), Service: r.str(), Topic: r.str(), Server: r.bool(), Pending: r.i32()}
	})
	p.Linked = readList(r, 22, func() wireLinked {
		return wireLinked{Trace: r.traceID(), Rule: r.rule(), A: r.str(), B: r.str(), C: r.str(), Links: r.spans(), Counted: r.bool()}
	})
	p.Consumers = r.spans()
	if r.err == nil && len(r.b) > 0 {
		r.err = errors.New("bytes after the partial")
	}
	if r.err != nil {
		return nil, r.err
	}
	return p, nil
}

func (r *wireReader) finding() analyze.Finding {
	return analyze.Finding{Rule: r.rule(), Where: r.str(), Service: r.str(), Topic: r.str(), From: r.strs(), Group: r.str(),
		Occurrences: r.count(), Traces: r.count(), Examples: r.ids(), MaxSkew: r.duration()}
}
