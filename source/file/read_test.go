package file

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/trace"
)

func read(t *testing.T, path string) (*trace.Set, Format) {
	t.Helper()
	var set trace.Set
	var res trace.Resources
	f, err := ReadFile(path, nil, &set, &res)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &set, f
}

func TestReadJaegerFixture(t *testing.T) {
	set, f := read(t, "../../fixtures/rpc-chain.json")
	if f != FormatJaeger || set.Len() != 2 || set.SpanCount() != 9 {
		t.Fatalf("format %s, %d traces, %d spans", f, set.Len(), set.SpanCount())
	}
	tr := set.Traces()[0]
	var pay *trace.Span
	for i := range tr.Spans {
		if tr.Spans[i].Service() == "payments" {
			pay = &tr.Spans[i]
		}
	}
	if pay == nil || pay.Kind != trace.KindServer || !pay.Error || pay.StatusMessage != "card declined" {
		t.Fatalf("payments span: %+v", pay)
	}
	if pay.Start != time.UnixMicro(1764000000003000).UTC() || pay.Duration != 3*time.Millisecond {
		t.Errorf("times: %v %v", pay.Start, pay.Duration)
	}
	if _, ok := pay.Attributes.Get("span.kind"); ok {
		t.Error("span.kind kept as an attribute")
	}
	if pay.Resource.Instance() != "payments-1" {
		t.Errorf("instance %q", pay.Resource.Instance())
	}
	if p, ok := pay.Parent(); !ok || p != 0xa5 {
		t.Errorf("parent %v", p)
	}
}

func TestReadOTLPLinesGroupsTraces(t *testing.T) {
	set, f := read(t, "../../fixtures/db-peer.json")
	if f != FormatOTLP || set.Len() != 2 || set.SpanCount() != 5 {
		t.Fatalf("format %s, %d traces, %d spans", f, set.Len(), set.SpanCount())
	}
	// The first trace's spans sit on two lines; they end up together.
	tr := set.Traces()[0]
	if len(tr.Spans) != 3 {
		t.Fatalf("first trace has %d spans", len(tr.Spans))
	}
	var erp *trace.Span
	for i := range tr.Spans {
		if tr.Spans[i].Operation == "POST /erp/reserve" {
			erp = &tr.Spans[i]
		}
	}
	if erp == nil || erp.Kind != trace.KindClient || !erp.Error || erp.Duration != 12*time.Millisecond {
		t.Fatalf("erp span %+v", erp)
	}
	if v, _ := erp.Attributes.Get("http.response.status_code"); v != "503" {
		t.Errorf("int attribute %q", v)
	}
	if tr.Spans[0].Resource != tr.Spans[2].Resource {
		t.Error("resources of one process not shared")
	}
}

