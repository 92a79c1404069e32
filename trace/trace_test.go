package trace

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

func TestTraceIDRoundTrip(t *testing.T) {
	for _, s := range []string{"4bf92f3577b34da6a3ce929d0e0e4736", "00000000000000000000000000000001"} {
		id, err := ParseTraceID(s)
		if err != nil {
			t.Fatal(err)
		}
		if id.String() != s {
			t.Errorf("round trip %s -> %s", s, id)
		}
	}
	// Jaeger drops leading zeros.
	id, err := ParseTraceID("a3ce929d0e0e4736")
	if err != nil || id.High != 0 || id.String() != "0000000000000000a3ce929d0e0e4736" {
		t.Errorf("short id: %v %v", id, err)
	}
	for _, bad := range []string{"", "xyz", "0", "00000000000000000000000000000000", "4bf92f3577b34da6a3ce929d0e0e47361"} {
		if _, err := ParseTraceID(bad); err == nil {
			t.Errorf("ParseTraceID(%q) accepted", bad)
		}
	}
	if _, err := ParseSpanID("00f067aa0ba902b7"); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", "0", "zz", "00f067aa0ba902b7aa"} {
		if _, err := ParseSpanID(bad); err == nil {
			t.Errorf("ParseSpanID(%q) accepted", bad)
		}
	}
}

func TestParseKind(t *testing.T) {
	cases := map[string]Kind{"server": KindServer, "SPAN_KIND_CONSUMER": KindConsumer, "producer": KindProducer,
		"Client": KindClient, "internal": KindInternal, "nonsense": KindUnspecified}
	for in, want := range cases {
		if got := ParseKind(in); got != want {
			t.Errorf("ParseKind(%q) = %v, want %v", in, got, want)
		}
	}
}

func attrs(kv ...string) Attributes {
	var a Attributes
	for i := 0; i < len(kv); i += 2 {
		a = append(a, Attribute{kv[i], kv[i+1]})
	}
	return a
}

// Every semconv generation FACTS.md lists normalises to one view.
func TestMessagingGenerations(t *testing.T) {
	cases := []struct {
		name string
		kind Kind
		a    Attributes
		want Messaging
	}{
		{"kotel 1.18 producer", KindProducer, attrs("messaging.system", "kafka", "messaging.destination.name", "t",
			"messaging.operation", "publish", "messaging.kafka.destination.partition", "3", "messaging.kafka.message.offset", "17",
			"messaging.kafka.message.key", "k", "messaging.kafka.client_id", "c"),
			Messaging{System: "kafka", Destination: "t", Operation: OpPublish, Partition: 3, Offset: 17, Key: "k", ClientID: "c"}},
		{"kotel 1.18 consumer", KindConsumer, attrs("messaging.system", "kafka", "messaging.source.name", "t",
			"messaging.operation", "process", "messaging.kafka.source.partition", "1", "messaging.kafka.message.offset", "5",
			"messaging.kafka.consumer.group", "g"),
			Messaging{System: "kafka", Destination: "t", Operation: OpProcess, Partition: 1, Offset: 5, ConsumerGroup: "g"}},
		{"pre-1.17", KindConsumer, attrs("messaging.system", "kafka", "messaging.destination", "t", "messaging.destination_kind", "topic",
			"messaging.kafka.partition", "2", "messaging.message_id", "m1", "messaging.kafka.consumer_group", "g"),
			Messaging{System: "kafka", Destination: "t", Operation: OpReceive, Partition: 2, Offset: -1, MessageID: "m1", ConsumerGroup: "g"}},
		{"1.24+", KindConsumer, attrs("messaging.system", "kafka", "messaging.destination.name", "t",
			"messaging.operation.type", "receive", "messaging.operation.name", "poll", "messaging.destination.partition.id", "4",
			"messaging.kafka.offset", "99", "messaging.consumer.group.name", "g", "messaging.client.id", "c", "messaging.message.id", "m"),
			Messaging{System: "kafka", Destination: "t", Operation: OpReceive, Partition: 4, Offset: 99, MessageID: "m", ConsumerGroup: "g", ClientID: "c"}},
		{"1.27 send", KindProducer, attrs("messaging.system", "kafka", "messaging.destination.name", "t", "messaging.operation.type", "send"),
			Messaging{System: "kafka", Destination: "t", Operation: OpPublish, Partition: -1, Offset: -1}},
		{"create and settle", KindInternal, attrs("messaging.system", "kafka", "messaging.destination.name", "t", "messaging.operation.type", "settle"),
			Messaging{System: "kafka", Destination: "t", Operation: OpSettle, Partition: -1, Offset: -1}},
	}
	for _, c := range cases {
		s := Span{Kind: c.kind, Attributes: c.a}
		got, ok := s.Messaging()
		if !ok || got != c.want {
			t.Errorf("%s: got %+v (ok %v), want %+v", c.name, got, ok, c.want)
		}
	}
	// Not messaging: no system or destination, or an internal span without an operation.
	for _, a := range []Attributes{attrs("http.method", "GET"), attrs("messaging.system", "kafka")} {
		s := Span{Kind: KindInternal, Attributes: a}
		if m, ok := s.Messaging(); ok {
			t.Errorf("%v: unexpected messaging view %+v", a, m)
		}
	}
	// Bad numbers leave the field unknown rather than failing.
	s := Span{Kind: KindProducer, Attributes: attrs("messaging.destination.name", "t", "messaging.kafka.offset", "x")}
	if m, _ := s.Messaging(); m.Offset != -1 {
		t.Errorf("offset %d from a non-number", m.Offset)
	}
}

