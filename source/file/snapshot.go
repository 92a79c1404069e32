package file

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ktrace-dev/ktrace/trace"
)

// SnapshotVersion is the snapshot format version this build writes and the
// newest it reads.
const SnapshotVersion = 1

// A snapshot is gzip-compressed JSON Lines, so it streams both ways:
//
//	{"format":"ktrace-snapshot","version":1,"source":"…"}   header, first line
//	{"r":{"id":0,"service":"…","attrs":[["k","v"],…]}}       a resource, before its first use
//	{"t":{"id":"…","spans":[…]}}                             a trace
//
// Spans are {"i":spanID,"o":operation,"k":kind,"s":startUnixNano,
// "d":durationNanos,"e":error,"m":statusMessage,"r":[[type,traceID,spanID]],
// "a":[["k","v"]],"p":resourceID}, omitting empty fields.
type snapHeader struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	Source  string `json:"source,omitempty"`
}

type snapResource struct {
	ID      int         `json:"id"`
	Service string      `json:"service"`
	Attrs   [][2]string `json:"attrs,omitempty"`
}

type snapSpan struct {
	I string      `json:"i"`
	O string      `json:"o,omitempty"`
	K uint8       `json:"k,omitempty"`
	S int64       `json:"s"`
	D int64       `json:"d,omitempty"`
	E bool        `json:"e,omitempty"`
	M string      `json:"m,omitempty"`
	R [][3]string `json:"r,omitempty"`
	A [][2]string `json:"a,omitempty"`
	P int         `json:"p"`
}

type snapTrace struct {
	ID    string     `json:"id"`
	Spans []snapSpan `json:"spans"`
}

type snapLine struct {
	R *snapResource `json:"r,omitempty"`
	T *snapTrace    `json:"t,omitempty"`
}

// SnapshotWriter streams traces into a snapshot. Call Close to finish it.
type SnapshotWriter struct {
	zw   *gzip.Writer
	enc  *json.Encoder
	ids  map[*trace.Resource]int
	werr error
}

// NewSnapshotWriter writes a snapshot header to w. source is free text
// recorded in the header (where the traces came from).
func NewSnapshotWriter(w io.Writer, source string) (*SnapshotWriter, error) {
	zw := gzip.NewWriter(w)
	sw := &SnapshotWriter{zw: zw, enc: json.NewEncoder(zw), ids: map[*trace.Resource]int{}}
	if err := sw.enc.Encode(snapHeader{Format: string(FormatSnapshot), Version: SnapshotVersion, Source: source}); err != nil {
		return nil, err
	}
	return sw, nil
}

func pairs(a trace.Attributes) [][2]string {
	if len(a) == 0 {
		return nil
	}
	p := make([][2]string, len(a))
	for i, kv := range a {
		p[i] = [2]string{kv.Key, kv.Value}
	}
	return p
}

// Write appends one trace.
func (sw *SnapshotWriter) Write(t *trace.Trace) error {
	st := snapTrace{ID: t.ID.String(), Spans: make([]snapSpan, len(t.Spans))}
	for i := range t.Spans {
		s := &t.Spans[i]
		id, ok := sw.ids[s.Resource]
		if !ok {
			id = len(sw.ids)
			sw.ids[s.Resource] = id
			r := snapResource{ID: id}
			if s.Resource != nil {
				r.Service, r.Attrs = s.Resource.Service, pairs(s.Resource.Attributes)
			}
			if err := sw.enc.Encode(snapLine{R: &r}); err != nil {
				return err
			}
		}
		ss := snapSpan{I: s.SpanID.String(), O: s.Operation, K: uint8(s.Kind), S: s.Start.UnixNano(),
			D: int64(s.Duration), E: s.Error, M: s.StatusMessage, A: pairs(s.Attributes), P: id}
		for _, r := range s.Refs {
			ss.R = append(ss.R, [3]string{r.Type.String(), r.TraceID.String(), r.SpanID.String()})
		}
		st.Spans[i] = ss
	}
	return sw.enc.Encode(snapLine{T: &st})
}

// Close flushes the compressed stream. It does not close the underlying writer.
func (sw *SnapshotWriter) Close() error { return sw.zw.Close() }

func attrsOf(p [][2]string) trace.Attributes {
	if len(p) == 0 {
		return nil
	}
	a := make(trace.Attributes, len(p))
	for i, kv := range p {
		a[i] = trace.Attribute{Key: kv[0], Value: kv[1]}
	}
	return a
}

