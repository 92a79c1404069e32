package trace

import (
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

// Attribute names by semconv generation. The first present name wins, so
// newer names come first.
var (
	attrDestination = []string{
		"messaging.destination.name", // 1.17+ producers, 1.24+ both sides
		"messaging.source.name",      // 1.17–1.23 consumers (kotel)
		"messaging.destination",      // ≤1.16
		"messaging.kafka.topic",
	}
	attrOperation = []string{
		"messaging.operation.type", // 1.27+
		"messaging.operation",      // ≤1.26
		"messaging.operation.name", // 1.27+, system-specific (send, poll)
	}
	attrPartition = []string{
		"messaging.destination.partition.id", // 1.26+
		"messaging.kafka.destination.partition",
		"messaging.kafka.source.partition",
		"messaging.kafka.partition",
	}
	attrOffset = []string{
		"messaging.kafka.offset",         // 1.24+
		"messaging.kafka.message.offset", // 1.17–1.23 (kotel)
	}
	attrKey = []string{
		"messaging.kafka.message.key",
		"messaging.kafka.message_key",
	}
	attrMessageID = []string{
		"messaging.message.id",
		"messaging.message_id",
	}
	attrGroup = []string{
		"messaging.consumer.group.name", // 1.27+
		"messaging.kafka.consumer.group",
		"messaging.kafka.consumer_group",
	}
	attrClientID = []string{
		"messaging.client.id", // 1.24+
		"messaging.client_id",
		"messaging.kafka.client_id",
	}
	attrPeerService = []string{"peer.service"}
	attrDBSystem    = []string{"db.system.name", "db.system"}
	attrDBName      = []string{"db.namespace", "db.name"}
	attrServerAddr  = []string{"server.address", "net.peer.name"}
)

func (a Attributes) first(keys []string) string {
	for _, k := range keys {
		if v, ok := a.Get(k); ok && v != "" {
			return v
		}
	}
	return ""
}

// Messaging returns the span's messaging view. ok is false when the span is
// not a messaging span: it names no messaging system or destination, or it
// is neither a producer nor a consumer and names no operation.
func (s *Span) Messaging() (m Messaging, ok bool) {
	a := s.Attributes
	m.System, _ = a.Get("messaging.system")
	m.Destination = a.first(attrDestination)
	if m.System == "" && m.Destination == "" {
		return Messaging{}, false
	}
	m.Operation = parseOp(a.first(attrOperation))
	if m.Operation == OpUnknown {
		switch s.Kind {
		case KindProducer:
			m.Operation = OpPublish
		case KindConsumer:
			m.Operation = OpReceive
		default:
			return Messaging{}, false
		}
	}
	m.Partition = -1
	if v := a.first(attrPartition); v != "" {
		if p, err := strconv.ParseInt(v, 10, 32); err == nil {
			m.Partition = int32(p)
		}
	}
	m.Offset = -1
	if v := a.first(attrOffset); v != "" {
		if o, err := strconv.ParseInt(v, 10, 64); err == nil {
			m.Offset = o
		}
	}
	m.Key = a.first(attrKey)
	m.MessageID = a.first(attrMessageID)
	m.ConsumerGroup = a.first(attrGroup)
	m.ClientID = a.first(attrClientID)
	return m, true
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
	a := s.Attributes
	return Peer{
		Service:       a.first(attrPeerService),
		DBSystem:      a.first(attrDBSystem),
		DBName:        a.first(attrDBName),
		ServerAddress: a.first(attrServerAddr),
	}
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
	if !ok || pm.Destination != m.Destination {
		return false
	}
	if producer {
		return pm.IsProducer()
	}
	return pm.IsConsumer()
}
