package graph_test

import (
	"fmt"
	"time"

	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/trace"
)

// A producer span and a consumer span that lost its context (it starts a
// trace of its own) are paired by topic, partition and offset.
func ExampleBuild() {
	kafka := func(kind trace.Kind, tid trace.TraceID, sid trace.SpanID, svc string, ms int) trace.Span {
		return trace.Span{
			TraceID: tid, SpanID: sid, Kind: kind, Start: time.UnixMilli(int64(ms)),
			Resource: &trace.Resource{Service: svc},
			Attributes: trace.Attributes{
				{Key: "messaging.system", Value: "kafka"},
				{Key: "messaging.destination.name", Value: "orders"},
				{Key: "messaging.destination.partition.id", Value: "0"},
				{Key: "messaging.kafka.offset", Value: "7"},
				{Key: "messaging.consumer.group.name", Value: "billing"},
			},
		}
	}
	a, b := trace.TraceID{Low: 1}, trace.TraceID{Low: 2}
	g := graph.Build([]trace.Trace{
		{ID: a, Spans: []trace.Span{kafka(trace.KindProducer, a, 1, "shop", 100)}},
		{ID: b, Spans: []trace.Span{kafka(trace.KindConsumer, b, 2, "billing", 130)}},
	})
	for _, e := range g.Edges {
		fmt.Println(e.From.Key, "->", e.To.Key, e.Kind, e.Relation, e.Group, e.P50)
	}
	// Output:
	// service:shop -> topic:orders produce span  0s
	// topic:orders -> service:billing consume stitched billing 30ms
}
