package file

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/ktrace-dev/ktrace/trace"
)

// SnapshotVersion is the snapshot format version this build writes and the
// newest it reads. Version 2 lets a trace take several records.
const SnapshotVersion = 2

// RecordSpans is the most spans a trace record holds: a larger trace is
// written as consecutive records of up to RecordSpans spans, so that no
// record line grows with the trace (a reader holds one line per record
// while it decodes it, on top of the trace). A variable for tests.
var RecordSpans = 10000

// A snapshot is gzip-compressed JSON Lines, so it streams both ways:
//
//	{"format":"ktrace-snapshot","version":2,"source":"…"}   header, first line
//	{"r":{"id":0,"service":"…","attrs":[["k","v"],…]}}       a resource, before its first use
//	{"t":{"id":"…","spans":[…]}}                             a trace
//	{"t":{"id":"…","n":25000,"more":true,"spans":[…]}}       part of a trace of n spans
//
// A trace of more than RecordSpans spans is written as consecutive records
// with its ID, "n" its span count, "more" on all but the last; resource
// records may come between them, records of other traces may not.
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
	I string `json:"i"`
	O string `json:"o,omitempty"`
	K uint8  `json:"k,omitempty"`
	S int64  `json:"s"`
	D int64  `json:"d,omitempty"`
	E bool   `json:"e,omitempty"`
	M string `json:"m,omitempty"`
	// R are the refs: type, trace ID, span ID, and — when the source said
	// it (an OTLP link's flags) — "sampled" or "unsampled". Readers before
	// the fourth element ignore it.
	R [][]string  `json:"r,omitempty"`
	A [][2]string `json:"a,omitempty"`
	P int         `json:"p"`
}

type snapTrace struct {
	ID    string     `json:"id"`
	N     int        `json:"n,omitempty"`
	More  bool       `json:"more,omitempty"`
	Spans []snapSpan `json:"spans"`
}

type snapLine struct {
	R *snapResource `json:"r,omitempty"`
	T *snapTrace    `json:"t,omitempty"`
}

// SnapshotWriter streams traces into a snapshot. Call Close to finish it.
type SnapshotWriter struct {
	zw  *gzip.Writer
	enc *json.Encoder
	ids map[*trace.Resource]int
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

// Write appends one trace, in several records if it has more than
// RecordSpans spans.
func (sw *SnapshotWriter) Write(t *trace.Trace) error {
	for from := 0; ; from += RecordSpans { // at least one record, even for no spans
		to := min(from+RecordSpans, len(t.Spans))
		if err := sw.write(t, from, to); err != nil || to == len(t.Spans) {
			return err
		}
	}
}

// write writes spans [from, to) of t as one record.
func (sw *SnapshotWriter) write(t *trace.Trace, from, to int) error {
	st := snapTrace{ID: t.ID.String(), Spans: make([]snapSpan, to-from)}
	if to-from < len(t.Spans) {
		st.N, st.More = len(t.Spans), to < len(t.Spans)
	}
	for i := range st.Spans {
		s := &t.Spans[from+i]
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
			ref := []string{r.Type.String(), r.TraceID.String(), r.SpanID.String()}
			switch r.Sampled {
			case trace.SampledYes:
				ref = append(ref, "sampled")
			case trace.SampledNo:
				ref = append(ref, "unsampled")
			}
			ss.R = append(ss.R, ref)
		}
		st.Spans[i] = ss
	}
	return sw.enc.Encode(snapLine{T: &st})
}

// Close flushes the compressed stream. It does not close the underlying writer.
func (sw *SnapshotWriter) Close() error { return sw.zw.Close() }

// WriteSnapshot writes traces to w as a whole snapshot: header, traces,
// flush. It does not close w.
func WriteSnapshot(w io.Writer, source string, traces []trace.Trace) error {
	sw, err := NewSnapshotWriter(w, source)
	if err != nil {
		return err
	}
	for i := range traces {
		if err := sw.Write(&traces[i]); err != nil {
			return err
		}
	}
	return sw.Close()
}

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

