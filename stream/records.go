package stream

// The records of the topic gathered: decoded, cut per trace, or skipped.

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/source/file"
	sj "github.com/ktrace-dev/ktrace/source/jaeger"
	"github.com/ktrace-dev/ktrace/trace"
)

// decoding is what decoding records shares from record to record: one
// for each goroutine that decodes.
type decoding struct {
	res    *trace.Resources
	strs   *trace.Strings
	jaeger *sj.SpanDecoder
	split  *engine.OTLPSplitter
}

// decode decodes a record of the span topic (or, as EncodingProto, of the
// spans topic).
func decode(value []byte, encoding string, d decoding) ([]trace.Trace, error) {
	switch encoding {
	case EncodingJSON:
		var out []trace.Trace
		for t, err := range file.Traces(bytes.NewReader(value), "span record", d.res) {
			if err != nil {
				return nil, err
			}
			out = append(out, *t)
		}
		return out, nil
	case EncodingJaegerProto, EncodingJaegerJSON:
		decode := d.jaeger.Proto
		if encoding == EncodingJaegerJSON {
			decode = d.jaeger.JSON
		}
		s, err := decode(value)
		if err != nil {
			return nil, err
		}
		return []trace.Trace{{ID: s.TraceID, Spans: []trace.Span{s}}}, nil
	}
	if ts, ok := engine.DecodeOTLP(value, d.res, d.strs); ok {
		return ts, nil
	}
	return file.OTLPProto(value, d.res, d.strs) // what the fast path declines, and why it is bad
}

// pieces cuts a record into a piece of OTLP protobuf per trace: as the
// spans came, without decoding them, where the record has the plain form
// (engine.SplitOTLP; a bad span then fails in its trace's piece, when it
// is decoded), else decoded (which says what is wrong) and written again.
func pieces(value []byte, encoding string, d decoding) ([]engine.TracePiece, error) {
	if encoding == EncodingProto {
		if pieces, ok := d.split.Split(value); ok {
			return pieces, nil
		}
	}
	ts, err := decode(value, encoding, d)
	if err != nil {
		return nil, err
	}
	out := make([]engine.TracePiece, 0, len(ts))
	for _, t := range ts {
		data, err := file.MarshalOTLPProto([]trace.Trace{t})
		if err != nil {
			return nil, err
		}
		out = append(out, engine.TracePiece{ID: t.ID, Spans: len(t.Spans), Data: data})
	}
	return out, nil
}

// decoding is the decoding state of the goroutine that gathers traces.
func (m *member) decoding() decoding { return decoding{&m.res, &m.strs, &m.jaeger, &m.split} }

// spansHeader is the header in which the re-keying writes how many spans
// a record of the spans topic holds.
const spansHeader = "ktrace-spans"

// gathered cuts a record of the topic gathered into pieces: one of the
// spans topic, written by the re-keying, is one already (its key the
// trace's ID, its spans counted in a header), and is taken as it is (a
// piece that is not what its key says fails when its trace is decoded);
// any other is cut by pieces. The re-keying's marks hold none.
func (m *member) gathered(r *kgo.Record) ([]engine.TracePiece, error) {
	if _, mark := m.rekeyMark(r); mark {
		return nil, nil
	}
	if m.cfg.ByTraceID {
		return pieces(r.Value, m.cfg.Encoding, m.decoding())
	}
	if p, ok := rekeyed(r); ok {
		return []engine.TracePiece{p}, nil
	}
	return pieces(r.Value, EncodingProto, m.decoding())
}

// rekeyed reads a record of the spans topic as the re-keying wrote it:
// false when its key is not a trace ID or its header is missing.
func rekeyed(r *kgo.Record) (engine.TracePiece, bool) {
	id, err := trace.ParseTraceID(string(r.Key))
	if err != nil {
		return engine.TracePiece{}, false
	}
	for _, h := range r.Headers {
		if h.Key == spansHeader {
			n, err := strconv.Atoi(string(h.Value))
			return engine.TracePiece{ID: id, Spans: n, Data: r.Value}, err == nil && n > 0
		}
	}
	return engine.TracePiece{}, false
}

func pieceSpans(pieces []engine.TracePiece) int {
	n := 0
	for _, p := range pieces {
		n += p.Spans
	}
	return n
}

// poison counts an undecodable record, logs it once per partition, and
// skips it.
func (m *member) poison(r *kgo.Record, err error) {
	m.metrics.undecodable.Inc()
	key := fmt.Sprintf("%s/%d", r.Topic, r.Partition)
	m.mu.Lock()
	first := !m.poisoned[key]
	m.poisoned[key] = true
	m.mu.Unlock()
	if first {
		encoding, hint := EncodingProto, "" // the internal topics'
		if r.Topic == m.cfg.Topic {
			encoding = m.cfg.Encoding
			if other := decodesAs(r.Value, encoding); other != "" {
				hint = fmt.Sprintf("; it decodes as %s: is --encoding right?", other)
			}
		}
		m.log.Printf("skipping a record at %s offset %d that does not decode as %s: %v%s (later ones on this partition are counted, not logged)",
			key, r.Offset, encoding, err, hint)
	}
}

// decodesAs is the first encoding other than not that value decodes as,
// with at least one span ("": none), so that a member given the wrong
// --encoding says which is right. It decodes with state of its own: the
// member's belongs to the goroutine that gathers.
func decodesAs(value []byte, not string) string {
	for _, enc := range Encodings {
		if enc == not {
			continue
		}
		d := decoding{&trace.Resources{}, &trace.Strings{}, &sj.SpanDecoder{}, &engine.OTLPSplitter{}}
		if ts, err := decode(value, enc, d); err == nil && len(ts) > 0 && len(ts[0].Spans) > 0 {
			return enc
		}
	}
	return ""
}
