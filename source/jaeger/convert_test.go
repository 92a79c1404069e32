package jaeger

import (
	"math"
	"testing"

	model "github.com/jaegertracing/jaeger-idl/model/v1"
)

// TestResourcesOf: spans of one process share a resource; a process of the
// same service with other tags (another instance) gets its own; and going
// back to the first process finds the first resource again.
func TestResourcesOf(t *testing.T) {
	proc := func(inst string, tags ...model.KeyValue) *model.Process {
		return &model.Process{ServiceName: "orders", Tags: append([]model.KeyValue{{Key: "service.instance.id", VStr: inst}}, tags...)}
	}
	var r resources
	a1, a2 := r.of(proc("a")), r.of(proc("a"))
	b := r.of(proc("b"))
	a3 := r.of(proc("a"))
	if a1 != a2 || a1 != a3 {
		t.Errorf("one process got resources %p %p %p, want one", a1, a2, a3)
	}
	if b == a1 || b.Instance() != "b" || a1.Instance() != "a" || b.Service != "orders" {
		t.Errorf("instances a %+v, b %+v: want two resources of orders", a1, b)
	}
	n1 := r.of(proc("a", model.KeyValue{Key: "x", VType: model.ValueType_FLOAT64, VFloat64: math.NaN()}))
	n2 := r.of(proc("a", model.KeyValue{Key: "x", VType: model.ValueType_FLOAT64, VFloat64: math.NaN()}))
	i7 := r.of(proc("a", model.KeyValue{Key: "x", VType: model.ValueType_INT64, VInt64: 7}))
	i8 := r.of(proc("a", model.KeyValue{Key: "x", VType: model.ValueType_INT64, VInt64: 8}))
	if n1 != n2 || i7 == i8 || n1 == a1 {
		t.Errorf("resources by tag value: NaN %p %p, 7 %p, 8 %p, none %p", n1, n2, i7, i8, a1)
	}
	if none := r.of(nil); none == nil || none.Service != "" || r.of(nil) != none {
		t.Errorf("spans without a process: resource %+v", none)
	}
}
