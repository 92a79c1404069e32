// Package graph builds ktrace's service graph from traces.
//
// Nodes are services, Kafka topics (a kind of their own) and virtual nodes
// for what is not instrumented: databases, peer.service names, and the
// unknown caller of a root server span. Edges are
//
//   - call: client → server, from a parent span and its child in another
//     service (same-service parent → child pairs are not edges);
//   - produce: service → topic, from producer spans;
//   - consume: topic → service, from consumer spans, one edge per consumer
//     group and per way the consumer was tied to the producer of its record;
//   - peer: service → virtual node, from client spans nobody answered.
//
// Each edge says how it was found (its Relation): from the span alone
// ("span"), through a parent reference ("parent"), through a span link
// ("link"), or — where a consumer lost its context — by stitching it to the
// producer span that wrote the same record, matched by (topic, partition,
// offset), else by message id ("stitched"). Edges carry a count, an error
// count and latency percentiles: for consume edges the time from the
// producer span's start to the consumer span's start, for call edges the
// client span's duration, otherwise the span's own duration.
//
// The graph is also a gonum graph.Directed (see Graph.Directed), so gonum's
// algorithms run on it. Our package shares its name with gonum's graph;
// gonum's packages are imported under aliases here.
package graph