func readSnapshot(br *bufio.Reader, name string, add func(trace.Trace) error, res *trace.Resources) error {
	dec := json.NewDecoder(br)
	var h snapHeader
	if err := dec.Decode(&h); err != nil {
		return jsonErr(name, dec, err)
	}
	if h.Format != string(FormatSnapshot) {
		return bad(name, "gzip data that is not a ktrace snapshot")
	}
	if h.Version < 1 || h.Version > SnapshotVersion {
		return bad(name, "snapshot version %d is not supported (this ktrace reads up to %d)", h.Version, SnapshotVersion)
	}
	resources := map[int]*trace.Resource{}
	for n := 2; ; n++ {
		var l snapLine
		err := dec.Decode(&l)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return jsonErr(name, dec, err)
		}
		switch {
		case l.R != nil:
			resources[l.R.ID] = res.Get(l.R.Service, attrsOf(l.R.Attrs))
		case l.T != nil:
			t, err := snapConvert(l.T, resources)
			if err != nil {
				return bad(name, "snapshot record %d: %v", n, err)
			}
			if err := trace.Validate(&t); err != nil {
				return bad(name, "%v", err)
			}
			if err := add(t); err != nil {
				return bad(name, "%v", err)
			}
		default:
			return bad(name, "snapshot record %d: neither a resource nor a trace", n)
		}
	}
}

func snapConvert(st *snapTrace, resources map[int]*trace.Resource) (trace.Trace, error) {
	tid, err := trace.ParseTraceID(st.ID)
	if err != nil {
		return trace.Trace{}, err
	}
	t := trace.Trace{ID: tid, Spans: make([]trace.Span, len(st.Spans))}
	for i := range st.Spans {
		ss := &st.Spans[i]
		s := &t.Spans[i]
		s.TraceID = tid
		if s.SpanID, err = trace.ParseSpanID(ss.I); err != nil {
			return t, err
		}
		r, ok := resources[ss.P]
		if !ok {
			return t, fmt.Errorf("span %s names undeclared resource %d", ss.I, ss.P)
		}
		s.Resource = r
		s.Operation, s.Kind, s.Error, s.StatusMessage = ss.O, trace.Kind(ss.K), ss.E, ss.M
		s.Start = time.Unix(0, ss.S).UTC()
		s.Duration = time.Duration(ss.D)
		s.Attributes = attrsOf(ss.A)
		for _, r := range ss.R {
			ref := trace.Ref{Type: trace.RefParent}
			if r[0] == "link" {
				ref.Type = trace.RefLink
			}
			if ref.TraceID, err = trace.ParseTraceID(r[1]); err != nil {
				return t, err
			}
			if ref.SpanID, err = trace.ParseSpanID(r[2]); err != nil {
				return t, err
			}
			s.Refs = append(s.Refs, ref)
		}
	}
	return t, nil
}

// ErrExists is returned by CreateAtomic when the target exists and
// overwriting was not asked for.
var ErrExists = errors.New("file exists (use --force to overwrite)")

// AtomicFile is written under a temporary name beside its target and renamed
// into place by Commit, so readers never see half a file.
type AtomicFile struct {
	*os.File
	target string
	done   bool
}

// CreateAtomic starts writing path. Unless overwrite is set it fails with
// ErrExists when path already exists.
func CreateAtomic(path string, overwrite bool) (*AtomicFile, error) {
	if !overwrite {
		if _, err := os.Stat(path); err == nil {
			return nil, fmt.Errorf("%s: %w", path, ErrExists)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, err
	}
	// CreateTemp makes the file private; a snapshot is an ordinary file.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &AtomicFile{File: f, target: path}, nil
}

// Commit syncs the data and renames it into place.
func (a *AtomicFile) Commit() error {
	if err := a.Sync(); err != nil {
		a.Abort()
		return err
	}
	if err := a.File.Close(); err != nil {
		a.Abort()
		return err
	}
	a.done = true
	if err := os.Rename(a.Name(), a.target); err != nil {
		os.Remove(a.Name())
		return err
	}
	return nil
}

// Abort removes the temporary file. It is safe to call after Commit.
func (a *AtomicFile) Abort() {
	if a.done {
		return
	}
	a.done = true
	a.File.Close()
	os.Remove(a.Name())
}
