package engine

import (
	"bytes"
	"context"
	"encoding/gob"
	"reflect"
	"testing"

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
		r := wireReader{b: data[len(partialMagic)+1:]}
		got, err := r.partial()
		if err != nil {
			t.Fatalf("nonzero %v: %v", nonzero, err)
		}
		if !reflect.DeepEqual(*got, w) {
			t.Fatalf("nonzero %v: read back\n%+v\nwrote\n%+v", nonzero, *got, w)
		}
		for name, b := range map[string][]byte{"cut short": data[len(partialMagic)+1 : len(data)-1], "followed by more": append(data[len(partialMagic)+1:len(data):len(data)], 0)} {
			r := wireReader{b: b}
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
		t.Fatal("a partial of the second version finishes otherwise than the partial it was")
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
