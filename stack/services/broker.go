package services

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ktrace-dev/ktrace/stack/stargazers"
)

// Partitions is the partition count of the stack's topics.
const Partitions = 3

// StackTopics are the topics the stack needs.
var StackTopics = []string{stargazers.TopicKafka, stargazers.TopicJackdaw, stargazers.TopicFlat,
	stargazers.TopicResults, stargazers.TopicJoinStore}

// RunBroker runs the embedded Kafka-protocol broker (kfake) on
// 127.0.0.1:port with the stack's topics until ctx ends. Clients reach it
// over TCP like any Kafka cluster.
func RunBroker(ctx context.Context, port int, health string) error {
	c, err := kfake.NewCluster(kfake.Ports(port), kfake.SeedTopics(Partitions, StackTopics...),
		kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(Partitions))
	if err != nil {
		return fmt.Errorf("kafka broker on 127.0.0.1:%d: %w", port, err)
	}
	defer c.Close()
	return serveHTTP(ctx, health, "kafka", &Counters{}, nil)
}
