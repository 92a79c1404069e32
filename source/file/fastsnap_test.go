package file

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/trace"
)

// agree holds fastTrace to encoding/json and convertTrace on line:
// whatever fastTrace accepts, they decode and convert to the same trace,
// laid out the same way.
func agree(t *testing.T, line []byte) bool {
	t.Helper()
	got, ok := fastTrace(line, &trace.Strings{})
	var l snapLine
	err := json.Unmarshal(line, &l)
	if !ok {
		return false
	}
	if err != nil || l.T == nil {
		t.Fatalf("fastTrace took %q, which encoding/json refuses or reads as no trace: %v", line, err)
	}
	want, err := convertTrace(l.T)
	if err != nil {
		t.Fatalf("fastTrace took %q, which convertTrace refuses: %v", line, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fastTrace and encoding/json differ on %q:\n%+v\n%+v", line, got, want)
	}
	return true
}

// snapshotLines returns the records of a snapshot after its header.
func snapshotLines(t *testing.T, data []byte) [][]byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines[1:]
}

// TestFastTraceTakesWhatTheWriterWrites: every trace record ktrace writes,
// and those of the bundled snapshots, take the fast path, and decode as
// encoding/json decodes them.
func TestFastTraceTakesWhatTheWriterWrites(t *testing.T) {
	defer func(n int) { RecordSpans = n }(RecordSpans)
	RecordSpans = 15 // some traces take several records
	cfg := synth.Standard(6000)
	cfg.LinkShare = 0.5
	ts := synth.Generate(cfg)
	ts[0].Spans[0].StatusMessage = "timeout: ünïcode and \"quotes\"" // escaped: encoding/json's
	ts[1].Spans[0].Error = true
	var buf bytes.Buffer
	if err := WriteSnapshot(&buf, "test", ts); err != nil {
		t.Fatal(err)
	}
	inputs := [][]byte{buf.Bytes()}
	for _, f := range []string{"../../fixtures/stargazers-links.ktrace", "../../fixtures/stargazers-lost.ktrace"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, b)
	}
	fast, slow := 0, 0
	for _, in := range inputs {
		for _, line := range snapshotLines(t, in) {
			isTrace := bytes.HasPrefix(line, []byte(`{"t":`))
			switch took := agree(t, line); {
			case took:
				fast++
			case isTrace && !bytes.Contains(line, []byte(`\`)):
				t.Fatalf("a trace record without escapes missed the fast path: %.200s", line)
			default:
				slow++
			}
		}
	}
	if fast < len(ts)-1 || slow == 0 {
		t.Errorf("%d records on the fast path, %d on encoding/json; want all traces but the escaped one fast, resources slow", fast, slow)
	}
}

// The variants fastTrace must leave to encoding/json, and those it takes.
var fastTraceCases = []struct {
	line string
	fast bool
}{
	{`{"t":{"id":"0000000000000000000000000000000a","spans":[{"i":"00000000000000a1","o":"op","k":2,"s":1700000000000000000,"d":5,"e":true,"m":"boom","r":[["parent","0000000000000000000000000000000a","00000000000000a0"]],"a":[["k","v"],["n","1"]],"p":3}]}}`, true},
	{" { \"t\" : { \"id\" : \"a\" , \"spans\" : [ { \"i\" : \"1\" , \"s\" : -0 , \"p\" : 0 } ] } } \r", true},
	{`{"t":{"spans":[],"id":"a"}}`, true},
	{`{"t":{"id":"a","spans":[{"i":"1","r":[],"a":[],"e":false,"s":-9223372036854775808,"d":9223372036854775807}]}}`, true},
	{`{"t":{"id":"a","spans":[{"i":"1","i":"2"}]}}`, true},
	{`{"t":{"id":"a","spans":[{"i":"1","o":"é ☃"}]}}`, true},
	{`{"t":{"id":"00000000000000000000000000000A","spans":[{"i":"Ff","r":[["link","b","C"],["x","1","2"]],"a":[["k","v"],["k","w"]]},{"i":"2","a":[],"r":[]}]}}`, true},
	{`{"t":{"id":"a","n":3,"more":true,"spans":[{"i":"1"}]}}`, true},
	{`{"t":{"more":false,"id":"a","n":0,"spans":[]}}`, true},
	{`{"t":{"id":"a","n":2147483647,"spans":[]}}`, true},
	{`{"t":{"id":"a","n":2147483648,"spans":[]}}`, false},
	{`{"t":{"id":"a","n":-1,"spans":[]}}`, false},
	{`{"t":{"id":"a","n":1.5,"spans":[]}}`, false},
	{`{"t":{"id":"a","more":"yes","spans":[]}}`, false},
	{`{"t":{"id":"a","spans":[{"o":"x"}]}}`, false},
	{`{"t":{"spans":[]}}`, false},
	{`{"t":{"id":"","spans":[]}}`, false},
	{`{"t":{"id":"0","spans":[]}}`, false},
	{`{"t":{"id":"g","spans":[]}}`, false},
	{`{"t":{"id":"100000000000000000000000000000000","spans":[]}}`, false},
	{`{"t":{"id":"a","spans":[{"i":"0"}]}}`, false},
	{`{"t":{"id":"a","spans":[{"i":"10000000000000000"}]}}`, false},
	{`{"t":{"id":"a","spans":[{"i":"1","r":[["parent","a","0"]]}]}}`, false},
	{`{"t":{"id":"a","spans":[{"i":"1","r":[["parent","-1","1"]]}]}}`, false},
	{`{"r":{"id":1,"service":"s"}}`, false},
	{`{"t":{"id":"a\u0062","spans":[]}}`, false},
	{`{"t":{"id":"a","spans":null}}`, false},
	{`{"t":null}`, false},
	{`{"T":{"id":"a","spans":[]}}`, false},
	{`{"t":{"ID":"a","spans":[]}}`, false},
	{`{"t":{"id":"a","spans":[{"I":"1"}]}}`, false},
	{`{"t":{"id":"a","spans":[{"x":1}]}}`, false},
	{`{"t":{"id":"a","spans":[{"s":1.5}]}}`, false},
	{`{"t":{"id":"a","spans":[{"s":1e3}]}}`, false},
	{`{"t":{"id":"a","spans":[{"s":01}]}}`, false},
	{`{"t":{"id":"a","spans":[{"s":9223372036854775808}]}}`, false},
	{`{"t":{"id":"a","spans":[{"s":-9223372036854775809}]}}`, false},
	{`{"t":{"id":"a","spans":[{"k":256}]}}`, false},
	{`{"t":{"id":"a","spans":[{"k":-1}]}}`, false},
	{`{"t":{"id":"a","spans":[{"e":tru}]}}`, false},
	{`{"t":{"id":"a","spans":[{"e":null}]}}`, false},
	{`{"t":{"id":"a","spans":[{"r":[["parent","x"]]}]}}`, false},
	{`{"t":{"id":"a","spans":[{"a":[["k","v","w"]]}]}}`, false},
	{`{"t":{"id":"a","spans":[{"o":"` + "\xff" + `"}]}}`, false},
	{`{"t":{"id":"a","spans":[{"o":"` + "\t" + `"}]}}`, false},
	{`{"t":{"id":"a","spans":[]}} x`, false},
	{`{"t":{"id":"a","spans":[]},"r":{"id":1}}`, false},
	{`{"t":{"id":"a","spans":[{},]}}`, false},
	{`{"t":{"id":"a","spans":[{"i":"1",}]}}`, false},
	{`{"t":{"id":"a","spans":[{"i":"1"}`, false},
	{`{"t":{"id":"a","spans":[{"i":"1"}]}`, false},
	{``, false},
}

func TestFastTraceVariants(t *testing.T) {
	for _, c := range fastTraceCases {
		if got := agree(t, []byte(c.line)); got != c.fast {
			t.Errorf("fastTrace took %q: %v, want %v", c.line, got, c.fast)
		}
	}
}

// FuzzFastTrace: on any input, what fastTrace takes encoding/json decodes
// the same way.
func FuzzFastTrace(f *testing.F) {
	for _, c := range fastTraceCases {
		f.Add([]byte(c.line))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if strings.Contains(string(line), "\n") {
			return // a record is one line
		}
		agree(t, line)
	})
}
