package services

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ktrace-dev/ktrace/internal/kafkatest"
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

// TestJoinWriteFails: the broker refuses the join's first write of
// results. The transaction must abort (it committed the input offsets
// past the results never written, which were lost), and the records be
// joined again: every expected result reaches stargazers-results, once.
func TestJoinWriteFails(t *testing.T) {
	cluster := joinCluster(t, 1)
	brokers := cluster.ListenAddrs()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	adm := kadm.NewClient(mustClient(t, kgo.SeedBrokers(brokers...)))
	details, err := adm.ListTopics(ctx, stargazers.TopicResults)
	if err != nil {
		t.Fatal(err)
	}
	refused := kafkatest.RefuseFirstWrite(cluster, stargazers.TopicResults, details[stargazers.TopicResults].ID)
	f, err := stargazers.Load()
	if err != nil {
		t.Fatal(err)
	}
	in := mustClient(t, kgo.SeedBrokers(brokers...))
	for _, s := range f.Events {
		val, err := stargazers.Encode(s.Event())
		if err != nil {
			t.Fatal(err)
		}
		if err := in.ProduceSync(ctx, &kgo.Record{Topic: s.Topic(), Key: []byte(strconv.FormatInt(s.User.ID, 10)), Value: val}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var logs strings.Builder
	var mu sync.Mutex
	done := make(chan error, 1)
	go func() {
		done <- RunJoin(ctx, Config{Kafka: stream.Kafka{Brokers: brokers}, Health: "127.0.0.1:0", Log: lockedLog{&mu, &logs}}, JoinOptions{})
	}()
	want := len(stargazers.Expected(f.Events))
	out := mustClient(t, kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(stargazers.TopicResults), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	got := 0
	for deadline := time.Now().Add(30 * time.Second); got < want; {
		pctx, stop := context.WithTimeout(ctx, 500*time.Millisecond)
		got += out.PollFetches(pctx).NumRecords()
		stop()
		if time.Now().After(deadline) {
			mu.Lock()
			t.Fatalf("%d results, want %d (%d writes refused):\n%s", got, want, refused.Load(), logs.String())
		}
	}
	pctx, stop := context.WithTimeout(ctx, 2*time.Second) // none more: none written twice
	got += out.PollFetches(pctx).NumRecords()
	stop()
	if got != want || refused.Load() == 0 {
		t.Errorf("%d results, want %d; %d writes refused, want one", got, want, refused.Load())
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// joinCluster is a broker with the join's topics, of n partitions each,
// closed at the test's end.
func joinCluster(t *testing.T, n int32) *kfake.Cluster {
	t.Helper()
	topics := []string{stargazers.TopicKafka, stargazers.TopicJackdaw, stargazers.TopicResults, stargazers.TopicJoinStore}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(n, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return cluster
}

func mustClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

type lockedLog struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestJoinPartitionTime: one partition's records are months of event time
// ahead of another's (as when a restarted join catches up on partitions
// fetched at different paces). The partition behind still joins its
// records: its buffered inputs are not evicted by the other's time, as
// they were when the store kept one time for all.
func TestJoinPartitionTime(t *testing.T) {
	brokers := joinCluster(t, 2).ListenAddrs()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := mustClient(t, kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	send := func(topic string, p int32, login string, at time.Time) {
		t.Helper()
		val, err := stargazers.Encode(stargazers.Event{Type: "STARGAZERS", CreatedAt: at, Data: stargazers.User{Login: login, ID: int64(len(login)), Type: "User"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := in.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Key: []byte(login), Value: val}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	march := time.Date(2019, 3, 1, 0, 0, 0, 0, time.UTC)
	send(stargazers.TopicKafka, 0, "ahead", march.AddDate(0, 4, 0))
	send(stargazers.TopicKafka, 1, "behind", march)
	var logs strings.Builder
	var mu sync.Mutex
	done := make(chan error, 1)
	go func() {
		done <- RunJoin(ctx, Config{Kafka: stream.Kafka{Brokers: brokers}, Health: "127.0.0.1:0", Log: lockedLog{&mu, &logs}}, JoinOptions{})
	}()
	// Both inputs joined and committed, then the other side of "behind".
	adm := kadm.NewClient(mustClient(t, kgo.SeedBrokers(brokers...)))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		offsets, err := adm.FetchOffsets(ctx, JoinName)
		o0, _ := offsets.Lookup(stargazers.TopicKafka, 0)
		o1, _ := offsets.Lookup(stargazers.TopicKafka, 1)
		if err == nil && o0.At == 1 && o1.At == 1 {
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			t.Fatalf("the join did not commit its first inputs:\n%s", logs.String())
		}
	}
	send(stargazers.TopicJackdaw, 1, "behind", march.AddDate(0, 0, 1))
	out := mustClient(t, kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(stargazers.TopicResults), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	pctx, stop := context.WithTimeout(ctx, 10*time.Second)
	fs := out.PollFetches(pctx)
	stop()
	var got []string
	fs.EachRecord(func(r *kgo.Record) {
		var res stargazers.Result
		json.Unmarshal(r.Value, &res)
		got = append(got, res.Login)
	})
	if len(got) != 1 || got[0] != "behind" {
		mu.Lock()
		t.Errorf("results %q, want [behind]:\n%s", got, logs.String())
		mu.Unlock()
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// TestJoinStopWhileEnding: the join asked to stop while a transaction
// ends (here the broker holds its EndTxn) stops cleanly, as it does
// between transactions, not with the context's error.
func TestJoinStopWhileEnding(t *testing.T) {
	cluster := joinCluster(t, 1)
	brokers := cluster.ListenAddrs()
	ending, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	cluster.ControlKey(int16(kmsg.EndTxn), func(kmsg.Request) (kmsg.Response, error, bool) {
		close(ending)
		cluster.SleepControl(func() { <-release })
		return nil, nil, false
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- RunJoin(ctx, Config{Kafka: stream.Kafka{Brokers: brokers}, Health: "127.0.0.1:0", Log: io.Discard}, JoinOptions{})
	}()
	val, err := stargazers.Encode(stargazers.Event{Type: "STARGAZERS", CreatedAt: time.Now(), Data: stargazers.User{Login: "a", ID: 1, Type: "User"}})
	if err != nil {
		t.Fatal(err)
	}
	in := mustClient(t, kgo.SeedBrokers(brokers...))
	if err := in.ProduceSync(ctx, &kgo.Record{Topic: stargazers.TopicKafka, Key: []byte("a"), Value: val}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ending:
	case <-time.After(30 * time.Second):
		t.Fatal("the join ended no transaction")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stopped while a transaction ended: %v, want a clean stop", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the join did not stop")
	}
}
