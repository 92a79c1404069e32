package file

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"

	"github.com/ktrace-dev/ktrace/source"
	"github.com/ktrace-dev/ktrace/trace"
)

// ErrBadInput is wrapped by every error about the content of an input.
var ErrBadInput = errors.New("bad input")

// Format is a recognised input format.
type Format string

// Formats Read recognises.
const (
	FormatJaeger   Format = "jaeger-json"
	FormatOTLP     Format = "otlp-json"
	FormatSnapshot Format = "ktrace-snapshot"
)

type inputError struct {
	name  string
	msg   string
	cause error // an error of the caller's add, kept for errors.Is
}

func (e *inputError) Error() string { return e.name + ": " + e.msg }
func (e *inputError) Unwrap() []error {
	if e.cause != nil {
		return []error{ErrBadInput, e.cause}
	}
	return []error{ErrBadInput}
}

// addFailed is the error of a read stopped by an error of add's.
func addFailed(name string, err error) error {
	return &inputError{name: name, msg: err.Error(), cause: err}
}

func bad(name, format string, args ...any) error {
	return &inputError{name: name, msg: fmt.Sprintf(format, args...)}
}

// ReadFile opens path ("-" is stdin) and reads it with Read.
func ReadFile(path string, stdin io.Reader, set *trace.Set, res *trace.Resources) (Format, error) {
	return ReadFileEach(path, stdin, set.Add, res)
}

// ReadFileEach opens path ("-" is stdin) and reads it with ReadEach.
func ReadFileEach(path string, stdin io.Reader, add func(trace.Trace) error, res *trace.Resources) (Format, error) {
	if path == "-" {
		return ReadEach(stdin, "stdin", add, res)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return "", bad(path, "is a directory, not a trace file")
	}
	return ReadEach(f, path, add, res)
}

// Read decodes every trace in r into set, sharing resources through res.
// name is used in error messages. It returns the format it found. On error
// set may hold part of the input; callers should discard it.
func Read(r io.Reader, name string, set *trace.Set, res *trace.Resources) (Format, error) {
	return ReadEach(r, name, set.Add, res)
}

// ReadEach decodes r and hands each validated trace to add as soon as it is
// complete: Jaeger JSON and snapshots stream trace by trace; OTLP JSON,
// which may spread a trace over many lines, hands them over at the end. A
// trace ID may be handed over more than once (the same trace twice in the
// input); add decides what that means. An error from add stops the read.
// Each trace is packed (trace.Trace.Pack) before it is handed over; a
// snapshot trace written in several records is packed record by record.
func ReadEach(r io.Reader, name string, add func(trace.Trace) error, res *trace.Resources) (Format, error) {
	hand := add
	add = func(t trace.Trace) error {
		t.Pack()
		return hand(t)
	}
	br := bufio.NewReaderSize(r, 64<<10)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		br.Discard(3) // a UTF-8 byte order mark, as some editors write
	}
	head, _ := br.Peek(4096)
	if len(bytes.TrimSpace(head)) == 0 {
		return "", bad(name, "empty input: no traces")
	}
	if len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return "", bad(name, "corrupt gzip data: %v", err)
		}
		defer zr.Close()
		zr.Multistream(false) // a snapshot is one gzip member: what follows it is not ours
		zbr := bufio.NewReaderSize(zr, 64<<10)
		if first, _ := zbr.Peek(len(`{"format":"`)); !bytes.Equal(first, []byte(`{"format":"`)) {
			return "", bad(name, "gzip data that is not a ktrace snapshot (decompress it first if it holds Jaeger or OTLP JSON)")
		}
		if err := readSnapshot(zbr, name, hand, res); err != nil { // packs as it converts
			return FormatSnapshot, err
		}
		if rest, _ := br.Peek(1); len(rest) > 0 {
			return FormatSnapshot, bad(name, "data after the end of the snapshot's gzip stream")
		}
		return FormatSnapshot, nil
	}
	trimmed := bytes.TrimLeft(head, " \t\r\n")
	if trimmed[0] != '{' {
		if bytes.IndexByte(head, 0) >= 0 || !utf8.Valid(head[:utf8Prefix(head)]) {
			return "", bad(name, "binary data, not a trace file")
		}
		return "", bad(name, "not JSON: want Jaeger JSON, OTLP JSON or a ktrace snapshot")
	}
	if bytes.HasPrefix(trimmed, []byte(`{"format":"`+string(FormatSnapshot)+`"`)) {
		return FormatSnapshot, readSnapshot(br, name, hand, res)
	}
	dec := json.NewDecoder(br)
	dec.UseNumber()
	f, err := readJSON(dec, name, add, res)
	if err != nil {
		return f, jsonErr(name, dec, err)
	}
	return f, nil
}

