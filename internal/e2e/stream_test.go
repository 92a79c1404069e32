//go:build linux

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktrace-dev/ktrace/internal/testenv"
	"github.com/ktrace-dev/ktrace/stack"
	"github.com/ktrace-dev/ktrace/stack/jaeger"
	"github.com/ktrace-dev/ktrace/trace"
)

// spanRecords are a trace set's spans as records the way a collector's
// kafka exporter writes them by default (testenv.ExporterBatches).
func spanRecords(t *testing.T, topic string, ts []trace.Trace) []*kgo.Record {
	t.Helper()
	batches, err := testenv.ExporterBatches(ts, 9, 30)
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]*kgo.Record, len(batches))
	for i, b := range batches {
		recs[i] = &kgo.Record{Topic: topic, Value: b}
	}
	return recs
}

// TestStreamProcesses: three `ktrace stream` processes in one consumer
// group read the recorded stack run's spans from a topic of six
// partitions, written as an exporter writes them (not keyed by trace, a
// record that is not OTLP among them); one is killed with SIGKILL while
// they read, and the other two take its partitions over. graph, report --broken and check read from
// what they published with --kafka give what the same commands give on
// the recorded run itself.
func TestStreamProcesses(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "otlp_spans"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	set := testenv.Fixture(t, "stargazers-lost")
	recs := spanRecords(t, "otlp_spans", set.Traces())
	recs = append(recs[:len(recs)/3:len(recs)/3], append([]*kgo.Record{{Topic: "otlp_spans", Value: []byte("\xff not OTLP")}}, recs[len(recs)/3:]...)...)
	producer, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()

	var logs [3]*bytes.Buffer
	var procs [3]*exec.Cmd
	var exited [3]chan error // a member's exit, once it has
	for i := range procs {
		logs[i] = &bytes.Buffer{}
		procs[i] = exec.Command(ktraceBin, "stream", "--kafka-brokers", brokers, "--topic", "otlp_spans", "--group", "g",
			"--trace-idle", "2s", "--window", "700ms")
		procs[i].Stderr = logs[i]
		if err := procs[i].Start(); err != nil {
			t.Fatal(err)
		}
		exited[i] = make(chan error, 1)
		go func() { exited[i] <- procs[i].Wait() }()
	}
	defer func() {
		for i, p := range procs {
			if i != 1 {
				p.Process.Signal(syscall.SIGTERM)
				if err := <-exited[i]; err != nil {
					t.Errorf("member %d stopped with %v", i, err)
				}
			}
			t.Logf("member %d:\n%s", i, logs[i])
		}
	}()
	ctx := context.Background()
	if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // reading, before any trace is quiet long enough to publish
	procs[1].Process.Signal(syscall.SIGKILL)
	<-exited[1]

	want, _ := runOut(t, "graph", "--fixture", "stargazers-lost", "-o", "json")
	var got string
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(time.Second) {
		got, _ = runOut(t, "graph", "--kafka", brokers, "--group", "g", "-o", "json")
		if got == want {
			break
		}
		if time.Now().After(deadline) {
			os.WriteFile("/tmp/stream-got.json", []byte(got), 0o644)
			os.WriteFile("/tmp/stream-want.json", []byte(want), 0o644)
			t.Fatalf("the graph read with --kafka never became the recorded run's:\n%s\nwant\n%s", head(got), head(want))
		}
	}
	wantRep, wc := runOut(t, "report", "--broken", "--fixture", "stargazers-lost", "-o", "json")
	gotRep, gc := runOut(t, "report", "--broken", "--kafka", brokers, "--group", "g", "-o", "json")
	if gotRep != wantRep || gc != wc {
		t.Errorf("report --broken --kafka (exit %d) differs from the recorded run's (exit %d):\n%s\nwant\n%s", gc, wc, head(gotRep), head(wantRep))
	}
	if _, code := runOut(t, "check", "--kafka", brokers, "--group", "g"); code != 1 {
		t.Errorf("check --kafka exited %d, want 1 (the join loses context)", code)
	}
	skipped := false
	for _, l := range logs {
		skipped = skipped || strings.Contains(l.String(), "skipping a record at otlp_spans/")
	}
	if !skipped {
		t.Error("no member said it skipped the record that is not OTLP")
	}
	for _, i := range []int{0, 2} { // the others run on, whatever the rebalances
		select {
		case err := <-exited[i]:
			exited[i] <- err
			t.Errorf("member %d exited (%v) while the others ran", i, err)
		default:
		}
	}
}