func TestReadOTLPBase64AndLinks(t *testing.T) {
	in := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},
	"instrumentationLibrarySpans":[{"spans":[{"traceId":"S/kvNXezTaajzpKdDg5HNg==","spanId":"APBnqgupArc=","name":"x",
	"kind":"SPAN_KIND_CONSUMER","startTimeUnixNano":1,"endTimeUnixNano":2,
	"links":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4737","spanId":"00f067aa0ba902b8"}],
	"attributes":[{"key":"arr","value":{"arrayValue":{"values":[{"stringValue":"p"},{"intValue":3}]}}}]}]}]}]}`
	var set trace.Set
	if _, err := Read(strings.NewReader(in), "x", &set, &trace.Resources{}); err != nil {
		t.Fatal(err)
	}
	s := set.Traces()[0].Spans[0]
	if s.TraceID.String() != "4bf92f3577b34da6a3ce929d0e0e4736" || s.SpanID.String() != "00f067aa0ba902b7" {
		t.Errorf("ids %s %s", s.TraceID, s.SpanID)
	}
	if len(s.Refs) != 1 || s.Refs[0].Type != trace.RefLink || s.Refs[0].TraceID.String() != "4bf92f3577b34da6a3ce929d0e0e4737" {
		t.Errorf("refs %+v", s.Refs)
	}
	if v, _ := s.Attributes.Get("arr"); v != `["p","3"]` {
		t.Errorf("array %q", v)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	orig, _ := read(t, "../../fixtures/broken-hop.json")
	dir := t.TempDir()
	path := filepath.Join(dir, "s.ktrace")
	af, err := CreateAtomic(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteSnapshot(af, "test", orig.Traces()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("target visible before Commit")
	}
	if err := af.Commit(); err != nil {
		t.Fatal(err)
	}
	back, f := read(t, path)
	if f != FormatSnapshot {
		t.Fatalf("format %s", f)
	}
	a, b := orig.Traces(), back.Traces()
	if len(a) != len(b) {
		t.Fatalf("%d traces back, want %d", len(b), len(a))
	}
	for i := range a {
		for j := range a[i].Spans {
			x, y := a[i].Spans[j], b[i].Spans[j]
			if x.SpanID != y.SpanID || x.Operation != y.Operation || x.Kind != y.Kind || !x.Start.Equal(y.Start) ||
				x.Duration != y.Duration || x.Error != y.Error || x.Service() != y.Service() ||
				len(x.Refs) != len(y.Refs) || len(x.Attributes) != len(y.Attributes) {
				t.Errorf("span differs:\n%+v\n%+v", x, y)
			}
			for k := range x.Refs {
				if x.Refs[k] != y.Refs[k] {
					t.Errorf("ref differs: %+v %+v", x.Refs[k], y.Refs[k])
				}
			}
		}
	}
	// No temporary files are left behind, and the target is not overwritten.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dir holds %d entries", len(entries))
	}
	if _, err := CreateAtomic(path, false); !errors.Is(err, ErrExists) {
		t.Errorf("overwrite without asking: %v", err)
	}
	a2, err := CreateAtomic(path, true)
	if err != nil {
		t.Fatal(err)
	}
	a2.Abort()
	if _, err := os.Stat(path); err != nil {
		t.Error("Abort removed the existing target")
	}
}

func TestBadInput(t *testing.T) {
	valid, _ := os.ReadFile("../../fixtures/rpc-chain.json")
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "empty input"},
		{"blank", []byte("  \n\t"), "empty input"},
		{"truncated", valid[:len(valid)/2], "truncated JSON"},
		{"unknown shape", []byte(`{"spans":[1,2,3]}`), "unrecognised JSON"},
		{"array", []byte(`[1,2]`), "not JSON"},
		{"binary", []byte{0x7f, 'E', 'L', 'F', 0, 0, 1, 2}, "binary data"},
		{"text", []byte("hello world"), "not JSON"},
		{"bad syntax", []byte(`{"data":[{"traceID":}]}`), "invalid JSON"},
		{"bad trace id", []byte(`{"data":[{"traceID":"zz","spans":[],"processes":{}}]}`), "invalid trace id"},
		{"unknown process", []byte(`{"data":[{"traceID":"1","spans":[{"traceID":"1","spanID":"2","processID":"p9"}],"processes":{}}]}`), "unknown process"},
		{"wrong type", []byte(`{"data":[{"traceID":1}]}`), "unexpected JSON"},
		{"gzip not snapshot", gz(`{"format":"other"}`), "not a ktrace snapshot"},
		{"snapshot from the future", gz(`{"format":"ktrace-snapshot","version":99}`), "version 99"},
		{"corrupt gzip", []byte{0x1f, 0x8b, 1, 2, 3}, "gzip"},
		{"snapshot bad record", gz(snapHead + "\n" + `{"t":{"id":}}`), "snapshot record 2: invalid JSON"},
		{"snapshot empty record", gz(snapHead + "\n\n" + `{}`), "snapshot record 3: neither a resource nor a trace"},
		{"snapshot wrong type", gz(snapHead + "\n" + `{"t":{"id":5}}`), "snapshot record 2: unexpected JSON"},
		{"snapshot truncated record", gz(snapHead + "\n" + `{"t":{"id":"1","spans":[`), "snapshot record 2: truncated JSON"},
		{"snapshot bad span id", gz(snapHead + "\n" + `{"r":{"id":0,"service":"s"}}` + "\n" + `{"t":{"id":"1","spans":[{"i":"zz","s":1,"p":0}]}}`), "snapshot record 3: invalid span id \"zz\""},
		{"snapshot undeclared resource", gz(snapHead + "\n" + `{"t":{"id":"1","spans":[{"i":"2","s":1,"p":7}]}}`), "undeclared resource 7"},
		{"snapshot cut short", truncatedSnapshot(), "truncated snapshot"},
		{"trace records interleaved", gz(snapHead2 + "\n" + `{"r":{"id":0,"service":"s"}}` + "\n" +
			`{"t":{"id":"1","n":2,"more":true,"spans":[{"i":"2","s":1,"p":0}]}}` + "\n" + `{"t":{"id":"3","spans":[{"i":"4","s":1,"p":0}]}}`),
			"snapshot record 4: trace 00000000000000000000000000000003 starts before trace 00000000000000000000000000000001 has all its records"},
		{"trace records end early", gz(snapHead2 + "\n" + `{"r":{"id":0,"service":"s"}}` + "\n" +
			`{"t":{"id":"1","n":3,"more":true,"spans":[{"i":"2","s":1,"p":0}]}}`), "truncated snapshot: trace 00000000000000000000000000000001 has 1 of its 3 spans"},
		{"trace records short of their count", gz(snapHead2 + "\n" + `{"r":{"id":0,"service":"s"}}` + "\n" +
			`{"t":{"id":"1","n":3,"more":true,"spans":[{"i":"2","s":1,"p":0}]}}` + "\n" + `{"t":{"id":"1","n":3,"spans":[{"i":"3","s":1,"p":0}]}}`),
			"snapshot record 4: trace 00000000000000000000000000000001: its records disagree on its span count (3 declared, 2 after this record)"},
		{"trace records over their count", gz(snapHead2 + "\n" + `{"r":{"id":0,"service":"s"}}` + "\n" +
			`{"t":{"id":"1","n":1,"more":true,"spans":[{"i":"2","s":1,"p":0},{"i":"3","s":1,"p":0}]}}`),
			"snapshot record 3: trace 00000000000000000000000000000001 continues in more records but says it has 1 spans in all"},
		{"one record, wrong count", gz(snapHead2 + "\n" + `{"r":{"id":0,"service":"s"}}` + "\n" +
			`{"t":{"id":"1","n":2,"spans":[{"i":"2","s":1,"p":0}]}}`), "snapshot record 3: trace 00000000000000000000000000000001 has 1 spans, its record says 2"},
		// Impossible numbers: rejected, naming the trace and span.
		{"negative duration", oneSpan(`"startTime":1795637299481379,"duration":-5`), "trace 00000000000000000000000000000001: span 0000000000000002: duration -5µs is negative"},
		{"duration that overflows", oneSpan(`"startTime":1795637299481379,"duration":9223372036854775807`), "trace 00000000000000000000000000000001: span 0000000000000002: duration is out of range"},
		{"duration past int64", oneSpan(`"startTime":1795637299481379,"duration":18446744073709551621`), "span 0000000000000002: duration is out of range"},
		{"duration 1e30", oneSpan(`"startTime":1795637299481379,"duration":1e30`), "span 0000000000000002: duration is out of range"},
		{"duration of centuries", oneSpan(`"startTime":1795637299481379,"duration":4000000000000000`), "span 0000000000000002: duration 1111111h6m40s is longer than 100 years"},
		{"start 1e300", oneSpan(`"startTime":1e300,"duration":5`), "span 0000000000000002: startTime is out of range"},
		{"start before 1677", oneSpan(`"startTime":-9300000000000000,"duration":5`), "span 0000000000000002: start time 1675-04-18T02:40:00Z is outside 1677–2262"},
		{"start after 2262", oneSpan(`"startTime":9300000000000000,"duration":5`), "is outside 1677–2262"},
		{"OTLP end before start", []byte(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"s"}}]},"scopeSpans":[{"spans":[{"traceId":"00000000000000000000000000000001","spanId":"0000000000000002","name":"op","startTimeUnixNano":"2000","endTimeUnixNano":"1000"}]}]}]}`), "endTimeUnixNano 1000 is before startTimeUnixNano 2000"},
		{"snapshot negative duration", gz(snapHead2 + "\n" + `{"r":{"id":0,"service":"s"}}` + "\n" + `{"t":{"id":"1","spans":[{"i":"2","s":1795637299481379000,"d":-7,"p":0}]}}`), "span 0000000000000002: duration -7ns is negative"},
		{"missing final brace", []byte(`{"data":[]`), "truncated JSON at byte 10 (the input ends inside an object or array)"},
		{"gzip of JSON", gz(`{"data":[]}`), "gzip data that is not a ktrace snapshot (decompress it first"},
		{"garbage after a snapshot", append(gz(snapHead2+"\n"+`{"r":{"id":0,"service":"s"}}`), "garbage"...), "data after the end of the snapshot's gzip stream"},
		{"a header line too long", gz(`{"format":"ktrace-snapshot","x":"` + strings.Repeat("x", 70<<10) + `"}`), "no header line in its first 64 KiB"},
		{"duplicate span", []byte(`{"data":[{"traceID":"1","spans":[{"traceID":"1","spanID":"2","processID":"p","operationName":"a"},{"traceID":"1","spanID":"2","processID":"p","operationName":"b"}],"processes":{"p":{"serviceName":"s"}}}]}`), "duplicate span id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var set trace.Set
			_, err := Read(bytes.NewReader(c.in), "in.json", &set, &trace.Resources{})
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrBadInput) {
				t.Errorf("%v does not wrap ErrBadInput", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) || !strings.HasPrefix(msg, "in.json: ") || strings.Contains(msg, "\n") {
				t.Errorf("message %q: want one line naming the input and %q", msg, c.want)
			}
		})
	}
}

