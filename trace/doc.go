// Package trace is ktrace's model of distributed traces: traces, spans,
// references (parents and links) and the normalised views ktrace reads from
// span attributes — the messaging view of a Kafka hop and the peer view of a
// call to something that is not instrumented.
//
// The package uses the standard library only. Sources (Jaeger, files) decode
// into it; the graph and the analyses read it. It knows nothing of where a
// trace came from.
//
// Attribute names change between OpenTelemetry semantic-convention
// generations. [Span.Messaging] and [Span.Peer] read every generation ktrace
// knows (see semconv.go), so the rest of ktrace never looks at raw names.
package trace
