package file

import "unicode/utf8"

// fastTrace decodes a snapshot's trace record ({"t":{...}}) without
// reflection: decoding is most of the time `ktrace graph --file` takes, and
// encoding/json spends it finding fields and checking the line twice. It
// takes the form SnapshotWriter writes — the exact field names, strings
// without escapes, integers — and reports ok=false for anything else
// (resource records, escapes, null, unknown fields, bad JSON), which the
// caller then gives to encoding/json, whose answer and errors stand. On
// every line it accepts, it gives what encoding/json would.
//
// Strings of up to 64 bytes are shared through strs (attribute names and
// the usual values repeat from span to span), so a trace holds one copy of
// each.
func fastTrace(line []byte, strs map[string]string) (st *snapTrace, ok bool) {
	s := scanner{b: line, strs: strs}
	if !s.lit('{') || !s.key("t") {
		return nil, false
	}
	st = &snapTrace{}
	ok = s.object(func(k []byte) (ok bool) {
		switch string(k) {
		case "id":
			st.ID, ok = s.str(false)
		case "spans":
			st.Spans, ok = s.spans()
		}
		return ok
	})
	if !ok || !s.lit('}') {
		return nil, false
	}
	s.ws()
	return st, s.i == len(s.b)
}

type scanner struct {
	b    []byte
	i    int
	strs map[string]string
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
	if !shared || len(raw) > 64 {
		return string(raw), true
	}
	if v, ok := s.strs[string(raw)]; ok {
		return v, true
	}
	v := string(raw)
	if len(s.strs) < 1<<14 {
		s.strs[v] = v
	}
	return v, true
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

func (s *scanner) spans() ([]snapSpan, bool) {
	out := []snapSpan{}
	ok := s.list(func() bool {
		out = append(out, snapSpan{})
		return s.span(&out[len(out)-1])
	})
	return out, ok
}

func (s *scanner) span(sp *snapSpan) bool {
	return s.object(func(k []byte) (ok bool) {
		if len(k) != 1 {
			return false
		}
		var n int64
		switch k[0] {
		case 'i':
			sp.I, ok = s.str(false)
		case 'o':
			sp.O, ok = s.str(true)
		case 'm':
			sp.M, ok = s.str(true)
		case 'k':
			n, ok = s.int(0, 255)
			sp.K = uint8(n)
		case 's':
			sp.S, ok = s.int(-1<<63, 1<<63-1)
		case 'd':
			sp.D, ok = s.int(-1<<63, 1<<63-1)
		case 'p':
			n, ok = s.int(-1<<63, 1<<63-1)
			sp.P = int(n)
		case 'e':
			sp.E, ok = s.bool()
		case 'r':
			sp.R = [][3]string{}
			ok = s.list(func() bool {
				sp.R = append(sp.R, [3]string{})
				return s.strings(sp.R[len(sp.R)-1][:], false) // parsed into IDs, then dropped
			})
		case 'a':
			sp.A = [][2]string{}
			ok = s.list(func() bool {
				sp.A = append(sp.A, [2]string{})
				return s.strings(sp.A[len(sp.A)-1][:], true)
			})
		}
		return ok
	})
}