// oneSpan is a Jaeger JSON trace of one span with the given time fields.
func oneSpan(times string) []byte {
	return []byte(`{"data":[{"traceID":"1","spans":[{"traceID":"1","spanID":"2","processID":"p","operationName":"a",` + times + `}],"processes":{"p":{"serviceName":"s"}}}]}`)
}

func gz(s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s + "\n"))
	zw.Close()
	return b.Bytes()
}

const snapHead = `{"format":"ktrace-snapshot","version":1}`

const snapHead2 = `{"format":"ktrace-snapshot","version":2}`

// TestSnapshotLargeTraces: traces of more spans than a record holds are
// written in several records and read back whole, equal to what was
// written, with resources declared between their records, from the fast
// path and from encoding/json alike (escaped strings take the latter).
func TestSnapshotLargeTraces(t *testing.T) {
	defer func(n int) { RecordSpans = n }(RecordSpans)
	RecordSpans = 7
	cfg := synth.Config{Traces: 40, SpansPerTrace: 30, Services: 6, Topics: 3, BrokenShare: 0.2, Seed: 11}
	ts := synth.Generate(cfg)
	big := synth.SingleTrace(100, 5)
	big.Spans[50].Resource = &trace.Resource{Service: "late", Attributes: trace.Attributes{{Key: "host.name", Value: "h"}}} // declared mid-trace
	big.Spans[60].StatusMessage = "needs \"escapes\""                                                                       // this record goes to encoding/json
	ts = append(ts, big, trace.Trace{ID: trace.TraceID{Low: 99}, Spans: ts[0].Spans[:RecordSpans:RecordSpans]})
	var buf bytes.Buffer
	if err := WriteSnapshot(&buf, "test", ts); err != nil {
		t.Fatal(err)
	}
	parts := 0
	for _, line := range snapshotLines(t, buf.Bytes()) {
		if bytes.Contains(line, []byte(`"more":true`)) {
			parts++
		}
	}
	if parts < len(ts) {
		t.Fatalf("%d records marked more: the large traces were not split", parts)
	}
	var got []trace.Trace
	if _, err := ReadEach(bytes.NewReader(buf.Bytes()), "s.ktrace", func(tr trace.Trace) error { got = append(got, tr); return nil }, &trace.Resources{}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ts) {
		t.Fatalf("%d traces back, want %d", len(got), len(ts))
	}
	for i := range ts {
		if got[i].ID != ts[i].ID || len(got[i].Spans) != len(ts[i].Spans) {
			t.Fatalf("trace %d: %s with %d spans, want %s with %d", i, got[i].ID, len(got[i].Spans), ts[i].ID, len(ts[i].Spans))
		}
		for j := range ts[i].Spans {
			x, y := &ts[i].Spans[j], &got[i].Spans[j]
			if x.SpanID != y.SpanID || x.Operation != y.Operation || !x.Start.Equal(y.Start) || x.StatusMessage != y.StatusMessage ||
				x.Service() != y.Service() || x.Resource.Instance() != y.Resource.Instance() ||
				!slices.Equal(x.Refs, y.Refs) || !slices.Equal(x.Attributes, y.Attributes) {
				t.Fatalf("trace %d span %d differs:\n%+v\n%+v", i, j, *x, *y)
			}
		}
	}
}