func TestPeer(t *testing.T) {
	old := Span{Attributes: attrs("db.system", "postgresql", "db.name", "shop", "net.peer.name", "db1", "peer.service", "pg")}
	neu := Span{Attributes: attrs("db.system.name", "postgresql", "db.namespace", "shop", "server.address", "db1", "peer.service", "pg")}
	want := Peer{Service: "pg", DBSystem: "postgresql", DBName: "shop", ServerAddress: "db1"}
	if old.Peer() != want || neu.Peer() != want {
		t.Errorf("old %+v new %+v, want %+v", old.Peer(), neu.Peer(), want)
	}
	if !(&Span{}).Peer().IsZero() {
		t.Error("empty span has a peer")
	}
}

func TestResourceInstance(t *testing.T) {
	if got := (&Resource{Attributes: attrs("host.name", "h", "service.instance.id", "i")}).Instance(); got != "i" {
		t.Errorf("got %q", got)
	}
	if got := (&Resource{Attributes: attrs("host.name", "h")}).Instance(); got != "h" {
		t.Errorf("got %q", got)
	}
	if got := (*Resource)(nil).Instance(); got != "" {
		t.Errorf("got %q", got)
	}
}

func mk(id TraceID, sid SpanID, parent SpanID) Span {
	s := Span{TraceID: id, SpanID: sid, Resource: &Resource{Service: "s"}}
	if parent != 0 {
		s.Refs = []Ref{{Type: RefParent, TraceID: id, SpanID: parent}}
	}
	return s
}

func TestValidate(t *testing.T) {
	id := TraceID{Low: 1}
	ok := Trace{ID: id, Spans: []Span{mk(id, 1, 0), mk(id, 2, 1), mk(id, 3, 2), mk(id, 4, 99)}}
	if err := Validate(&ok); err != nil {
		t.Errorf("valid trace: %v", err)
	}
	cycle := Trace{ID: id, Spans: []Span{mk(id, 1, 3), mk(id, 2, 1), mk(id, 3, 2), mk(id, 4, 0)}}
	if err := Validate(&cycle); !errors.Is(err, ErrParentCycle) {
		t.Errorf("cycle: %v", err)
	}
	self := Trace{ID: id, Spans: []Span{mk(id, 1, 1)}}
	if err := Validate(&self); !errors.Is(err, ErrParentCycle) {
		t.Errorf("self parent: %v", err)
	}
	dup := Trace{ID: id, Spans: []Span{mk(id, 1, 0), mk(id, 1, 0)}}
	if err := Validate(&dup); !errors.Is(err, ErrDuplicateSpan) {
		t.Errorf("duplicate: %v", err)
	}
	wrong := Trace{ID: id, Spans: []Span{mk(TraceID{Low: 2}, 1, 0)}}
	if err := Validate(&wrong); err == nil {
		t.Error("foreign span accepted")
	}
}

func TestSetMerges(t *testing.T) {
	id := TraceID{Low: 7}
	var set Set
	a := mk(id, 1, 0)
	a.Start = time.Unix(1, 0)
	if err := set.Add(Trace{ID: id, Spans: []Span{a}}); err != nil {
		t.Fatal(err)
	}
	// The same span again is dropped; a new span is merged.
	if err := set.Add(Trace{ID: id, Spans: []Span{a, mk(id, 2, 1)}}); err != nil {
		t.Fatal(err)
	}
	if set.Len() != 1 || set.SpanCount() != 2 || len(set.Traces()[0].Spans) != 2 {
		t.Fatalf("len %d spans %d", set.Len(), set.SpanCount())
	}
	// A different span under a known ID is an error.
	b := a
	b.Operation = "other"
	if err := set.Add(Trace{ID: id, Spans: []Span{b}}); !errors.Is(err, ErrDuplicateSpan) {
		t.Errorf("conflicting duplicate: %v", err)
	}
	if err := set.Add(Trace{ID: TraceID{Low: 3}}); err != nil {
		t.Fatal(err)
	}
	if ts := set.Traces(); ts[0].ID.Low != 3 || ts[1].ID.Low != 7 {
		t.Errorf("not sorted: %v %v", ts[0].ID, ts[1].ID)
	}
}

