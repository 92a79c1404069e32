package file

import (
	"time"
	"unicode/utf8"

	"github.com/ktrace-dev/ktrace/trace"
)

// fastTrace decodes and converts a snapshot's trace record ({"t":{...}})
// without reflection: decoding is most of the time `ktrace graph --file`
// takes, and encoding/json spends it finding fields, checking the line
// twice and allocating strings for IDs that are parsed and dropped. It
// takes the form SnapshotWriter writes — the exact field names, strings
// without escapes, integers, valid IDs — and reports ok=false for anything
// else (resource records, escapes, null, unknown fields, bad JSON or IDs),
// which the caller then gives to encoding/json and convertTrace, whose
// answer and errors stand. On every line it accepts, it gives what they
// would, laid out the same way (a trace's attributes and refs in one block
// each).
//
// Short strings (operation names, attribute names and values) are shared
// through strs, so a trace holds one copy of each.
func fastTrace(line []byte, strs *trace.Strings) (*decodedTrace, bool) {
	s := scanner{b: line, strs: strs}
	if !s.lit('{') || !s.key("t") {
		return nil, false
	}
	var (
		id     []byte
		total  int64
		more   bool
		spans  []trace.Span
		res    []int
		attrs  trace.Attributes
		refs   []trace.Ref
		ranges []int32 // per span: its attributes' and refs' bounds in attrs and refs
	)
	ok := s.object(func(k []byte) (ok bool) {
		switch string(k) {
		case "id":
			id, ok = s.rawString()
		case "n":
			total, ok = s.int(0, 1<<31-1)
		case "more":
			more, ok = s.bool()
		case "spans":
			spans, res, attrs, refs, ranges = []trace.Span{}, []int{}, attrs[:0], refs[:0], ranges[:0]
			ok = s.list(func() bool {
				spans, res, ranges = append(spans, trace.Span{}), append(res, 0), append(ranges, 0, 0, 0, 0)
				n := len(spans) - 1
				return s.span(&spans[n], &res[n], &attrs, &refs, ranges[4*n:])
			})
		}
		return ok
	})
	if !ok || !s.lit('}') {
		return nil, false
	}
	s.ws()
	if s.i != len(s.b) || spans == nil {
		return nil, false
	}
	hi, lo, ok := hexID(id, 32)
	if !ok {
		return nil, false
	}
	tid := trace.TraceID{High: hi, Low: lo}
	for i := range spans {
		sp := &spans[i]
		sp.TraceID = tid
		r := ranges[4*i:]
		if r[1] > r[0] {
			sp.Attributes = attrs[r[0]:r[1]:r[1]]
		}
		if r[3] > r[2] {
			sp.Refs = refs[r[2]:r[3]:r[3]]
		}
	}
	return &decodedTrace{t: trace.Trace{ID: tid, Spans: spans}, res: res, total: int(total), more: more}, true
}

// hexID reads 1 to max hex digits (either case) as ParseTraceID and
// ParseSpanID do; ok is false for anything they refuse, zero included.
func hexID(b []byte, max int) (hi, lo uint64, ok bool) {
	if len(b) == 0 || len(b) > max {
		return 0, 0, false
	}
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, 0, false
		}
		hi = hi<<4 | lo>>60
		lo = lo<<4 | uint64(d)
	}
	return hi, lo, hi != 0 || lo != 0
}

type scanner struct {
	b    []byte
	i    int
	strs *trace.Strings
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// lit consumes c after any whitespace.
func (s *scanner) lit(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// key consumes "name":.
func (s *scanner) key(name string) bool {
	k, ok := s.rawString()
	return ok && string(k) == name && s.lit(':')
}

// rawString consumes a string with no escapes and returns its bytes.
func (s *scanner) rawString() ([]byte, bool) {
	if !s.lit('"') {
		return nil, false
	}
	start, ascii := s.i, true
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			raw := s.b[start:s.i]
			s.i++
			if !ascii && !utf8.Valid(raw) {
				return nil, false // encoding/json would replace the bad bytes
			}
			return raw, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= 0x80:
			ascii = false
		}
	}
	return nil, false
}

// str consumes a string; shared says it may be shared through strs.
func (s *scanner) str(shared bool) (string, bool) {
	raw, ok := s.rawString()
	if !ok {
		return "", false
	}
	if !shared {
		return string(raw), true
	}
	return s.strs.Bytes(raw), true
}