// truncatedSnapshot is a real snapshot's gzip stream cut in the middle.
func truncatedSnapshot() []byte {
	var b bytes.Buffer
	sw, _ := NewSnapshotWriter(&b, "test")
	res := &trace.Resource{Service: "s"}
	for i := 1; i <= 200; i++ {
		id := trace.TraceID{Low: uint64(i)}
		sw.Write(&trace.Trace{ID: id, Spans: []trace.Span{{TraceID: id, SpanID: 1, Operation: strings.Repeat("op", i), Resource: res}}})
	}
	sw.Close()
	return b.Bytes()[:b.Len()/2]
}

// TestSnapshotBlankLines: blank lines between records are skipped.
func TestSnapshotBlankLines(t *testing.T) {
	in := gz(snapHead + "\n\n" + `{"r":{"id":0,"service":"s"}}` + "\n\n" + `{"t":{"id":"1","spans":[{"i":"2","s":1,"p":0}]}}` + "\n")
	var set trace.Set
	if _, err := Read(bytes.NewReader(in), "in", &set, &trace.Resources{}); err != nil || set.Len() != 1 {
		t.Fatalf("%v, %d traces", err, set.Len())
	}
}

// TestSnapshotOrder: records are unmarshalled on several goroutines but
// handed on in the order written, resources declared midway included.
func TestSnapshotOrder(t *testing.T) {
	var b bytes.Buffer
	sw, _ := NewSnapshotWriter(&b, "test")
	var want []trace.TraceID
	for i := 1; i <= 5000; i++ {
		res := &trace.Resource{Service: "svc-" + strconv.Itoa(i/100)} // a new resource every 100 traces
		id := trace.TraceID{Low: uint64(i)}
		want = append(want, id)
		if err := sw.Write(&trace.Trace{ID: id, Spans: []trace.Span{{TraceID: id, SpanID: trace.SpanID(i), Operation: "op", Resource: res}}}); err != nil {
			t.Fatal(err)
		}
	}
	sw.Close()
	var got []trace.TraceID
	_, err := ReadEach(bytes.NewReader(b.Bytes()), "in", func(tr trace.Trace) error {
		if svc := tr.Spans[0].Service(); svc != "svc-"+strconv.Itoa(int(tr.ID.Low)/100) {
			t.Fatalf("trace %d: service %q", tr.ID.Low, svc)
		}
		got = append(got, tr.ID)
		return nil
	}, &trace.Resources{})
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("%v; %d traces back, in order: %v", err, len(got), slices.Equal(got, want))
	}
}

