// Package analyze finds where trace context is lost: orphan spans, traces
// with several roots, roots in the middle of the graph, messaging hops whose
// consumer lost its producer's context, stream processors that lose the
// context of their input, and clock skew. It works on the model and the
// graph and returns typed findings; renderers present them.
package analyze
