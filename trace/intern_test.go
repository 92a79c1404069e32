package trace

import (
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

func TestStringsShares(t *testing.T) {
	var s Strings
	a := s.Bytes([]byte("orders publish"))
	b := s.Get(strings.Clone("orders publish"))
	if a != b || unsafe.StringData(a) != unsafe.StringData(b) {
		t.Fatalf("equal short strings not shared: %q at %p, %q at %p", a, unsafe.StringData(a), b, unsafe.StringData(b))
	}
	long := strings.Repeat("x", MaxShared+1)
	l1, l2 := s.Get(long), s.Bytes([]byte(long))
	if l1 != long || l2 != long || unsafe.StringData(l2) == unsafe.StringData(l1) {
		t.Fatalf("a string over %d bytes was shared or changed", MaxShared)
	}
	if s.m.len() != 1 {
		t.Fatalf("table holds %d strings, want 1 (long ones are not kept)", s.m.len())
	}
}

// A reader that runs for weeks meets ever new processes: the resources
// held stay bounded, one met all along stays shared, and one first met
// after the table was full is shared too.
func TestResourcesBounded(t *testing.T) {
	var r Resources
	pod := func(i int) Attributes { return Attributes{{Key: "k8s.pod.name", Value: "pod-" + strconv.Itoa(i)}} }
	first := r.Get("svc", pod(0))
	for i := 1; i < 5*MaxResources; i++ {
		if got := r.Get("svc", pod(i)); got.Service != "svc" || got.Attributes[0].Value != "pod-"+strconv.Itoa(i) {
			t.Fatalf("resource %d: %+v", i, got)
		}
		if i%100 == 0 && r.Get("svc", pod(0)) != first {
			t.Fatalf("after %d others, a resource met all along is no longer shared", i)
		}
		if n := r.m.len(); n > MaxResources {
			t.Fatalf("table holds %d resources, over the cap %d", n, MaxResources)
		}
	}
	late := r.Get("svc", pod(5*MaxResources))
	if late != r.Get("svc", pod(5*MaxResources)) || late.Attributes[0].Value != "pod-"+strconv.Itoa(5*MaxResources) {
		t.Fatal("a resource met after the table was full is not shared, or not what was asked")
	}
	// So are the resources kept by their encoding.
	for i := range 5 * MaxResources {
		r.KeepEncoded([]byte("enc-"+strconv.Itoa(i)), first)
		if i%100 == 0 {
			if got, ok := r.Encoded([]byte("enc-0")); !ok || got != first {
				t.Fatalf("after %d others, a resource kept by its encoding and met all along is not found by it", i)
			}
		}
		if n := r.encoded.len(); n > MaxResources {
			t.Fatalf("%d resources kept by their encoding, over the cap %d", n, MaxResources)
		}
	}
	if got, ok := r.Encoded([]byte("enc-" + strconv.Itoa(5*MaxResources-1))); !ok || got != first {
		t.Fatal("a resource kept by its encoding after the table was full is not found by it")
	}
	if _, ok := r.Encoded([]byte("enc-1")); ok {
		t.Fatal("a resource met once, long ago, is still held by its encoding")
	}
}

// Strings are bounded the same way: offsets and IDs age out, a name met
// all along stays shared, and a name first met late is shared too.
func TestStringsBounded(t *testing.T) {
	var s Strings
	shared := func(v string) bool {
		return unsafe.StringData(s.Get(strings.Clone(v))) == unsafe.StringData(s.Bytes([]byte(v)))
	}
	name := s.Get(strings.Clone("orders publish"))
	for i := 0; i < 5*MaxStrings; i++ {
		v := strconv.Itoa(i)
		if got := s.Bytes([]byte(v)); got != v {
			t.Fatalf("Bytes(%q) = %q", v, got)
		}
		if i%1000 == 0 && unsafe.StringData(s.Get(strings.Clone("orders publish"))) != unsafe.StringData(name) {
			t.Fatalf("after %d others, a name met all along is no longer shared", i)
		}
		if n := s.m.len(); n > MaxStrings {
			t.Fatalf("table holds %d strings, over the cap %d", n, MaxStrings)
		}
	}
	if !shared("payments settle") {
		t.Fatal("a name first met after the table was full is not shared")
	}
	if _, ok := s.m.lookupString("1", MaxStrings); ok {
		t.Fatal("a string met once, long ago, is still held")
	}
}

// Attributes are kept by their encoding when it is short, and found by it.
func TestStringsAttribute(t *testing.T) {
	var s Strings
	a := Attribute{Key: "messaging.system", Value: "kafka"}
	s.KeepAttribute([]byte("enc"), a)
	if got, ok := s.Attribute([]byte("enc")); !ok || got != a {
		t.Fatalf("kept attribute found as %+v, %v", got, ok)
	}
	long := []byte(strings.Repeat("x", 2*MaxShared+1))
	s.KeepAttribute(long, a)
	if _, ok := s.Attribute(long); ok || s.attrs.len() != 1 {
		t.Fatal("an attribute with a long encoding was kept")
	}
	if _, ok := s.Attribute([]byte("other")); ok {
		t.Fatal("an attribute never kept was found")
	}
}