// TestReadPacks: whatever the format, a trace's attributes and refs come
// laid out in one block each (trace.Trace.Pack's layout), the snapshot
// reader building it as it converts, the others through Pack.
func TestReadPacks(t *testing.T) {
	for _, path := range []string{"../../fixtures/kafka-e2e.json", "../../fixtures/db-peer.json", "../../fixtures/stargazers-links.ktrace"} {
		set, f := read(t, path)
		for _, tr := range set.Traces() {
			var lastA *trace.Attribute
			var lastR *trace.Ref
			for i := range tr.Spans {
				s := &tr.Spans[i]
				if n := len(s.Attributes); n > 0 {
					if lastA != nil && uintptr(unsafe.Pointer(&s.Attributes[0])) != uintptr(unsafe.Pointer(lastA))+unsafe.Sizeof(*lastA) {
						t.Fatalf("%s (%s): trace %s span %d: attributes not next to the previous span's", path, f, tr.ID, i)
					}
					lastA = &s.Attributes[n-1]
				}
				if n := len(s.Refs); n > 0 {
					if lastR != nil && uintptr(unsafe.Pointer(&s.Refs[0])) != uintptr(unsafe.Pointer(lastR))+unsafe.Sizeof(*lastR) {
						t.Fatalf("%s (%s): trace %s span %d: refs not next to the previous span's", path, f, tr.ID, i)
					}
					lastR = &s.Refs[n-1]
				}
			}
		}
	}
}