// utf8Prefix trims a peeked buffer back to a rune boundary.
func utf8Prefix(b []byte) int {
	n := len(b)
	for i := 0; i < utf8.UTFMax && n > 0; i++ {
		if utf8.RuneStart(b[n-1]) {
			if !utf8.FullRune(b[n-1:]) {
				return n - 1
			}
			break
		}
		n--
	}
	return len(b)
}

func jsonErr(name string, dec *json.Decoder, err error) error {
	var ie *inputError
	if errors.As(err, &ie) {
		return err
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF:
		return bad(name, "truncated JSON at byte %d (the input ends inside an object or array)", dec.InputOffset())
	case errors.As(err, &se):
		return bad(name, "invalid JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		return bad(name, "unexpected JSON at byte %d: field %q is %s, want %s", te.Offset, te.Field, te.Value, te.Type)
	}
	return bad(name, "%v", err)
}

// readJSON reads top-level objects until EOF. The first decides the format.
func readJSON(dec *json.Decoder, name string, add func(trace.Trace) error, res *trace.Resources) (Format, error) {
	var format Format
	var otlp otlpCollector
	objects := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return format, err
		}
		if d, ok := tok.(json.Delim); !ok || d != '{' {
			return format, bad(name, "unexpected %v at byte %d: want a JSON object", tok, dec.InputOffset())
		}
		objects++
		found := Format("")
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return format, err
			}
			key, _ := kt.(string)
			switch {
			case key == "data" && format != FormatOTLP:
				found = FormatJaeger
				if err := readJaegerData(dec, name, add, res); err != nil {
					return FormatJaeger, err
				}
			case key == "resourceSpans" && format != FormatJaeger:
				found = FormatOTLP
				var rs []otlpResourceSpans
				if err := dec.Decode(&rs); err != nil {
					return FormatOTLP, err
				}
				if err := otlp.add(name, rs, res); err != nil {
					return FormatOTLP, err
				}
			default:
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					return format, err
				}
			}
		}
		if _, err := dec.Token(); err != nil { // closing '}'
			return format, err
		}
		if found == "" {
			return format, bad(name, "unrecognised JSON object #%d: want Jaeger JSON {\"data\":[…]} or OTLP JSON {\"resourceSpans\":[…]}", objects)
		}
		format = found
	}
	if format == FormatOTLP {
		if err := otlp.flush(add); err != nil {
			return format, bad(name, "%v", err)
		}
	}
	return format, nil
}

// errStopped ends a read whose consumer stopped iterating.
var errStopped = errors.New("stopped")

// Traces yields each trace ReadEach decodes from r, as it is complete; an
// error ends the sequence as its last value. It is the iterator every
// source gives (see also jaeger.Client.Traces).
func Traces(r io.Reader, name string, res *trace.Resources) source.Traces {
	return yielding(func(add func(trace.Trace) error) error {
		_, err := ReadEach(r, name, add, res)
		return err
	})
}

// FileTraces is Traces over the file at path ("-" is stdin).
func FileTraces(path string, stdin io.Reader, res *trace.Resources) source.Traces {
	return yielding(func(add func(trace.Trace) error) error {
		_, err := ReadFileEach(path, stdin, add, res)
		return err
	})
}

// yielding turns a read that hands each trace to add into the sequence.
func yielding(read func(add func(trace.Trace) error) error) source.Traces {
	return func(yield func(*trace.Trace, error) bool) {
		err := read(func(t trace.Trace) error {
			if !yield(&t, nil) {
				return errStopped
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStopped) {
			yield(nil, err)
		}
	}
}
