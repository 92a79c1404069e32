package trace

import (
	"math"
	"strconv"
	"strings"
)

// MessagingOp is the normalised messaging operation.
type MessagingOp uint8

// Messaging operations, after semconv ≥1.24's messaging.operation.type.
const (
	OpUnknown MessagingOp = iota
	OpPublish
	OpCreate
	OpReceive
	OpProcess
	OpSettle
)

var opNames = [...]string{"", "publish", "create", "receive", "process", "settle"}

// String returns the operation's semconv name, or "" when unknown.
func (o MessagingOp) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return ""
}

func parseOp(s string) MessagingOp {
	switch s { // the usual spelling, without lowering its case
	case "publish":
		return OpPublish
	case "receive":
		return OpReceive
	case "process":
		return OpProcess
	case "":
		return OpUnknown
	}
	switch strings.ToLower(s) {
	case "publish", "send":
		return OpPublish
	case "create":
		return OpCreate
	case "receive", "poll", "deliver":
		return OpReceive
	case "process":
		return OpProcess
	case "settle", "ack", "nack", "commit":
		return OpSettle
	}
	return OpUnknown
}

// Messaging is the normalised messaging view of a span. Partition and Offset
// are -1 when the span does not carry them.
type Messaging struct {
	System        string // "kafka", …
	Destination   string // the topic
	Operation     MessagingOp
	Partition     int32
	Offset        int64
	Key           string
	MessageID     string
	ConsumerGroup string
	ClientID      string
}

// Attribute names by semconv generation, per field of the views. The first
// present (non-empty) name wins, so newer names come first.
var fieldNames = [nFields][]string{
	fSystem: {"messaging.system"},
	fDestination: {
		"messaging.destination.name", // 1.17+ producers, 1.24+ both sides
		"messaging.source.name",      // 1.17–1.23 consumers (kotel)
		"messaging.destination",      // ≤1.16
		"messaging.kafka.topic",
	},
	fOperation: {
		"messaging.operation.type", // 1.27+
		"messaging.operation",      // ≤1.26
		"messaging.operation.name", // 1.27+, system-specific (send, poll)
	},
	fPartition: {
		"messaging.destination.partition.id", // 1.26+
		"messaging.kafka.destination.partition",
		"messaging.kafka.source.partition",
		"messaging.kafka.partition",
	},
	fOffset: {
		"messaging.kafka.offset",         // 1.24+
		"messaging.kafka.message.offset", // 1.17–1.23 (kotel)
	},
	fKey: {
		"messaging.kafka.message.key",
		"messaging.kafka.message_key",
	},
	fMessageID: {
		"messaging.message.id",
		"messaging.message_id",
	},
	fGroup: {
		"messaging.consumer.group.name", // 1.27+
		"messaging.kafka.consumer.group",
		"messaging.kafka.consumer_group",
	},
	fClientID: {
		"messaging.client.id", // 1.24+
		"messaging.client_id",
		"messaging.kafka.client_id",
	},
	fPeerService: {"peer.service"},
	fDBSystem:    {"db.system.name", "db.system"},
	fDBName:      {"db.namespace", "db.name"},
	fServerAddr:  {"server.address", "net.peer.name"},
}

// Field is one value of the messaging or peer view.
type Field uint8

const (
	fSystem Field = iota
	fDestination
	fOperation
	fPartition
	fOffset
	fKey
	fMessageID
	fGroup
	fClientID
	fPeerService
	fDBSystem
	fDBName
	fServerAddr
	nFields
)

// NumFields is the number of Fields.
const NumFields = int(nFields)

// known is one attribute name a view reads: its field and its rank among
// that field's names (0 wins).
type known struct {
	name  string
	field Field
	rank  uint8
}

// knownByLen indexes fieldNames by name length, so a scan compares a key
// with the one or two names of its length instead of hashing it.
var knownByLen = func() [][]known {
	var t [][]known
	for f, names := range fieldNames {
		for r, n := range names {
			for len(t) <= len(n) {
				t = append(t, nil)
			}
			t[len(n)] = append(t[len(n)], known{n, Field(f), uint8(r)})
		}
	}
	return t
}()

// Fields holds, per view field, the position of the attribute that gives
// it: the highest-ranked name present with a non-empty value; -1: none.
type Fields [nFields]int32

// NoFields is Fields with no field given.
var NoFields = func() (v Fields) {
	for i := range v {
		v[i] = -1
	}
	return v
}()

// value returns field f's value in a, whose positions v holds.
func (v *Fields) value(a Attributes, f Field) string {
	if p := v[f]; p >= 0 {
		return a[p].Value
	}
	return ""
}

