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
	if len(s.m) != 1 {
		t.Fatalf("table holds %d strings, want 1 (long ones are not kept)", len(s.m))
	}
}

// Resources held are bounded: past the cap a resource is handed out
// whole, unshared, and those kept before are still shared.
func TestResourcesBounded(t *testing.T) {
	var r Resources
	pod := func(i int) Attributes { return Attributes{{Key: "k8s.pod.name", Value: "pod-" + strconv.Itoa(i)}} }
	first := r.Get("svc", pod(0))
	for i := 1; i < MaxResources+100; i++ {
		if got := r.Get("svc", pod(i)); got.Service != "svc" || got.Attributes[0].Value != "pod-"+strconv.Itoa(i) {
			t.Fatalf("resource %d: %+v", i, got)
		}
	}
	if len(r.m) != MaxResources {
		t.Fatalf("table holds %d resources, want the cap %d", len(r.m), MaxResources)
	}
	if r.Get("svc", pod(0)) != first {
		t.Fatal("a resource kept before the cap is no longer shared")
	}
	if late := r.Get("svc", pod(MaxResources+1)); late == r.Get("svc", pod(MaxResources+1)) || late.Attributes[0].Value != "pod-"+strconv.Itoa(MaxResources+1) {
		t.Fatal("a resource past the cap is shared, or not what was asked")
	}
	// So are the resources kept by their encoding.
	for i := range MaxResources + 100 {
		r.KeepEncoded([]byte("enc-"+strconv.Itoa(i)), first)
	}
	if len(r.encoded) != MaxResources {
		t.Fatalf("%d resources kept by their encoding, want the cap %d", len(r.encoded), MaxResources)
	}
	if got, ok := r.Encoded([]byte("enc-0")); !ok || got != first {
		t.Fatal("a resource kept by its encoding is not found by it")
	}
	if _, ok := r.Encoded([]byte("enc-" + strconv.Itoa(MaxResources+1))); ok {
		t.Fatal("a resource past the cap is kept by its encoding")
	}
}

func TestStringsBounded(t *testing.T) {
	var s Strings
	for i := 0; i < MaxStrings+100; i++ {
		v := strconv.Itoa(i)
		if got := s.Bytes([]byte(v)); got != v {
			t.Fatalf("Bytes(%q) = %q", v, got)
		}
	}
	if len(s.m) != MaxStrings {
		t.Fatalf("table holds %d strings, want the cap %d", len(s.m), MaxStrings)
	}
	first := s.Get(strings.Clone("0"))
	if unsafe.StringData(first) != unsafe.StringData(s.Get(strings.Clone("0"))) {
		t.Fatal("a string kept before the cap is no longer shared")
	}
}