func TestResourcesShare(t *testing.T) {
	var r Resources
	a := r.Get("s", attrs("k", "v"))
	b := r.Get("s", attrs("k", "v"))
	c := r.Get("s", attrs("k", "w"))
	if a != b || a == c {
		t.Error("interning broken")
	}
}

// firstOf is the plain reading of fieldNames: per field, the first name in
// priority order whose attribute is present and non-empty.
func firstOf(a Attributes) [nFields]string {
	var v [nFields]string
	for f, names := range fieldNames {
		for _, n := range names {
			if val, ok := a.Get(n); ok && val != "" {
				v[f] = val
				break
			}
		}
	}
	return v
}

// TestScanMatchesPriorityOrder checks the one-pass scan against the plain
// reading on random attribute lists drawn from every known name, some
// unknown ones, and empty values.
func TestScanMatchesPriorityOrder(t *testing.T) {
	var names []string
	for _, list := range fieldNames {
		names = append(names, list...)
	}
	names = append(names, "messaging", "messaging.kafka", "db.systemx", "http.method", "")
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		var a Attributes
		seen := map[string]bool{}
		for j := rng.IntN(12); j > 0; j-- {
			k := names[rng.IntN(len(names))]
			if seen[k] {
				continue
			}
			seen[k] = true
			val := ""
			if rng.IntN(4) > 0 {
				val = strconv.Itoa(rng.IntN(100))
			}
			a = append(a, Attribute{k, val})
		}
		var pos Fields
		a.ScanFields(&pos)
		var got [nFields]string
		for f := range got {
			got[f] = pos.value(a, Field(f))
		}
		if want := firstOf(a); got != want {
			t.Fatalf("attributes %v: scan %q, want %q", a, got, want)
		}
	}
}

func TestParseCount(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int64
		want int64
	}{
		{"", 100, -1}, {"0", 100, 0}, {"17", 100, 17}, {"007", 100, 7}, {"+5", 100, 5}, {"-3", 100, -1},
		{"1x", 100, -1}, {"101", 100, -1}, {"2147483647", 2147483647, 2147483647}, {"2147483648", 2147483647, -1},
		{"9223372036854775807", 9223372036854775807, 9223372036854775807}, {"99999999999999999999", 9223372036854775807, -1},
	} {
		if got := parseCount(c.in, c.max); got != c.want {
			t.Errorf("parseCount(%q, %d) = %d, want %d", c.in, c.max, got, c.want)
		}
	}
}

// TestPack: packing keeps every span's attributes and refs, and appending
// to one span's afterwards does not touch its neighbour's.
func TestPack(t *testing.T) {
	tr := Trace{Spans: []Span{
		{SpanID: 1, Attributes: Attributes{{"a", "1"}, {"b", "2"}}, Refs: []Ref{{SpanID: 9}}},
		{SpanID: 2},
		{SpanID: 3, Attributes: Attributes{{"c", "3"}}, Refs: []Ref{{SpanID: 1}, {Type: RefLink, SpanID: 7}}},
	}}
	want := []Span{tr.Spans[0], tr.Spans[1], tr.Spans[2]}
	want[0].Attributes = append(Attributes(nil), want[0].Attributes...)
	want[2].Refs = append([]Ref(nil), want[2].Refs...)
	tr.Pack()
	for i := range want {
		if fmt.Sprint(tr.Spans[i]) != fmt.Sprint(want[i]) {
			t.Errorf("span %d: %+v, want %+v", i, tr.Spans[i], want[i])
		}
	}
	if len(tr.Spans[0].Attributes) == 0 || cap(tr.Spans[0].Attributes) != 2 {
		t.Fatalf("span 0's attributes: cap %d, want 2 (a full slice expression)", cap(tr.Spans[0].Attributes))
	}
	tr.Spans[0].Attributes = append(tr.Spans[0].Attributes, Attribute{"x", "y"})
	if tr.Spans[2].Attributes[0].Key != "c" {
		t.Error("appending to span 0's attributes overwrote span 2's")
	}
}