func head(s string) string {
	if len(s) > 3000 {
		return s[:3000] + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return s
}

// TestStackSpansViaKafka: the stack's services → a real Jaeger v2
// collector (kafka exporter, spans not keyed by trace) → the embedded
// broker (six partitions) → three `ktrace stream` members; a Jaeger
// ingester stores the same spans. The graph and the break report read
// with --kafka equal those read from the ingester's Jaeger.
func TestStackSpansViaKafka(t *testing.T) {
	o := stackOptions(t, "lost")
	o.SpansViaKafka = true
	st := upStack(t, &o)
	if len(st.Endpoints.Streams) != 3 || st.Component(stack.JaegerCollector) == nil {
		t.Fatalf("stream members %v, collector %v", st.Endpoints.Streams, st.Component(stack.JaegerCollector))
	}
	if _, err := stack.Traffic(context.Background(), o.StateDir, 0, 0); err != nil {
		t.Fatal(err)
	}
	waitAnswer(t, st.Endpoints.API)
	stableTraces(t, st.Endpoints.JaegerQuery)
	q, k := st.Endpoints.JaegerQuery, st.Endpoints.Kafka
	want, _ := runOut(t, "graph", "--jaeger", q, "-o", "json")
	var got string
	for deadline := time.Now().Add(90 * time.Second); got != want; time.Sleep(time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("the graph read with --kafka never became the ingester's:\n%s\nwant\n%s", head(got), head(want))
		}
		got, _ = runOut(t, "graph", "--kafka", k, "--group", stack.StreamGroup, "-o", "json")
	}
	wantRep, _ := runOut(t, "report", "--broken", "--jaeger", q, "--settle", "0s", "-o", "json")
	gotRep, _ := runOut(t, "report", "--broken", "--kafka", k, "--group", stack.StreamGroup, "-o", "json")
	if gotRep != wantRep || !strings.Contains(gotRep, `"rule": "lost-inside"`) {
		t.Errorf("report --broken --kafka differs from the ingester's:\n%s\nwant\n%s", head(gotRep), head(wantRep))
	}
	// stack status lists the members with the partitions each holds.
	status, _ := runOut(t, "stack", "status", "--state-dir", o.StateDir)
	held := 0
	for _, line := range strings.Split(status, "\n") {
		if strings.HasPrefix(line, stack.Stream+"-") && strings.Contains(line, "healthy (partitions ") {
			held++
		}
	}
	if held == 0 {
		t.Errorf("stack status lists no stream member with its partitions:\n%s", status)
	}
	// A member runs under its component's name (its transactions' too).
	logs, _ := runOut(t, "stack", "logs", stack.Stream+"-1", "--state-dir", o.StateDir)
	if !strings.Contains(logs, "ktrace stream "+stack.Stream+"-1 reading "+stack.SpanTopic) {
		t.Errorf("the first member's log does not name it %s-1:\n%.1000s", stack.Stream, logs)
	}
	resp, err := http.Get(st.Endpoints.Streams[0])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "ktrace_stream_spans_in_total") {
		t.Errorf("stream metrics:\n%.1000s", body)
	}
}

