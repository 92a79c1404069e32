// Package stack deploys the instrumented stargazers stack: the embedded
// Kafka broker (or an existing cluster), the real Jaeger v2 (or an existing
// one), and the four services, each its own process. State lives in a
// directory: state.json (components, PIDs, endpoints) and one log per
// component. Components run detached (their own session) so the stack
// outlives `ktrace stack up`; Down stops them.
package stack