// int consumes an integer in [min, max] written as JSON writes one.
func (s *scanner) int(min, max int64) (int64, bool) {
	s.ws()
	neg := s.i < len(s.b) && s.b[s.i] == '-'
	if neg {
		s.i++
	}
	start := s.i
	var n uint64
	for ; s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9'; s.i++ {
		if n > (1<<63)/10 {
			return 0, false
		}
		n = n*10 + uint64(s.b[s.i]-'0')
	}
	digits := s.i - start
	if digits == 0 || digits > 19 || (digits > 1 && s.b[start] == '0') || n > 1<<63 {
		return 0, false
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			return 0, false // a float: encoding/json refuses it for an integer field
		}
	}
	v := int64(n) // 1<<63 wraps to the minimum, wanted only when negative
	if neg {
		v = -v
	} else if n == 1<<63 {
		return 0, false
	}
	if v < min || v > max {
		return 0, false
	}
	return v, true
}

func (s *scanner) bool() (bool, bool) {
	s.ws()
	switch {
	case len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "true":
		s.i += 4
		return true, true
	case len(s.b)-s.i >= 5 && string(s.b[s.i:s.i+5]) == "false":
		s.i += 5
		return false, true
	}
	return false, false
}

// strings consumes an array of exactly len(out) strings into out.
func (s *scanner) strings(out []string, shared bool) bool {
	if !s.lit('[') {
		return false
	}
	for j := range out {
		if j > 0 && !s.lit(',') {
			return false
		}
		var ok bool
		if out[j], ok = s.str(shared); !ok {
			return false
		}
	}
	return s.lit(']')
}

// rawStrings consumes an array of exactly len(out) strings without
// copying them.
func (s *scanner) rawStrings(out [][]byte) bool {
	j := 0
	return s.list(func() bool {
		if j == len(out) {
			return false
		}
		var ok bool
		out[j], ok = s.rawString()
		j++
		return ok
	}) && j == len(out)
}

// list consumes an array, calling elem to consume each element.
func (s *scanner) list(elem func() bool) bool { return s.seq('[', ']', elem) }

// object consumes an object, calling field with each key to consume its
// value; field refuses a key it does not know.
func (s *scanner) object(field func(k []byte) bool) bool {
	return s.seq('{', '}', func() bool {
		k, ok := s.rawString()
		return ok && s.lit(':') && field(k)
	})
}

// seq consumes open, items separated by commas, and close.
func (s *scanner) seq(open, close byte, item func() bool) bool {
	if !s.lit(open) {
		return false
	}
	for first := true; ; first = false {
		if s.lit(close) {
			return true
		}
		if (!first && !s.lit(',')) || !item() {
			return false
		}
	}
}

// span consumes a span object into sp, its resource id into res, and its
// attributes and refs onto attrs and refs, noting their bounds in r.
func (s *scanner) span(sp *trace.Span, res *int, attrs *trace.Attributes, refs *[]trace.Ref, r []int32) bool {
	var start int64
	seenID := false
	ok := s.object(func(k []byte) (ok bool) {
		if len(k) != 1 {
			return false
		}
		var n int64
		switch k[0] {
		case 'i':
			var raw []byte
			var id uint64
			if raw, ok = s.rawString(); ok {
				_, id, ok = hexID(raw, 16)
				sp.SpanID, seenID = trace.SpanID(id), ok
			}
		case 'o':
			sp.Operation, ok = s.str(true)
		case 'm':
			sp.StatusMessage, ok = s.str(true)
		case 'k':
			n, ok = s.int(0, 255)
			sp.Kind = trace.Kind(n)
		case 's':
			start, ok = s.int(-1<<63, 1<<63-1)
		case 'd':
			n, ok = s.int(-1<<63, 1<<63-1)
			sp.Duration = time.Duration(n)
		case 'p':
			n, ok = s.int(-1<<63, 1<<63-1)
			*res = int(n)
		case 'e':
			sp.Error, ok = s.bool()
		case 'r':
			r[2] = int32(len(*refs))
			ok = s.list(func() bool {
				var f [3][]byte
				if !s.rawStrings(f[:]) {
					return false
				}
				ref := trace.Ref{Type: trace.RefParent}
				if string(f[0]) == "link" {
					ref.Type = trace.RefLink
				}
				hi, lo, ok1 := hexID(f[1], 32)
				_, sid, ok2 := hexID(f[2], 16)
				ref.TraceID, ref.SpanID = trace.TraceID{High: hi, Low: lo}, trace.SpanID(sid)
				*refs = append(*refs, ref)
				return ok1 && ok2
			})
			r[3] = int32(len(*refs))
		case 'a':
			r[0] = int32(len(*attrs))
			ok = s.list(func() bool {
				var kv [2]string
				if !s.strings(kv[:], true) {
					return false
				}
				*attrs = append(*attrs, trace.Attribute{Key: kv[0], Value: kv[1]})
				return true
			})
			r[1] = int32(len(*attrs))
		}
		return ok
	})
	sp.Start = time.Unix(0, start).UTC()
	return ok && seenID
}