// TestStreamJaegerEncodings: a real Jaeger v2 collector writes the
// topology's spans with its kafka exporter's Jaeger encodings (a span a
// record), and a Jaeger ingester stores the same records; a `ktrace
// stream` member reads them with --encoding — jaeger_proto as the topic is
// partitioned (by trace ID), jaeger_json re-keyed. The graph and the break
// report read with --kafka equal the ingester's.
func TestStreamJaegerEncodings(t *testing.T) {
	bin, err := jaeger.FindBinary("")
	if err != nil {
		t.Fatalf("%v: the README's test command (scripts/test) installs it", err)
	}
	for _, c := range []struct {
		encoding  string
		byTraceID bool
	}{{"jaeger_proto", true}, {"jaeger_json", false}} {
		t.Run(c.encoding, func(t *testing.T) {
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "jaeger_spans"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cluster.Close) // after the member stops: cleanups run last first
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := func(role string) *jaeger.Process {
				p, err := jaeger.Start(ctx, jaeger.Options{Bin: bin, Dir: t.TempDir(), Role: role, KafkaBrokers: cluster.ListenAddrs(),
					SpanTopic: "jaeger_spans", SpanEncoding: c.encoding})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(p.Stop)
				return p
			}
			collector, ingester := start(jaeger.RoleCollector), start(jaeger.RoleIngester)
			brokers := strings.Join(cluster.ListenAddrs(), ",")
			args := []string{"--kafka-brokers", brokers, "--topic", "jaeger_spans", "--group", "g", "--encoding", c.encoding,
				"--trace-idle", "1s", "--window", "500ms"}
			if c.byTraceID {
				args = append(args, "--partitioned-by-trace")
			}
			startMember(t, nil, args...)

			runTopology(t, collector.OTLPAddr(), orders)
			q := ingester.QueryAddr()
			stableTraces(t, q)
			want, _ := runOut(t, "graph", "--jaeger", q, "-o", "json")
			if !strings.Contains(want, `"stitched"`) || !strings.Contains(want, `"topic:orders"`) {
				t.Fatalf("the ingester's graph lacks the topology's stitched hop:\n%s", head(want))
			}
			var got string
			for deadline := time.Now().Add(90 * time.Second); got != want; time.Sleep(time.Second) {
				if time.Now().After(deadline) {
					t.Fatalf("the graph read with --kafka never became the ingester's:\n%s\nwant\n%s", head(got), head(want))
				}
				got, _ = runOut(t, "graph", "--kafka", brokers, "--group", "g", "-o", "json")
			}
			wantRep, _ := runOut(t, "report", "--broken", "--jaeger", q, "--settle", "0s", "-o", "json")
			gotRep, _ := runOut(t, "report", "--broken", "--kafka", brokers, "--group", "g", "-o", "json")
			if gotRep != wantRep {
				t.Errorf("report --broken --kafka differs from the ingester's:\n%s\nwant\n%s", head(gotRep), head(wantRep))
			}
		})
	}
}

// TestStreamStopsWithoutBroker: a member asked to stop (SIGTERM) while its
// broker is gone stops, though its last results cannot be written (Kafka
// aborts their transaction; the next owner reads those spans again).
func TestStreamStopsWithoutBroker(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "otlp_spans"))
	if err != nil {
		t.Fatal(err)
	}
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	var log testenv.Buffer
	member := exec.Command(ktraceBin, "stream", "--kafka-brokers", brokers, "--topic", "otlp_spans", "--group", "g",
		"--trace-idle", "1s", "--window", "500ms", "--listen", listen)
	member.Stderr = &log
	if err := member.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- member.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://" + listen + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			member.Process.Kill()
			t.Fatalf("the member was never ready:\n%s", log.String())
		}
	}
	cluster.Close()
	time.Sleep(time.Second)
	member.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the member stopped with %v:\n%s", err, log.String())
		}
	case <-time.After(time.Minute):
		member.Process.Kill()
		t.Fatalf("the member did not stop within a minute of SIGTERM with its broker gone:\n%s", log.String())
	}
}