// readSnapshot reads a snapshot's records in order, decoding them on every
// CPU: a reader splits the stream into lines, workers decode them and
// convert trace records (fastTrace, else encoding/json and convertTrace),
// and this goroutine applies the records in the order they were written:
// resources declared, traces' resources resolved, traces checked and
// handed to add (packed, as ReadEach promises). Decoding is most of a
// snapshot read, so this is what makes reading scale with CPUs.
func readSnapshot(br *bufio.Reader, name string, add func(trace.Trace) error, res *trace.Resources) error {
	line, err := readRecord(br, maxHeader)
	if err == errRecordTooLong {
		return bad(name, "gzip data that is not a ktrace snapshot (no header line in its first %d KiB)", maxHeader>>10)
	}
	if err != nil && (err != io.EOF || len(line) == 0) {
		return readErr(name, err)
	}
	var h snapHeader
	if err := json.Unmarshal(line, &h); err != nil {
		return lineErr(name, 1, err)
	}
	if h.Format != string(FormatSnapshot) {
		return bad(name, "gzip data that is not a ktrace snapshot")
	}
	if h.Version < 1 || h.Version > SnapshotVersion { // version 1 never splits a trace: read the same way
		return bad(name, "snapshot version %d is not supported (this ktrace reads up to %d)", h.Version, SnapshotVersion)
	}

	type record struct {
		n     int
		line  []byte
		res   *snapResource
		t     *decodedTrace
		blank bool
		err   error // reading (set before done), unmarshalling or converting
		done  chan struct{}
	}
	workers := runtime.GOMAXPROCS(0)
	jobs := make(chan *record, 4*workers)  // to the workers
	order := make(chan *record, 4*workers) // to the applier, in file order
	stop := make(chan struct{})
	defer close(stop)
	budget := newInFlight(MaxRecord)
	defer budget.stop()
	go func() {
		defer close(order)
		defer close(jobs)
		blanks := 0
		for n := 2; ; n++ {
			line, err := readRecord(br, MaxRecord)
			if err == io.EOF && len(bytes.TrimSpace(line)) == 0 {
				return
			}
			if !budget.acquire(len(line)) {
				return
			}
			r := &record{n: n, line: line, done: make(chan struct{})}
			if blanks = blanks + 1; len(bytes.TrimSpace(line)) > 0 {
				blanks = 0
			}
			switch {
			case err == errRecordTooLong:
				err = bad(name, "snapshot record %d is longer than %d MiB (--max-record-mib raises the limit)", n, MaxRecord>>20)
			case blanks > maxBlankRun:
				err = bad(name, "snapshot record %d: more than %d blank lines in a row", n, maxBlankRun)
			}
			if err != nil && err != io.EOF {
				r.err = readErr(name, err)
				close(r.done)
				select {
				case order <- r:
				case <-stop:
				}
				return
			}
			select {
			case order <- r:
			case <-stop:
				return
			}
			select {
			case jobs <- r:
			case <-stop:
				return
			}
		}
	}()
	for w := 0; w < workers; w++ {
		go func() {
			var strs trace.Strings
			for r := range jobs {
				if r.blank = len(bytes.TrimSpace(r.line)) == 0; !r.blank {
					var l snapLine
					if t, ok := fastTrace(r.line, &strs); ok {
						r.t = t
					} else if err := json.Unmarshal(r.line, &l); err != nil {
						r.err = lineErr(name, r.n, err)
					} else if l.T != nil {
						if r.t, err = convertTrace(l.T); err != nil {
							r.err = bad(name, "snapshot record %d: %v", r.n, err)
						}
					} else {
						r.res = l.R
					}
				}
				budget.release(len(r.line))
				r.line = nil
				close(r.done)
			}
		}()
	}

	resources := map[int]*trace.Resource{}
	var part partTrace // a trace whose records are still coming
	for r := range order {
		<-r.done
		if r.err != nil {
			return r.err
		}
		switch {
		case r.res != nil:
			resources[r.res.ID] = res.Get(r.res.Service, attrsOf(r.res.Attrs))
		case r.t != nil:
			d := r.t
			r.t = nil
			t, err := d.resolve(resources)
			if err != nil {
				return bad(name, "snapshot record %d: %v", r.n, err)
			}
			done, err := part.add(&t, d.total, d.more)
			if err != nil {
				return bad(name, "snapshot record %d: %v", r.n, err)
			}
			if !done {
				continue
			}
			if err := trace.Validate(&t); err != nil {
				return bad(name, "%v", err)
			}
			if err := add(t); err != nil { // the trace is add's now
				return addFailed(name, err)
			}
		case r.blank:
		default:
			return bad(name, "snapshot record %d: neither a resource nor a trace", r.n)
		}
	}
	if part.open {
		return bad(name, "truncated snapshot: trace %s has %d of its %d spans", part.t.ID, len(part.t.Spans), part.total)
	}
	return nil
}

