package trace_test

import (
	"fmt"

	"github.com/ktrace-dev/ktrace/trace"
)

// A consumer span written with kotel's semconv 1.18 names reads the same as
// one written with the newest names.
func ExampleSpan_Messaging() {
	s := trace.Span{
		Kind: trace.KindConsumer,
		Attributes: trace.Attributes{
			{Key: "messaging.system", Value: "kafka"},
			{Key: "messaging.source.name", Value: "orders"},
			{Key: "messaging.operation", Value: "receive"},
			{Key: "messaging.kafka.source.partition", Value: "0"},
			{Key: "messaging.kafka.message.offset", Value: "42"},
			{Key: "messaging.kafka.consumer.group", Value: "billing"},
		},
	}
	m, _ := s.Messaging()
	fmt.Println(m.Destination, m.Operation, m.Partition, m.Offset, m.ConsumerGroup)
	// Output: orders receive 0 42 billing
}