// Bounded reads: a snapshot with no header, a record over the limit and a
// long run of blank lines are bad input, found without reading the rest.
func TestSnapshotBounds(t *testing.T) {
	read := func(in []byte) error {
		var set trace.Set
		_, err := Read(bytes.NewReader(in), "in", &set, &trace.Resources{})
		return err
	}
	// 64 MiB of zeros, compressed to a few KiB: refused at the header.
	var zeros bytes.Buffer
	zw := gzip.NewWriter(&zeros)
	zw.Write(make([]byte, 64<<20))
	zw.Close()
	if err := read(zeros.Bytes()); err == nil || !strings.Contains(err.Error(), "gzip data that is not a ktrace snapshot") {
		t.Errorf("gzip of zeros: %v", err)
	}

	old := MaxRecord
	MaxRecord = 1 << 10
	defer func() { MaxRecord = old }()
	long := `{"t":{"id":"1","spans":[{"i":"2","s":1,"p":0,"o":"` + strings.Repeat("x", 2<<10) + `"}]}}`
	err := read(gz(snapHead2 + "\n" + `{"r":{"id":0,"service":"s"}}` + "\n" + long))
	if err == nil || !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "snapshot record 3 is longer than 0 MiB (--max-record-mib raises the limit)") {
		t.Errorf("long record: %v", err)
	}
	MaxRecord = old
	if err := read(gz(snapHead2 + "\n" + `{"r":{"id":0,"service":"s"}}` + "\n" + long)); err != nil {
		t.Errorf("the same record under the default limit: %v", err)
	}

	blank := gz(snapHead2 + strings.Repeat("\n", 5000) + `{"r":{"id":0,"service":"s"}}`)
	if err := read(blank); err == nil || !strings.Contains(err.Error(), "more than 1000 blank lines in a row") {
		t.Errorf("blank lines: %v", err)
	}
}

// A UTF-8 byte order mark is skipped; a directory is named as one.
func TestReadBOMAndDirectory(t *testing.T) {
	valid, _ := os.ReadFile("../../fixtures/rpc-chain.json")
	var set trace.Set
	if _, err := Read(bytes.NewReader(append([]byte("\xef\xbb\xbf"), valid...)), "bom.json", &set, &trace.Resources{}); err != nil || set.Len() == 0 {
		t.Errorf("with a BOM: %d traces, %v", set.Len(), err)
	}
	dir := t.TempDir()
	if _, err := ReadFile(dir, nil, &set, &trace.Resources{}); err == nil || !strings.Contains(err.Error(), dir+": is a directory") {
		t.Errorf("directory: %v", err)
	}
}