// partTrace puts together a trace written in several records.
type partTrace struct {
	t     trace.Trace
	total int
	open  bool
}

// add takes the next trace record, of a trace of total spans (0: not
// said) with more records to come when more is set. When the record
// completes a trace it sets *t to the whole trace and returns true.
func (p *partTrace) add(t *trace.Trace, total int, more bool) (bool, error) {
	if !p.open {
		if !more {
			if total != 0 && total != len(t.Spans) {
				return false, fmt.Errorf("trace %s has %d spans, its record says %d", t.ID, len(t.Spans), total)
			}
			return true, nil // a trace in one record: the usual case
		}
		if total < len(t.Spans) {
			return false, fmt.Errorf("trace %s continues in more records but says it has %d spans in all", t.ID, total)
		}
		// The spans are laid out once, at the size the record declares
		// (up to a million: a record is not trusted with more memory).
		p.t = trace.Trace{ID: t.ID, Spans: append(make([]trace.Span, 0, min(total, 1<<20)), t.Spans...)}
		p.total, p.open = total, true
		return false, nil
	}
	if t.ID != p.t.ID {
		return false, fmt.Errorf("trace %s starts before trace %s has all its records", t.ID, p.t.ID)
	}
	if total != p.total || len(p.t.Spans)+len(t.Spans) > total || !more && len(p.t.Spans)+len(t.Spans) != total {
		return false, fmt.Errorf("trace %s: its records disagree on its span count (%d declared, %d after this record)", t.ID, p.total, len(p.t.Spans)+len(t.Spans))
	}
	p.t.Spans = append(p.t.Spans, t.Spans...)
	if more {
		return false, nil
	}
	*t, *p = p.t, partTrace{}
	return true, nil
}

// readRecord reads one line (one record) without its newline.
// MaxRecord is the longest snapshot record (one line of the decompressed
// stream) a read accepts: 64 MiB by default, far above what ktrace writes
// (a record holds at most RecordSpans spans). A longer one is bad input,
// so a small, hostile file cannot make a read hold gigabytes. The CLI's
// --max-record-mib raises it.
var MaxRecord = DefaultMaxRecord

// DefaultMaxRecord is MaxRecord unless set otherwise.
const DefaultMaxRecord = 64 << 20

// maxHeader is the longest first line a snapshot may have.
const maxHeader = 64 << 10

// maxBlankRun is how many blank lines in a row a snapshot may hold
// (ktrace writes none; a few may come from editing by hand).
const maxBlankRun = 1000

// inFlight bounds the bytes of records read but not yet decoded: with
// records near MaxRecord, a read holds about two of them, not one per
// queued job.
type inFlight struct {
	mu      sync.Mutex
	cond    *sync.Cond
	n, max  int
	stopped bool
}

func newInFlight(max int) *inFlight {
	f := &inFlight{max: max}
	f.cond = sync.NewCond(&f.mu)
	return f
}

// acquire waits until n more bytes fit (one record always does); false
// once stopped.
func (f *inFlight) acquire(n int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.n > 0 && f.n+n > f.max && !f.stopped {
		f.cond.Wait()
	}
	f.n += n
	return !f.stopped
}

func (f *inFlight) release(n int) {
	f.mu.Lock()
	f.n -= n
	f.mu.Unlock()
	f.cond.Broadcast()
}

func (f *inFlight) stop() {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	f.cond.Broadcast()
}

// errRecordTooLong is returned by readRecord for a line over its limit.
var errRecordTooLong = errors.New("record too long")

// readRecord reads one line of at most limit bytes, without its newline.
// A line longer than the reader's buffer is gathered in blocks and copied
// once into a slice of its exact length: growing one slice would leave
// garbage of several times the line behind.
func readRecord(br *bufio.Reader, limit int) ([]byte, error) {
	frag, err := br.ReadSlice('\n')
	if err == nil && len(frag) <= limit+1 { // the common case: the line is in the buffer
		return bytes.Clone(frag[:len(frag)-1]), nil
	}
	if err == nil {
		return nil, errRecordTooLong
	}
	var blocks [][]byte
	n := 0
	for {
		if n+len(frag) > limit+1 {
			return nil, errRecordTooLong
		}
		blocks = append(blocks, bytes.Clone(frag))
		n += len(frag)
		if err != bufio.ErrBufferFull {
			break
		}
		frag, err = br.ReadSlice('\n')
	}
	line := make([]byte, 0, n)
	for _, b := range blocks {
		line = append(line, b...)
	}
	return bytes.TrimSuffix(line, []byte("\n")), err
}

