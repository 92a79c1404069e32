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
// offset), else by message id ("stitched"); or it could not be told,
// because the other end is not in the data ("unverified": sampled traces
// leave such ends out). Edges carry a count, an error
// count and latency percentiles: for consume edges the time from the
// producer span's start to the consumer span's start, for call edges the
// client span's duration, otherwise the span's own duration.
//
// The rules, span by span (Build follows them one at a time):
//
//   - Every span counts against its service's node (spans, errors,
//     operation, the resource's instance, and a root span's sampler tags).
//   - A messaging span with a destination counts against its topic (and
//     notes its partition). A publish span whose parent, in the same
//     service, is a publish span of the same topic is the same record
//     and not counted again; likewise a consumer span under a consumer
//     span of the same topic in its service.
//   - A producer span is a produce edge: "parent" when it names a parent
//     (found or not), else "link" when it has a span link, else it is a
//     root producer, decided at the end.
//   - A consumer span whose parent is a producer span of the same topic is
//     a "parent" consume edge (its group's), latency from the producer's
//     start. Any other consumer span is paired at the end: with the
//     producer, on its topic, its first link (in the span's order) points
//     at ("link"); else with the producer of its record (topic, partition,
//     offset) or, failing that, of its message ID on its topic
//     ("stitched", and a hop Stitch); else, with no latency, "unverified"
//     when it links to a trace that is not in the data or names a parent
//     that is not in its trace (its producer's trace may have been
//     sampled out), and "span" otherwise.
//   - Where several producers could pair, the one that started last wins
//     (then the greater trace and span IDs), so that no rule depends on
//     the order of the traces: graphs of parts of a set merge into the
//     graph of the whole.
//   - A root producer is a pass-through that lost its context ("stitched",
//     and a pass-through Stitch) when its service handled a record of
//     another topic with the same key no later than it started — paired
//     with the latest such consumer span (then the greater IDs); else, in a
//     service that consumes (any consumer span counted against a topic),
//     it is an unverified pass-through ("unverified": its input may have
//     been sampled out; ktrace does not invent an origin of data), and in
//     a service that consumes nothing, an origin of data ("span").
//   - Any other span whose parent is in another service is a call edge
//     from the parent's service ("parent"); a root server span, one from
//     its unknown:SERVICE caller ("span").
//   - A client or producer span with no child in another service is a
//     peer edge to what it names: a database (db.system[/db.namespace]),
//     else peer.service (not its own), else server.address.
//
// The graph is also a gonum graph.Directed (see Graph.Directed), so gonum's
// algorithms run on it. Our package shares its name with gonum's graph;
// gonum's packages are imported under aliases here.
package graph