func TestReadConfig(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.yaml")
	os.WriteFile(ok, []byte("version: 1\n"), 0o644)
	if b, err := ReadConfig(ok); err != nil || string(b) != "version: 1\n" {
		t.Errorf("regular file: %q %v", b, err)
	}
	big := filepath.Join(dir, "big.yaml")
	os.WriteFile(big, make([]byte, MaxConfig+1), 0o644)
	fifo := filepath.Join(dir, "fifo")
	if err := syscallMkfifo(fifo); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		big: "a configuration file is at most", "/dev/zero": "not a regular file", fifo: "not a regular file",
		dir: "not a regular file", filepath.Join(dir, "missing"): "no such file",
	} {
		if _, err := ReadConfig(path); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
}

// inFlight holds back a record while others over its budget are being
// decoded, lets one record through whatever its size, and lets go of a
// waiting reader when stopped.
func TestInFlight(t *testing.T) {
	f := newInFlight(100)
	if !f.acquire(150) { // alone, any size goes
		t.Fatal("a first record over the budget was refused")
	}
	got := make(chan bool)
	go func() { got <- f.acquire(10) }()
	select {
	case <-got:
		t.Fatal("a second record went through over the budget")
	case <-time.After(50 * time.Millisecond):
	}
	f.release(150)
	if !<-got {
		t.Fatal("released budget did not let the record through")
	}
	go func() { got <- f.acquire(95) }()
	time.Sleep(20 * time.Millisecond)
	f.stop()
	if <-got {
		t.Error("acquire after stop reported success")
	}
}

// TestLinkFlags: an OTLP link's W3C trace flags say whether its span was
// sampled, when the flags are marked as set (bit 8); a snapshot keeps what
// they say, and a snapshot without it reads as before.
func TestLinkFlags(t *testing.T) {
	in := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},
	"scopeSpans":[{"spans":[{"traceId":"00000000000000000000000000000001","spanId":"0000000000000002","name":"x",
	"kind":"SPAN_KIND_CONSUMER","startTimeUnixNano":1,"endTimeUnixNano":2,
	"links":[{"traceId":"00000000000000000000000000000009","spanId":"0000000000000001","flags":769},
	         {"traceId":"00000000000000000000000000000009","spanId":"0000000000000002","flags":256},
	         {"traceId":"00000000000000000000000000000009","spanId":"0000000000000003","flags":1},
	         {"traceId":"00000000000000000000000000000009","spanId":"0000000000000004"}]}]}]}]}`
	var set trace.Set
	if _, err := Read(strings.NewReader(in), "x", &set, &trace.Resources{}); err != nil {
		t.Fatal(err)
	}
	want := []trace.Sampled{trace.SampledYes, trace.SampledNo, trace.SampledUnknown, trace.SampledUnknown}
	check := func(how string, s trace.Span) {
		t.Helper()
		if len(s.Refs) != len(want) {
			t.Fatalf("%s: refs %+v", how, s.Refs)
		}
		for i, r := range s.Refs {
			if r.Sampled != want[i] || r.SpanID != trace.SpanID(i+1) {
				t.Errorf("%s: link %d says %v, want %v", how, i, r.Sampled, want[i])
			}
		}
	}
	check("otlp", set.Traces()[0].Spans[0])
	var b bytes.Buffer
	if err := WriteSnapshot(&b, "test", set.Traces()); err != nil {
		t.Fatal(err)
	}
	var again trace.Set
	if _, err := Read(&b, "snapshot", &again, &trace.Resources{}); err != nil {
		t.Fatal(err)
	}
	check("snapshot", again.Traces()[0].Spans[0])
}
