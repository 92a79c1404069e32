// Package file reads traces from files and writes ktrace snapshots.
//
// Read sniffs the format from the first bytes:
//
//   - Jaeger JSON, as the Jaeger UI's "Download JSON" and the HTTP API
//     /api/traces give it: {"data":[{"traceID","spans","processes"}]};
//   - OTLP JSON, as the OpenTelemetry Collector's file exporter writes it:
//     one ExportTraceServiceRequest object per line, or a single object;
//   - ktrace snapshots (see snapshot.go), gzip-compressed or not.
//
// Every error names the input and the problem in one line and wraps
// ErrBadInput, so callers can map it to the "bad input" exit code.
package file
