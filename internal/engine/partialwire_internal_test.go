package engine

import (
	"bytes"
	"context"
	"encoding/gob"
	"os"
	"reflect"
	"testing"

	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/synth"
)

// fill sets every field v reaches: lists get one element, and with
// nonzero every number, string and flag a value that is not zero (else
// they stay zero, the smallest encoding).
func fill(v reflect.Value, nonzero bool) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), nonzero)
		}
	case reflect.Array:
		for i := range v.Len() {
			fill(v.Index(i), nonzero)
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), nonzero)
	case reflect.String:
		if nonzero {
			v.SetString("s")
		}
	case reflect.Bool:
		v.SetBool(nonzero)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if nonzero {
			v.SetInt(-3)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if nonzero {
			v.SetUint(3)
		}
	default:
		panic("fill: no way to fill a " + v.Kind().String())
	}
}

// TestPartialWireFields: a flattened partial with every field of every
// wire type set (a field added to one and not to the format fails here),
// and one whose every list holds a zero element (the smallest each
// element is, which reading must not refuse), read back as written; and
// the same cut short, or followed by more, is refused.
func TestPartialWireFields(t *testing.T) {
	for _, nonzero := range []bool{true, false} {
		var w wirePartial
		fill(reflect.ValueOf(&w).Elem(), nonzero)
		data := encodeWire(&w)
		r := wireReader{b: data[len(partialMagic)+1:], version: partialVersion}
		got, err := r.partial()
		if err != nil {
			t.Fatalf("nonzero %v: %v", nonzero, err)
		}
		if !reflect.DeepEqual(*got, w) {
			t.Fatalf("nonzero %v: read back\n%+v\nwrote\n%+v", nonzero, *got, w)
		}
		for name, b := range map[string][]byte{"cut short": data[len(partialMagic)+1 : len(data)-1], "followed by more": append(data[len(partialMagic)+1:len(data):len(data)], 0)} {
			r := wireReader{b: b, version: partialVersion}
			if _, err := r.partial(); err == nil {
				t.Errorf("nonzero %v, %s: read", nonzero, name)
			}
		}
	}
}

// TestPartialGob: partials of the first version (encoding/gob), as
// results published before hold them, are still read, as what they
// held.
func TestPartialGob(t *testing.T) {
	ts := synth.Generate(synth.Config{Traces: 200, BrokenShare: 0.3, LinkShare: 0.3, Seed: 4})
	p, err := Collect(context.Background(), Slice(ts), Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := p.a.wire()
	var buf bytes.Buffer
	buf.WriteString(partialMagic)
	buf.WriteByte(partialGob)
	if err := gob.NewEncoder(&buf).Encode(&w); err != nil {
		t.Fatal(err)
	}
	old, err := decodePartial(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	data, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	now, err := decodePartial(data)
	if err != nil {
		t.Fatal(err)
	}
	g, r := p.Finish()
	g1, r1 := (&Partial{a: old}).Finish()
	g2, r2 := (&Partial{a: now}).Finish()
	if !reflect.DeepEqual(g1, g) || !reflect.DeepEqual(r1, r) {
		t.Fatal("a partial of the first version finishes otherwise than the partial it was")
	}
	if !reflect.DeepEqual(g2, g) || !reflect.DeepEqual(r2, r) {
		t.Fatal("a partial of this version finishes otherwise than the partial it was")
	}
}

// TestPartialV2: a partial of the second version, written by the ktrace
// before edges' samples could be sent rounded (testdata/partial-v2.bin),
// is still read, as what it held.
func TestPartialV2(t *testing.T) {
	data, err := os.ReadFile("testdata/partial-v2.bin")
	if err != nil {
		t.Fatal(err)
	}
	if data[len(partialMagic)] != partialV2 {
		t.Fatalf("testdata/partial-v2.bin is of version %d", data[len(partialMagic)])
	}
	old, err := decodePartial(data)
	if err != nil {
		t.Fatal(err)
	}
	ts := synth.Generate(synth.Config{Traces: 60, BrokenShare: 0.3, LinkShare: 0.3, SamplerTags: true, SampleRatio: 0.5, Seed: 23})
	p, err := Collect(context.Background(), Slice(ts), Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	g, r := p.Finish()
	g1, r1 := (&Partial{a: old}).Finish()
	if g.Traces == 0 || !reflect.DeepEqual(g1, g) || !reflect.DeepEqual(r1, r) {
		t.Fatal("the partial of the second version finishes otherwise than the traces it was made of")
	}
}

// FuzzPartialBytes: any bytes behind the header are refused or read,
// never a panic, and what is read finishes.
//
//	go test ./internal/engine -run '^$' -fuzz FuzzPartialBytes -fuzztime 5m
func FuzzPartialBytes(f *testing.F) {
	ts := synth.Generate(synth.Config{Traces: 30, BrokenShare: 0.3, LinkShare: 0.3, Seed: 5})
	p, err := Collect(context.Background(), Slice(ts), Options{})
	if err != nil {
		f.Fatal(err)
	}
	data, err := p.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data[len(partialMagic)+1:])
	var w wirePartial
	fill(reflect.ValueOf(&w).Elem(), true)
	full := encodeWire(&w)
	f.Add(full[len(partialMagic)+1:])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodePartial(append([]byte(partialMagic+"\x02"), b...))
		if err == nil {
			(&Partial{a: a}).Finish()
		}
	})
}

// TestRoundedOnTheWire: an edge busier than graph.ExactSamples goes into
// a partial's bytes as counts of rounded values, fewer than its samples;
// a quiet one as its samples.
func TestRoundedOnTheWire(t *testing.T) {
	ts := synth.Generate(synth.Config{Traces: 5000, SpansPerTrace: 8, Services: 2, Topics: 1, Seed: 21})
	ts = append(ts, synth.Generate(synth.Config{Traces: 20, Services: 6, Seed: 22})...) // quiet edges
	p, err := Collect(context.Background(), Slice(ts), Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	w := p.a.wire()
	busy, quiet := 0, 0
	for _, e := range w.Edges {
		n := len(e.Latencies)
		for _, c := range e.Rounded {
			n += c.Count
		}
		switch {
		case n > graph.ExactSamples && (e.Latencies != nil || len(e.Rounded) == 0 || len(e.Rounded) >= n/2):
			t.Errorf("an edge of %d samples: %d whole, %d rounded values", n, len(e.Latencies), len(e.Rounded))
		case n > graph.ExactSamples:
			busy++
		case e.Rounded != nil:
			t.Errorf("an edge of %d samples: rounded", n)
		default:
			quiet++
		}
	}
	if busy == 0 || quiet == 0 {
		t.Errorf("%d busy edges and %d quiet: the test shows too little", busy, quiet)
	}
}