// ScanFields reads every attribute once and finds, per field, the
// highest-ranked name present with a non-empty value.
func (a Attributes) ScanFields(v *Fields) {
	var rank [nFields]uint8
	*v = NoFields
	for i := range a {
		if a[i].Value == "" {
			continue
		}
		c, ok := lookupKnown(a[i].Key)
		if ok && (v[c.field] < 0 || c.rank < rank[c.field]) {
			rank[c.field] = c.rank
			v[c.field] = int32(i)
		}
	}
}

// FieldOf returns the view field an attribute name gives, if any.
func FieldOf(key string) (Field, bool) {
	c, ok := lookupKnown(key)
	return c.field, ok
}

// lookupKnown finds the view field a key names.
func lookupKnown(k string) (known, bool) {
	if len(k) < len(knownByLen) {
		for _, c := range knownByLen[len(k)] {
			if c.name == k {
				return c, true
			}
		}
	}
	return known{}, false
}

// Messaging returns the span's messaging view. ok is false when the span is
// not a messaging span: it names no messaging system or destination, or it
// is neither a producer nor a consumer and names no operation.
func (s *Span) Messaging() (m Messaging, ok bool) {
	var v Fields
	s.Attributes.ScanFields(&v)
	if !MessagingFrom(&m, s.Kind, s.Attributes, &v) {
		return Messaging{}, false
	}
	return m, true
}

// MessagingFrom fills m from the attributes a of a span of this kind, whose
// fields v holds (ScanFields), and reports whether the span is a messaging
// span (see Span.Messaging); when it is not, m is left partly written.
func MessagingFrom(m *Messaging, kind Kind, a Attributes, v *Fields) bool {
	sys, dest := v.value(a, fSystem), v.value(a, fDestination)
	if sys == "" && dest == "" {
		return false
	}
	op := parseOp(v.value(a, fOperation))
	if op == OpUnknown {
		switch kind {
		case KindProducer:
			op = OpPublish
		case KindConsumer:
			op = OpReceive
		default:
			return false
		}
	}
	// Every field is set, one by one (a struct literal is built aside and
	// copied): a field added to Messaging must be set here too.
	m.System, m.Destination, m.Operation = sys, dest, op
	m.Partition = int32(parseCount(v.value(a, fPartition), math.MaxInt32))
	m.Offset = parseCount(v.value(a, fOffset), math.MaxInt64)
	m.Key, m.MessageID = v.value(a, fKey), v.value(a, fMessageID)
	m.ConsumerGroup, m.ClientID = v.value(a, fGroup), v.value(a, fClientID)
	return true
}

// parseCount reads a partition or offset: a decimal number from 0 to max,
// else -1. Plain digits, the usual form, are read without strconv.
func parseCount(s string, max int64) int64 {
	if s == "" {
		return -1
	}
	if len(s) <= 18 {
		var n int64
		for i := 0; i < len(s); i++ {
			c := s[i] - '0'
			if c > 9 {
				goto slow
			}
			n = n*10 + int64(c)
		}
		if n > max {
			return -1
		}
		return n
	}
slow:
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > max {
		return -1
	}
	return n
}

// IsProducer reports whether the view is of a span that writes a message.
func (m Messaging) IsProducer() bool { return m.Operation == OpPublish || m.Operation == OpCreate }

// IsConsumer reports whether the view is of a span that reads or handles a message.
func (m Messaging) IsConsumer() bool { return m.Operation == OpReceive || m.Operation == OpProcess }

// Peer is the view of a call to something that may not be instrumented.
type Peer struct {
	Service       string // peer.service
	DBSystem      string // db.system.name / db.system
	DBName        string // db.namespace / db.name
	ServerAddress string // server.address / net.peer.name
}

// IsZero reports whether the span names no peer at all.
func (p Peer) IsZero() bool { return p == Peer{} }

// Peer returns the span's peer view.
func (s *Span) Peer() Peer {
	var v Fields
	s.Attributes.ScanFields(&v)
	a := s.Attributes
	return Peer{Service: v.value(a, fPeerService), DBSystem: v.value(a, fDBSystem), DBName: v.value(a, fDBName), ServerAddress: v.value(a, fServerAddr)}
}

// SameHop reports whether p is a messaging span on the same topic as m: a
// producer when producer is set, else a consumer. It finds the nested spans
// one record gets inside a service (a process span under its receive span,
// a publish span under another).
func SameHop(p *Span, m Messaging, producer bool) bool {
	if p == nil {
		return false
	}
	pm, ok := p.Messaging()
	return ok && SameHopView(&pm, &m, producer)
}

// SameHopView is SameHop with the parent's view at hand.
func SameHopView(pm, m *Messaging, producer bool) bool {
	if pm.Destination != m.Destination {
		return false
	}
	if producer {
		return pm.IsProducer()
	}
	return pm.IsConsumer()
}