// readErr describes a failure to read the (decompressed) stream.
func readErr(name string, err error) error {
	var ie *inputError
	if errors.As(err, &ie) {
		return err
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return bad(name, "truncated snapshot")
	}
	return bad(name, "%v", err)
}

// lineErr describes a record that is not the JSON it should be.
func lineErr(name string, n int, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te):
		return bad(name, "snapshot record %d: unexpected JSON at byte %d: field %q is %s, want %s", n, te.Offset, te.Field, te.Value, te.Type)
	case errors.As(err, &se) && se.Error() == "unexpected end of JSON input":
		return bad(name, "snapshot record %d: truncated JSON", n)
	case errors.As(err, &se):
		return bad(name, "snapshot record %d: invalid JSON at byte %d: %v", n, se.Offset, se)
	}
	return bad(name, "snapshot record %d: %v", n, err)
}

// decodedTrace is a trace record decoded and converted by a worker, its
// spans' resources still named by id: resources are declared in file
// order, so the applier resolves them.
type decodedTrace struct {
	t     trace.Trace
	res   []int // span i's resource id
	total int   // the trace's span count, when it takes several records
	more  bool  // more records of the trace follow
}

// resolve gives the spans their resources.
func (d *decodedTrace) resolve(resources map[int]*trace.Resource) (trace.Trace, error) {
	for i := range d.t.Spans {
		r, ok := resources[d.res[i]]
		if !ok {
			return trace.Trace{}, fmt.Errorf("span %s names undeclared resource %d", d.t.Spans[i].SpanID, d.res[i])
		}
		d.t.Spans[i].Resource = r
	}
	return d.t, nil
}

// convertTrace converts a record encoding/json decoded, laying its spans'
// attributes and refs out in one block each, as trace.Trace.Pack would.
func convertTrace(st *snapTrace) (*decodedTrace, error) {
	tid, err := trace.ParseTraceID(st.ID)
	if err != nil {
		return nil, err
	}
	na, nr := 0, 0
	for i := range st.Spans {
		na += len(st.Spans[i].A)
		nr += len(st.Spans[i].R)
	}
	attrs := make(trace.Attributes, 0, na)
	refs := make([]trace.Ref, 0, nr)
	d := &decodedTrace{t: trace.Trace{ID: tid, Spans: make([]trace.Span, len(st.Spans))}, res: make([]int, len(st.Spans)), total: st.N, more: st.More}
	if st.N < 0 {
		return nil, fmt.Errorf("span count %d", st.N)
	}
	for i := range st.Spans {
		ss := &st.Spans[i]
		s := &d.t.Spans[i]
		s.TraceID = tid
		if s.SpanID, err = trace.ParseSpanID(ss.I); err != nil {
			return nil, err
		}
		d.res[i] = ss.P
		s.Operation, s.Kind, s.Error, s.StatusMessage = ss.O, trace.Kind(ss.K), ss.E, ss.M
		s.Start = time.Unix(0, ss.S).UTC()
		s.Duration = time.Duration(ss.D)
		if len(ss.A) > 0 {
			from := len(attrs)
			for _, kv := range ss.A {
				attrs = append(attrs, trace.Attribute{Key: kv[0], Value: kv[1]})
			}
			s.Attributes = attrs[from:len(attrs):len(attrs)]
		}
		if len(ss.R) > 0 {
			from := len(refs)
			for _, r := range ss.R {
				if len(r) < 3 || len(r) > 4 {
					return nil, fmt.Errorf("span %s: a ref of %d fields, want 3 or 4", ss.I, len(r))
				}
				ref := trace.Ref{Type: trace.RefParent}
				if r[0] == "link" {
					ref.Type = trace.RefLink
				}
				if len(r) == 4 {
					switch r[3] {
					case "sampled":
						ref.Sampled = trace.SampledYes
					case "unsampled":
						ref.Sampled = trace.SampledNo
					}
				}
				if ref.TraceID, err = trace.ParseTraceID(r[1]); err != nil {
					return nil, err
				}
				if ref.SpanID, err = trace.ParseSpanID(r[2]); err != nil {
					return nil, err
				}
				refs = append(refs, ref)
			}
			s.Refs = refs[from:len(refs):len(refs)]
		}
	}
	return d, nil
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
