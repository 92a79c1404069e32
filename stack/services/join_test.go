package services

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ktrace-dev/ktrace/stack/stargazers"
	"github.com/ktrace-dev/ktrace/stream"
)

// TestRestoreSlowBroker: the join restores its whole committed changelog
// — and none of an aborted transaction at its end — even when the broker
// is slow to answer the first fetch: an empty poll is not the end.
func TestRestoreSlowBroker(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, stargazers.TopicJoinStore))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.TransactionalID("join"),
		kgo.DefaultProduceTopic(stargazers.TopicJoinStore))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	write := func(n int, end kgo.TransactionEndTry) {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			v, _ := json.Marshal(entry{Side: stargazers.TopicKafka, Login: fmt.Sprintf("l%d", i), ID: int64(i), EventMs: time.Now().UnixMilli()})
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: v}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, end); err != nil {
			t.Fatal(err)
		}
	}
	write(40, kgo.TryCommit)
	write(5, kgo.TryAbort)
	// The first fetch is answered after 2.5 s.
	cluster.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		time.Sleep(2500 * time.Millisecond)
		return nil, nil, false
	})
	store := newWindowStore()
	n, err := restore(ctx, &Config{Kafka: stream.Kafka{Brokers: cluster.ListenAddrs()}}, store)
	if err != nil || n != 40 {
		t.Fatalf("restored %d entries (%v), want the 40 committed", n, err)
	}
}
