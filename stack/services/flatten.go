package services

import (
	"context"
	"encoding/json"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"

	"github.com/ktrace-dev/ktrace/stack/stargazers"
)

// FlattenName is stargazers-flatten's service.name and consumer group.
const FlattenName = "stargazers-flatten"

// Flat is one record of stargazers-flat: the event's data, flattened.
type Flat struct {
	stargazers.User
	EventType string    `json:"event_type"`
	StarredAt time.Time `json:"starred_at"`
}

// RunFlatten runs stargazers-flatten until ctx ends: a stateless step that
// reads github-avro-stargazers-kafka and writes each event's data as flat
// JSON to stargazers-flat. The produce span is a child of the consume span,
// so traces continue. Malformed records are skipped, counted and logged.
func RunFlatten(ctx context.Context, cfg Config) error {
	logger := cfg.logger(FlattenName)
	tp, err := cfg.provider(ctx, FlattenName)
	if err != nil {
		return err
	}
	defer shutdown(tp)
	k := kotel.NewKotel(kotel.WithTracer(kotel.NewTracer(kotel.TracerProvider(tp), kotel.TracerPropagator(W3C),
		kotel.ConsumerGroup(FlattenName), kotel.ClientID(FlattenName))))
	var c Counters
	cl, err := kgo.NewClient(kafkaOpts(&cfg, FlattenName, append(c.groupHooks(nil), kotelOpt(k), kgo.ConsumerGroup(FlattenName),
		kgo.ConsumeTopics(stargazers.TopicKafka), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := pingKafka(ctx, cl, cfg.Kafka); err != nil {
		return err
	}
	c.watchBroker(ctx, cl)
	errc := make(chan error, 1)
	go func() { errc <- serveHTTP(ctx, cfg.Health, FlattenName, &c, nil) }()
	logger.Printf("ready")
	return consume(ctx, cl, logger, errc, func(r *kgo.Record) {
		c.Processed.Add(1)
		ev, err := stargazers.Decode(r.Value)
		if err != nil {
			c.Skipped.Add(1)
			logger.Printf("skipping record %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			return
		}
		val, _ := json.Marshal(Flat{User: ev.Data, EventType: ev.Type, StarredAt: ev.CreatedAt})
		out := &kgo.Record{Topic: stargazers.TopicFlat, Key: r.Key, Value: val, Timestamp: r.Timestamp, Context: r.Context}
		if err := cl.ProduceSync(r.Context, out).FirstErr(); err != nil {
			logger.Printf("produce to %s: %v", stargazers.TopicFlat, err)
			return
		}
		c.Produced.Add(1)
	})
}
