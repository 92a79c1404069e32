package trace

import (
	"encoding/hex"
	"fmt"
	"strconv"
)

// TraceID is a 128-bit trace identifier. The zero value is not a valid ID.
type TraceID struct {
	High, Low uint64
}

// IsZero reports whether id is the zero (invalid) trace ID.
func (id TraceID) IsZero() bool { return id.High == 0 && id.Low == 0 }

// String returns the ID as 32 lowercase hex digits.
func (id TraceID) String() string {
	var b [16]byte
	putUint64(b[:8], id.High)
	putUint64(b[8:], id.Low)
	return hex.EncodeToString(b[:])
}

// ParseTraceID reads a trace ID of 1 to 32 hex digits (Jaeger drops leading
// zeros, OTLP writes all 32).
func ParseTraceID(s string) (TraceID, error) {
	if len(s) == 0 || len(s) > 32 {
		return TraceID{}, fmt.Errorf("invalid trace id %q: want 1 to 32 hex digits", s)
	}
	var id TraceID
	if len(s) > 16 {
		hi, err := strconv.ParseUint(s[:len(s)-16], 16, 64)
		if err != nil {
			return TraceID{}, fmt.Errorf("invalid trace id %q: not hex", s)
		}
		id.High = hi
		s = s[len(s)-16:]
	}
	lo, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return TraceID{}, fmt.Errorf("invalid trace id %q: not hex", s)
	}
	id.Low = lo
	if id.IsZero() {
		return TraceID{}, fmt.Errorf("invalid trace id %q: all zeros", s)
	}
	return id, nil
}

// SpanID is a 64-bit span identifier. Zero means "none".
type SpanID uint64

// String returns the ID as 16 lowercase hex digits.
func (id SpanID) String() string {
	var b [8]byte
	putUint64(b[:], uint64(id))
	return hex.EncodeToString(b[:])
}

// ParseSpanID reads a span ID of 1 to 16 hex digits.
func ParseSpanID(s string) (SpanID, error) {
	if len(s) == 0 || len(s) > 16 {
		return 0, fmt.Errorf("invalid span id %q: want 1 to 16 hex digits", s)
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid span id %q: not hex", s)
	}
	if v == 0 {
		return 0, fmt.Errorf("invalid span id %q: all zeros", s)
	}
	return SpanID(v), nil
}

func putUint64(b []byte, v uint64) {
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}
