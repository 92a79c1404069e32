// Package services holds the processes of the stargazers stack: the
// embedded Kafka broker and the four instrumented services. Each runs as
// its own process (`ktrace stack serve NAME`) with its own service.name,
// exports spans over OTLP, and talks Kafka through franz-go with W3C trace
// context in record headers.
//
//   - github-source: STARGAZERS events of two repositories, Avro-encoded,
//     to github-avro-stargazers-kafka and github-avro-stargazers-jackdaw;
//     replays the bundled fixture on request (POST /replay), or pages the
//     real GitHub API with --live.
//   - stargazers-flatten: stateless; flattens each event's data to JSON on
//     stargazers-flat. Context continues.
//   - stargazers-join: inner join of both topics on data.login within 10
//     days of event time, exactly once (Kafka transactions, window store in
//     a changelog topic), output {id, login, type} on stargazers-results.
//     Propagation lost (default, like ksqlDB), parent or links.
//   - stargazers-api: consumes stargazers-results and serves GET /stargazers.
//
// Every service serves GET /healthz on its health address with its counters.
package services
