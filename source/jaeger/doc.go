// Package jaeger reads traces from Jaeger's query gRPC API (api_v2), the
// API Jaeger v1 and v2 both serve on port 16685.
//
// The api_v2 Go stubs in jaeger-idl are gogo-protobuf types, which gRPC's
// default codec cannot marshal; the client forces a codec that calls
// gogo's proto package.
//
// FindTraces returns at most SearchDepth traces per call and does not say
// when it cut a result short. Find therefore splits its time window in two
// whenever a call comes back full, until no window is full or a window
// cannot be split further (then it warns that results may be truncated). It
// queries each service, since Jaeger needs one, and drops traces seen more
// than once. Windows and services are fetched concurrently with a bound.
//
// Errors reaching Jaeger are *BackendError values naming the address and
// the cause (unreachable, timeout, unauthorised).
package jaeger
