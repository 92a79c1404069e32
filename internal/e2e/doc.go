// Package e2e holds ktrace's end-to-end tests: a small instrumented
// topology runs against the kfake Kafka broker (over TCP) and sends OTLP to
// a real Jaeger v2, and ktrace reads it back through Jaeger's query API.
//
// The tests need the Jaeger binary that scripts/install-jaeger builds; they
// fail (never skip) without it.
//
// Re-record the fixture fixtures/kafka-e2e.json from a fresh run with
//
//	go test ./internal/e2e -run TestGraphFromJaeger -record
package e2e
