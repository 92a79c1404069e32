package services

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/ktrace-dev/ktrace/stack/stargazers"
)

// APIName is stargazers-api's service.name and consumer group.
const APIName = "stargazers-api"

// RunAPI runs stargazers-api until ctx ends: it reads stargazers-results
// (committed records only) from the start, with a consumer span per record
// that continues the context in the record's headers, and serves
// GET /stargazers (JSON, sorted by login) on cfg.Health with HTTP server
// spans.
func RunAPI(ctx context.Context, cfg Config) error {
	logger := cfg.logger(APIName)
	tp, err := cfg.provider(ctx, APIName)
	if err != nil {
		return err
	}
	defer shutdown(tp)
	tracer := tp.Tracer(APIName)
	var c Counters
	cl, err := kgo.NewClient(kafkaOpts(&cfg, APIName, append(c.groupHooks(nil), kgo.ConsumerGroup(APIName), kgo.ConsumeTopics(stargazers.TopicResults),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := pingKafka(ctx, cl, cfg.Kafka); err != nil {
		return err
	}

	c.watchBroker(ctx, cl)
	var (
		mu      sync.Mutex
		results []stargazers.Result
	)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stargazers", func(w http.ResponseWriter, r *http.Request) {
		sctx := W3C.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		_, span := tracer.Start(sctx, "GET /stargazers", oteltrace.WithSpanKind(oteltrace.SpanKindServer),
			oteltrace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.String("url.path", "/stargazers"),
				attribute.String("http.route", "/stargazers")))
		defer span.End()
		mu.Lock()
		out := append([]stargazers.Result{}, results...)
		mu.Unlock()
		stargazers.SortResults(out)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
		span.SetAttributes(attribute.Int("http.response.status_code", http.StatusOK))
	})
	errc := make(chan error, 1)
	go func() { errc <- serveHTTP(ctx, cfg.Health, APIName, &c, mux) }()
	logger.Printf("ready: serving http://%s/stargazers", cfg.Health)

	return consume(ctx, cl, logger, errc, func(r *kgo.Record) {
		c.Processed.Add(1)
		rctx := W3C.Extract(context.Background(), kotel.NewRecordCarrier(r))
		_, span := tracer.Start(rctx, stargazers.TopicResults+" process", oteltrace.WithSpanKind(oteltrace.SpanKindConsumer),
			oteltrace.WithAttributes(
				attribute.String("messaging.system", "kafka"),
				attribute.String("messaging.destination.name", r.Topic),
				attribute.String("messaging.operation.type", "process"),
				attribute.String("messaging.consumer.group.name", APIName),
				attribute.String("messaging.destination.partition.id", strconv.Itoa(int(r.Partition))),
				attribute.Int64("messaging.kafka.offset", r.Offset),
				attribute.String("messaging.kafka.message.key", string(r.Key)),
			))
		var res stargazers.Result
		if err := json.Unmarshal(r.Value, &res); err != nil || res.Login == "" {
			c.Skipped.Add(1)
			logger.Printf("skipping record %s/%d@%d: not a result", r.Topic, r.Partition, r.Offset)
			span.End()
			return
		}
		mu.Lock()
		results = append(results, res)
		mu.Unlock()
		span.End()
	})
}
