package stream_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	model "github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/kafkatest"
	"github.com/ktrace-dev/ktrace/internal/synth"
	"github.com/ktrace-dev/ktrace/internal/testenv"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/stack/jaeger"
	"github.com/ktrace-dev/ktrace/stream"
	"github.com/ktrace-dev/ktrace/trace"
)

// produceSpans writes the traces' spans to topic as OTLP protobuf records
// the way a collector's exporter does by default: batches of spans of
// many traces, a trace's spans spread over batches, the batches spread
// over the partitions with no regard to trace IDs. A few records are not
// OTLP at all.
func produceSpans(t *testing.T, brokers []string, topic string, ts []trace.Trace, keyed bool, encoding string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if keyed { // as partition_traces_by_id does: one trace a record, keyed by its ID
		cl, err = kgo.NewClient(kgo.SeedBrokers(brokers...))
	}
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	if keyed && encoding == stream.EncodingJaegerProto { // a span a record, keyed by its trace ID
		for _, tr := range ts {
			for i := range tr.Spans {
				data, err := jaegerSpan(&tr.Spans[i]).Marshal()
				if err != nil {
					t.Fatal(err)
				}
				recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(tr.ID.String()), Value: data})
			}
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("x"), Value: []byte("not a span batch")})
	} else if keyed {
		for _, tr := range ts {
			data, err := file.MarshalOTLPProto([]trace.Trace{tr})
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(tr.ID.String()), Value: data})
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("x"), Value: []byte("not a span batch")})
	} else {
		batches, err := testenv.ExporterBatches(ts, 4, 40)
		if err != nil {
			t.Fatal(err)
		}
		for i, data := range batches {
			if encoding == stream.EncodingJSON {
				var td tracepb.TracesData
				if err := proto.Unmarshal(data, &td); err != nil {
					t.Fatal(err)
				}
				if data, err = protojson.Marshal(&td); err != nil {
					t.Fatal(err)
				}
			}
			recs = append(recs, &kgo.Record{Topic: topic, Value: data})
			if i%25 == 3 {
				recs = append(recs, &kgo.Record{Topic: topic, Value: []byte("not a span batch")})
			}
		}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// jaegerSpan is s as Jaeger's model has it (the kafka exporter's
// jaeger_proto): kind, error and status as tags, links as FOLLOWS_FROM
// references, the resource as the process.
func jaegerSpan(s *trace.Span) *model.Span {
	id := func(t trace.TraceID) model.TraceID { return model.TraceID{High: t.High, Low: t.Low} }
	ms := &model.Span{TraceID: id(s.TraceID), SpanID: model.SpanID(s.SpanID), OperationName: s.Operation, StartTime: s.Start,
		Duration: s.Duration, Process: &model.Process{ServiceName: s.Service()}}
	for _, r := range s.Refs {
		ref := model.SpanRef{TraceID: id(r.TraceID), SpanID: model.SpanID(r.SpanID), RefType: model.SpanRefType_CHILD_OF}
		if r.Type == trace.RefLink {
			ref.RefType = model.SpanRefType_FOLLOWS_FROM
		}
		ms.References = append(ms.References, ref)
	}
	if s.Kind != trace.KindUnspecified {
		ms.Tags = append(ms.Tags, model.String("span.kind", s.Kind.String()))
	}
	if s.Error {
		ms.Tags = append(ms.Tags, model.Bool("error", true))
	}
	if s.StatusMessage != "" {
		ms.Tags = append(ms.Tags, model.String("otel.status_description", s.StatusMessage))
	}
	for _, a := range s.Attributes {
		ms.Tags = append(ms.Tags, model.String(a.Key, a.Value))
	}
	if s.Resource != nil {
		for _, a := range s.Resource.Attributes {
			if a.Key != "service.name" {
				ms.Process.Tags = append(ms.Process.Tags, model.String(a.Key, a.Value))
			}
		}
	}
	return ms
}

// publishedTraces is how many traces group's merged results hold (0:
// none can be read).
func publishedTraces(brokers []string, group string) int {
	p, err := stream.ReadResults(context.Background(), stream.Kafka{Brokers: brokers}, group, time.Time{}, time.Time{}, nil)
	if err != nil {
		return 0
	}
	g, _ := p.Finish()
	return g.Traces
}

// TestStreamMembers: three members of one group read a span topic of six
// partitions not keyed by trace; merged, their partial results give the
// graph and the break report graph.Build and analyze.Breaks give over the
// same traces — hops stitched across traces whose spans went to different
// members included — and a record that is not OTLP is counted and skipped.
// Also with the topic keyed by trace ID (read directly, ByTraceID), with
// the third member joining
// half way, with the broker stopped half way and started again from its
// data directory (the members say they are not ready meanwhile), and with
// the first re-keying transactions aborted (their span records, written
// twice, are read once).
func TestStreamMembers(t *testing.T) {
	for _, c := range []membersCase{{name: "scattered"}, {name: "keyed by trace", keyed: true}, {name: "a member joins half way", later: true},
		{name: "otlp_json", encoding: stream.EncodingJSON}, {name: "jaeger_proto, keyed by trace", keyed: true, encoding: stream.EncodingJaegerProto},
		{name: "the broker restarts", restart: true},
		{name: "transactions abort", abort: true}, {name: "transactions are fenced", fenced: true},
		{name: "results and pairing parts in pieces", pieces: true}} {
		t.Run(c.name, func(t *testing.T) { members(t, c) })
	}
}

type membersCase struct {
	name                  string
	keyed, later, restart bool
	// abort fails the first transactions' offset commits as a rebalance
	// would: they abort, and their records are written again.
	abort bool
	// fenced answers the first transactional commits of the re-keying
	// and the gathering groups' offsets as a broker does to a fenced
	// producer: the members start them again.
	fenced bool
	// pieces lowers the bound on a record so far that the results and
	// the pairing parts are written in pieces.
	pieces   bool
	encoding string
}

func members(t *testing.T, c membersCase) {
	keyed, encoding := c.keyed, c.encoding
	if c.pieces {
		defer stream.SetValueMaxBytes(4 << 10)()
	}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(6, "otlp_spans")}
	if c.restart { // the broker keeps its data on disk, on a port it can listen on again
		_, port, _ := net.SplitHostPort(freeAddr(t))
		n, _ := strconv.Atoi(port)
		opts = append(opts, kfake.DataDir(t.TempDir()), kfake.Ports(n))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cluster.Close() }()
	if c.abort {
		for range 3 {
			cluster.ControlKey(int16(kmsg.TxnOffsetCommit), failTxnOffsetCommit(kerr.RebalanceInProgress, ""))
		}
	}
	if c.fenced {
		cluster.ControlKey(int16(kmsg.TxnOffsetCommit), failTxnOffsetCommit(kerr.ProducerFenced, stream.SpansGroup("g")))
		cluster.ControlKey(int16(kmsg.TxnOffsetCommit), failTxnOffsetCommit(kerr.ProducerFenced, "g"))
	}
	brokers := cluster.ListenAddrs()
	ts := synth.Generate(synth.Config{Traces: 300, SpansPerTrace: 12, BrokenShare: 0.3, LinkShare: 0.3, Seed: 8})
	var logs sync.Map
	var listen [3]string
	for i := range listen {
		listen[i] = freeAddr(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	start := func(i int) {
		var buf strings.Builder
		var mu sync.Mutex
		logs.Store(i, func() string { mu.Lock(); defer mu.Unlock(); return buf.String() })
		cfg := stream.Config{Kafka: stream.Kafka{Brokers: brokers}, Topic: "otlp_spans", Group: "g", TraceIdle: 2 * time.Second, // generous: a loaded machine must not make spans late
			Window: 400 * time.Millisecond, Instance: fmt.Sprintf("m%d", i), Log: lockedWriter{&mu, &buf}, Encoding: encoding, ByTraceID: keyed}
		cfg.Listen = listen[i]
		wg.Go(func() {
			if err := stream.Run(ctx, cfg); err != nil {
				t.Errorf("member %d: %v", i, err)
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()
	start(0)
	start(1)
	switch {
	case c.later:
		produceSpans(t, brokers, "otlp_spans", ts[:len(ts)/2], keyed, encoding)
		// Past the trace-idle time and a window: segments are
		// published before partitions move to the new member.
		time.Sleep(3 * time.Second)
		start(2)
		produceSpans(t, brokers, "otlp_spans", ts[len(ts)/2:], keyed, encoding)
	case c.restart:
		start(2)
		produceSpans(t, brokers, "otlp_spans", ts[:len(ts)/2], keyed, encoding)
		time.Sleep(3 * time.Second) // some of it published, some not
		cluster.Close()
		waitReady(t, listen[:], false)
		// A failed poll makes a member not ready too: the broker comes
		// back once every member's ping found it gone, as its log says.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			all := true
			logs.Range(func(_, f any) bool {
				all = all && strings.Contains(f.(func() string)(), "does not answer")
				return true
			})
			if all {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("not every member said within 30s that Kafka does not answer")
			}
		}
		if cluster, err = kfake.NewCluster(opts...); err != nil {
			t.Fatalf("starting the broker again: %v", err)
		}
		waitReady(t, listen[:], true)
		produceSpans(t, brokers, "otlp_spans", ts[len(ts)/2:], keyed, encoding)
	default:
		start(2)
		produceSpans(t, brokers, "otlp_spans", ts, keyed, encoding)
	}

	// The references over the same traces.
	want := graph.Build(ts)
	wantRep := analyze.Breaks(ts, want, analyze.Options{SkewTolerance: 10 * time.Millisecond})

	var got *graph.Graph
	var rep analyze.Report
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		p, err := stream.ReadResults(context.Background(), stream.Kafka{Brokers: brokers}, "g", time.Time{}, time.Time{}, nil)
		if err == nil {
			got, rep = p.Finish()
			if got.Traces == len(ts) {
				break
			}
		} else if !errors.Is(err, stream.ErrNoResults) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			n := -1
			if got != nil {
				n = got.Traces
			}
			t.Fatalf("merged results hold %d of %d traces", n, len(ts))
		}
	}
	testenv.Agree(t, "the merged results", got, rep, ts, 10*time.Millisecond)
	if len(got.Stitches) == 0 {
		t.Fatal("no stitches: the set does not test pairing across members")
	}
	if c.pieces {
		for _, topic := range []string{stream.ResultsTopic("g"), stream.PairsTopic("g")} {
			if n := pieceCount(topicRecords(t, brokers, topic)); n == 0 {
				t.Errorf("no record of %s was written in pieces", topic)
			}
		}
	}
	poisoned := false
	logs.Range(func(_, f any) bool {
		l := f.(func() string)()
		poisoned = poisoned || strings.Contains(l, "skipping a record at otlp_spans/") && strings.Contains(l, "does not decode as "+cmp.Or(encoding, stream.EncodingProto)+": ")
		return true
	})
	if !poisoned {
		t.Error("no member said it skipped an undecodable record")
	}
	if c.abort {
		total := 0
		for i := range ts {
			total += len(ts[i].Spans)
		}
		committed, all := spansIn(t, brokers, kgo.ReadCommitted()), spansIn(t, brokers, kgo.ReadUncommitted())
		if committed != total || all <= total {
			t.Errorf("the spans topic holds %d spans read committed, %d in all; want %d, and more in all (aborted)", committed, all, total)
		}
	}
	if c.fenced {
		for _, w := range []string{"starting the gathering again, from the committed offsets", "starting the re-keying again, from the committed offsets",
			`fenced by another member under the instance name "m`} {
			said := false
			logs.Range(func(_, f any) bool {
				said = said || strings.Contains(f.(func() string)(), w)
				return true
			})
			if !said {
				t.Errorf("no member said %q after its transaction was fenced", w)
			}
		}
	}
	if c.later { // partitions moved, and their new owners read again what was left open
		restored := false
		logs.Range(func(_, f any) bool {
			l := f.(func() string)()
			restored = restored || strings.Contains(l, ": restoring, offsets ") && strings.Contains(l, " restored\n")
			return true
		})
		if !restored {
			t.Error("no member said it restored a partition it was assigned")
		}
	}
	if c.restart {
		logs.Range(func(i, f any) bool {
			if l := f.(func() string)(); !strings.Contains(l, "does not answer") || !strings.Contains(l, "answers\n") {
				t.Errorf("member %d did not say Kafka stopped and came back:\n%s", i, l)
			}
			return true
		})
	}

	// What the members count, summed, is what the merged results say:
	// every edge, and every break (the hops across traces, counted by
	// the members that pair them through the pairs topic).
	defer func() {
		if t.Failed() {
			logs.Range(func(i, f any) bool { t.Logf("member %v:\n%s", i, f.(func() string)()); return true })
		}
	}()
	metricsAgree(t, listen[:], want, wantRep)

	// Members say in their log, a window at a time, what they did.
	said := regexp.MustCompile(`since the last window: \d+ spans read, [1-9]\d* traces published, \d+ late spans, \d+ undecodable records; holding (partitions [\d, ]+|no partition) of \S+, \d+ spans pending\n`)
	progress := false
	logs.Range(func(_, f any) bool { progress = progress || said.MatchString(f.(func() string)()); return true })
	if !progress {
		t.Error("no member said in its log what it published")
	}

	// The members' metrics: the servicegraph connector's names, topics as
	// nodes of messaging_system connections, and their own counts. (A
	// member may have had nothing to do: the three are read together.)
	for path, want := range map[string][]string{
		"/metrics": {`traces_service_graph_request_total{client="svc-`, `connection_type="messaging_system"`,
			`traces_service_graph_request_server_seconds_bucket{`, "ktrace_stream_spans_in_total ", `ktrace_hop_records_total{`,
			`ktrace_lost_context_total{rule="`, `ktrace_stream_lag_records{partition="`, "\nktrace_stream_ready 1\n",
			"\nprocess_resident_memory_bytes ", "\ngo_memstats_heap_alloc_bytes "},
		"/readyz":  {"ready"},
		"/healthz": {`"status":"ok"`, `"detail":"partition`},
	} {
		var all strings.Builder
		for _, l := range listen {
			// A member given a partition by a late rebalance is not
			// ready until it has read it again: it is given the time.
			var body []byte
			code := 0
			for deadline := time.Now().Add(30 * time.Second); code != http.StatusOK && time.Now().Before(deadline); {
				if code != 0 {
					time.Sleep(200 * time.Millisecond)
				}
				resp, err := http.Get("http://" + l + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
			}
			if code != http.StatusOK {
				t.Errorf("%s of %s: %d: %.500s", path, l, code, body)
			}
			all.Write(body)
		}
		for _, w := range want {
			if !strings.Contains(all.String(), w) {
				t.Errorf("%s: want %q in:\n%.2000s", path, w, all.String())
			}
		}
		if path == "/metrics" {
			// The example alerting rules name only metrics a member
			// serves (examples/prometheus checks their syntax).
			for _, name := range rulesMetrics(t) {
				if !strings.Contains(all.String(), "\n"+name+" ") && !strings.Contains(all.String(), "\n"+name+"{") {
					t.Errorf("examples/prometheus/ktrace-stream.rules.yaml names %s, which no member serves", name)
				}
			}
		}
	}
}

// rulesMetrics lists the metrics the example alerting rules' expressions
// name.
func rulesMetrics(t *testing.T) []string {
	b, err := os.ReadFile("../examples/prometheus/ktrace-stream.rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Expr string }
		}
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	metric := regexp.MustCompile(`\b(?:ktrace|process|go)_[a-z_]+\b`)
	var names []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			names = append(names, metric.FindAllString(r.Expr, -1)...)
		}
	}
	if len(names) == 0 {
		t.Fatal("no metric named in the example alerting rules")
	}
	slices.Sort(names)
	return slices.Compact(names)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// waitReady waits until every member's /readyz says ready (or, with ready
// false, not ready), for at most 30 seconds.
func waitReady(t *testing.T, listen []string, ready bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		all := true
		var last string
		for _, l := range listen {
			resp, err := http.Get("http://" + l + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(body)
			all = all && (resp.StatusCode == http.StatusOK) == ready
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("members not all ready=%v after 30s (last said %q)", ready, last)
		}
	}
}

// failTxnOffsetCommit answers a transaction's offset commit (of group, or
// any: "") with err for every partition, once.
func failTxnOffsetCommit(err *kerr.Error, group string) func(kmsg.Request) (kmsg.Response, error, bool) {
	return func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.TxnOffsetCommitRequest)
		if group != "" && r.Group != group {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, err.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	}
}

// spansIn counts the spans in group g's spans topic, read at isolation.
func spansIn(t *testing.T, brokers []string, isolation kgo.IsolationLevel) int {
	t.Helper()
	topic := stream.SpansTopic("g")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(isolation),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// The topic is complete by now: read until two polls of a second
	// each bring no spans (the re-keying's marks go on coming).
	n := 0
	for empty := 0; empty < 2; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		before := n
		fs.EachRecord(func(r *kgo.Record) {
			ts, err := file.OTLPProto(r.Value, &trace.Resources{}, &trace.Strings{})
			if err != nil {
				t.Fatalf("%s/%d offset %d: %v", topic, r.Partition, r.Offset, err)
			}
			n += countSpans(ts)
		})
		if empty++; n > before {
			empty = 0
		}
	}
	return n
}

func countSpans(ts []trace.Trace) int {
	n := 0
	for i := range ts {
		n += len(ts[i].Spans)
	}
	return n
}

// TestStreamLongWindow: with a window longer than the test, a partition
// whose segment has folded enough spans publishes it without waiting (a
// whole window's partial would outgrow a Kafka record), and a member that
// stops publishes the rest. The results topic keeps results for the
// retention asked for, compacted, and a reader from a time after the
// last result finds none.
func TestStreamLongWindow(t *testing.T) {
	_, brokers := newBroker(t, kfake.SeedTopics(1, "otlp_spans"))
	ts := synth.Generate(synth.Config{Traces: 6000, SpansPerTrace: 20, BrokenShare: 0.1, Seed: 9})
	done, cancel := runMember(stream.Config{Kafka: stream.Kafka{Brokers: brokers}, Topic: "otlp_spans", Group: "g", TraceIdle: time.Second,
		Window: time.Hour, Instance: "m", Log: io.Discard, ByTraceID: true, ResultsRetention: 36 * time.Hour})
	produceSpans(t, brokers, "otlp_spans", ts, true, "")
	traces := func() int { return publishedTraces(brokers, "g") }
	for deadline := time.Now().Add(60 * time.Second); traces() == 0; time.Sleep(300 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("nothing published within a minute of a one-hour window")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := traces(); got != len(ts) {
		t.Fatalf("after the member stopped, %d of %d traces published", got, len(ts))
	}
	configs, err := admin(t, brokers).DescribeTopicConfigs(context.Background(), stream.ResultsTopic("g"), stream.SegmentsTopic("g"))
	if err != nil {
		t.Fatal(err)
	}
	for topic, keys := range map[string]map[string]string{
		stream.ResultsTopic("g"):  {"cleanup.policy": "compact,delete", "retention.ms": "129600000"},
		stream.SegmentsTopic("g"): {"cleanup.policy": "delete", "retention.ms": "3600000", "segment.ms": "600000"},
	} {
		for key, want := range keys {
			if c, err := configs.On(topic, nil); err != nil {
				t.Fatal(err)
			} else if got := configValue(c, key); got != want {
				t.Errorf("%s's %s is %q, want %q", topic, key, got, want)
			}
		}
	}
	if _, err := stream.ReadResults(context.Background(), stream.Kafka{Brokers: brokers}, "g", time.Now().Add(time.Hour), time.Time{}, nil); !errors.Is(err, stream.ErrNoResults) {
		t.Errorf("results since an hour ahead: %v, want none", err)
	}
}

func configValue(c kadm.ResourceConfig, key string) string {
	for _, kv := range c.Configs {
		if kv.Key == key && kv.Value != nil {
			return *kv.Value
		}
	}
	return ""
}

// TestStreamLateSpans: spans that come after their trace was analysed and
// published — a consumer's span minutes behind its producer, say — are
// merged into the segment their trace went into: the merged results
// become the graph and the break report of the whole traces, and the
// late spans are counted. Re-keyed and keyed by trace ID; and for traces
// analysed into a segment not yet published (a window longer than the
// test: the member publishes it when it stops).
func TestStreamLateSpans(t *testing.T) {
	for _, c := range []struct {
		name                  string
		keyed, pending, moved bool
	}{{"re-keyed", false, false, false}, {"keyed", true, false, false}, {"segment not yet published", true, true, false},
		{"the partitions move", false, false, true}} {
		t.Run(c.name, func(t *testing.T) { lateSpans(t, c.keyed, c.pending, c.moved) })
	}
}

// lateSpans: late spans merged into their traces' segments (pending:
// segments not yet published; moved: half the late spans come after the
// partitions moved to another member, which knows the segments through
// the segments topic and merges the late spans with those merged before).
func lateSpans(t *testing.T, keyed, pending, moved bool) {
	_, brokers := newBroker(t, kfake.SeedTopics(2, "otlp_spans"))
	cfg := synth.Config{Traces: 60, SpansPerTrace: 12, BrokenShare: 0.3, LinkShare: 0.3, Seed: 5}
	window := 300 * time.Millisecond
	if pending { // enough for each partition to analyse ahead of the window (foldSpans)
		cfg.Traces, window = 4400, time.Hour
	}
	ts := synth.Generate(cfg)
	// Every other trace loses a span to later: a consumer's where there
	// is one (its children, if any, come in time: orphans until then).
	var early, late []trace.Trace
	lateCount := 0
	for i, tr := range ts {
		if i%2 == 1 {
			early = append(early, tr)
			continue
		}
		k := len(tr.Spans) - 1
		for j, s := range tr.Spans {
			if s.Kind == trace.KindConsumer {
				k = j
				break
			}
		}
		rest := append(append([]trace.Span(nil), tr.Spans[:k]...), tr.Spans[k+1:]...)
		early = append(early, trace.Trace{ID: tr.ID, Spans: rest})
		late = append(late, trace.Trace{ID: tr.ID, Spans: []trace.Span{tr.Spans[k]}})
		lateCount++
	}
	var listen string
	stopped := true
	var stop func()
	var logMu sync.Mutex
	var log bytes.Buffer
	t.Cleanup(func() { // after the members stopped
		if t.Failed() {
			t.Logf("the members' log:\n%s", log.String())
		}
	})
	start := func(instance string) {
		listen = freeAddr(t)
		// Hops across traces are judged, and counted, an hour on: the
		// metrics below are what the segments count. A member stopping
		// is given a minute to publish: the segment not yet published
		// is read again and analysed with its late spans then, which
		// takes longer than the default under the race detector, and no
		// member comes after it here.
		end := startMember(t, stream.Config{Kafka: stream.Kafka{Brokers: brokers}, Topic: "otlp_spans", Group: "g", TraceIdle: 500 * time.Millisecond,
			Window: window, Instance: instance, Log: lockedWriter{&logMu, &log}, ByTraceID: keyed, Listen: listen, PairWait: time.Hour,
			StopTimeout: time.Minute})
		stopped = false
		stop = func() {
			if !stopped {
				stopped = true
				end()
			}
		}
	}
	start("m")
	defer func() { stop() }()
	metric := func(name string) string {
		for _, l := range metricLines(t, listen) {
			if v, ok := strings.CutPrefix(l, name+" "); ok {
				return v
			}
		}
		return ""
	}
	waitMetricFor := func(name, want string, ok func(v string) bool) {
		for deadline := time.Now().Add(60 * time.Second); !ok(metric(name)); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s is %q, want %s", name, metric(name), want)
			}
		}
	}
	waitMetric := func(name, want string) {
		waitMetricFor(name, want, func(v string) bool { return v == want })
	}
	results := func() (*graph.Graph, analyze.Report) {
		p, err := stream.ReadResults(context.Background(), stream.Kafka{Brokers: brokers}, "g", time.Time{}, time.Time{}, nil)
		if err != nil {
			return nil, analyze.Report{}
		}
		return p.Finish()
	}
	// The early spans, analysed and published (pending: analysed only).
	produceSpans(t, brokers, "otlp_spans", early, keyed, "")
	wantEarly := graph.Build(early)
	for deadline := time.Now().Add(60 * time.Second); !pending; time.Sleep(200 * time.Millisecond) {
		if g, _ := results(); g != nil && g.Traces == len(ts) {
			if s, w := testenv.GraphSummary(g), testenv.GraphSummary(wantEarly); s != w {
				t.Fatalf("before the late spans, the results differ from graph.Build's:\n%s\nwant\n%s", s, w)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the early spans not published within a minute")
		}
	}
	if pending {
		waitMetric("ktrace_stream_spans_in_total", strconv.Itoa(countSpans(early)))
		// Traces complete in waves as they are read, and a partition
		// analyses them once 20,000 spans are complete: at least one
		// batch is analysed, most traces (on a fast machine, all).
		waitMetricFor("ktrace_stream_pending_spans", "at most the early spans less 20000", func(v string) bool {
			n, err := strconv.Atoi(v)
			return err == nil && n <= countSpans(early)-20000
		})
		if g, _ := results(); g != nil {
			t.Fatalf("%d traces published within a one-hour window", g.Traces)
		}
	}
	// The late spans, merged.
	if moved {
		// The first half merged and published by this member; the
		// second half read by the next owner of the partitions.
		half := late[:len(late)/2]
		produceSpans(t, brokers, "otlp_spans", half, keyed, "")
		waitMetric("ktrace_stream_late_spans_total", strconv.Itoa(len(half)))
		want := testenv.GraphSummary(graph.Build(merged(early, half)))
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if g, _ := results(); g != nil && testenv.GraphSummary(g) == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the first late spans not merged within a minute")
			}
		}
		before := edgeCounts(t, brokers)
		stop()
		start("m2")
		late, lateCount = late[len(half):], lateCount-len(half)
		// The next owner counts what the second half adds, not the
		// first half again: its base is the segment as last published.
		defer func() {
			if t.Failed() {
				return
			}
			added := edgeCounts(t, brokers) - before
			if got := metricSum(t, listen, "traces_service_graph_request_total"); got != float64(added) {
				t.Errorf("the next owner counted %v requests, want the %d the second late spans added", got, added)
			}
		}()
	}
	produceSpans(t, brokers, "otlp_spans", late, keyed, "")
	waitMetric("ktrace_stream_late_spans_total", strconv.Itoa(lateCount))
	if pending {
		stop() // publishes the segment
		logMu.Lock()
		left := strings.Contains(log.String(), "not published")
		logMu.Unlock()
		if left {
			t.Fatal("the member stopped without publishing every partition")
		}
	}
	want := graph.Build(ts)
	wantRep := analyze.Breaks(ts, want, analyze.Options{SkewTolerance: 10 * time.Millisecond})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		g, rep := results()
		if g != nil && testenv.GraphSummary(g) == testenv.GraphSummary(want) {
			if g.Traces != len(ts) {
				t.Fatalf("the results hold %d traces, want %d (a late span counted as a trace)", g.Traces, len(ts))
			}
			if !reflect.DeepEqual(rep.Findings, wantRep.Findings) {
				t.Fatalf("with the late spans, the report differs from analyze.Breaks':\n got %+v\nwant %+v", rep.Findings, wantRep.Findings)
			}
			break
		}
		if time.Now().After(deadline) {
			s := "nothing"
			if g != nil {
				s = testenv.GraphSummary(g)
			}
			t.Fatalf("the late spans not merged within a minute: the results hold\n%.3000s\nwant\n%.3000s", s, testenv.GraphSummary(want))
		}
	}
}

// merged is the traces of a with the spans b holds for them.
func merged(a, b []trace.Trace) []trace.Trace {
	more := map[trace.TraceID][]trace.Span{}
	for _, t := range b {
		more[t.ID] = append(more[t.ID], t.Spans...)
	}
	out := make([]trace.Trace, len(a))
	for i, t := range a {
		out[i] = trace.Trace{ID: t.ID, Spans: append(append([]trace.Span(nil), t.Spans...), more[t.ID]...)}
	}
	return out
}

// edgeCounts is the requests behind the edges of group g's results, as
// the partials count them (each segment's own traces).
func edgeCounts(t *testing.T, brokers []string) int {
	p, err := stream.ReadResults(context.Background(), stream.Kafka{Brokers: brokers}, "g", time.Time{}, time.Time{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range p.Edges() {
		n += e.Count
	}
	return n
}

// metricsAgree waits until the sums of the members' request, failed and
// lost-context counters, served on listen, are what g and rep count. A
// member that took a trace for complete before its last spans came
// (late spans, under load or while partitions move) counted what the
// trace showed then, and a counter cannot take it back: then each edge's
// sums must be at least what g counts (a consumer whose producer came
// late was judged without it: its break is counted as it was judged).
func metricsAgree(t *testing.T, listen []string, g *graph.Graph, rep analyze.Report) {
	t.Helper()
	label := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	want := map[string]float64{}
	for _, e := range g.Edges {
		ct := ""
		switch e.Kind {
		case graph.EdgeProduce, graph.EdgeConsume:
			ct = "messaging_system"
		case graph.EdgePeer:
			ct = "virtual_node"
		}
		l := fmt.Sprintf(`{client="%s",connection_type="%s",server="%s"}`, label.Replace(e.From.Name), ct, label.Replace(e.To.Name))
		want["traces_service_graph_request_total"+l] += float64(e.Count)
		want["traces_service_graph_request_failed_total"+l] += float64(e.Errors)
	}
	for _, f := range rep.Findings {
		want[fmt.Sprintf(`ktrace_lost_context_total{rule="%s",where="%s"}`, f.Rule, label.Replace(f.Where))] += float64(f.Occurrences)
	}
	var got map[string]float64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		got = map[string]float64{}
		for _, l := range listen {
			for _, line := range metricLines(t, l) {
				for _, name := range []string{"traces_service_graph_request_total{", "traces_service_graph_request_failed_total{", "ktrace_lost_context_total{"} {
					if strings.HasPrefix(line, name) {
						i := strings.LastIndexByte(line, ' ')
						k, v := line[:i], line[i+1:]
						f, err := strconv.ParseFloat(v, 64)
						if err != nil {
							t.Fatalf("%s: %v", line, err)
						}
						if f != 0 {
							got[k] += f
						}
					}
				}
			}
		}
		for k, v := range want {
			if v == 0 {
				delete(want, k)
			}
		}
		late := 0.0
		for _, l := range listen {
			late += metricSum(t, l, "ktrace_stream_late_spans_total")
		}
		short := func(k string) bool { return strings.HasPrefix(k, "traces_service_graph_") && got[k] < want[k] }
		if reflect.DeepEqual(got, want) || late > 0 && !slices.ContainsFunc(slices.Collect(maps.Keys(want)), short) {
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			fmt.Fprintf(&b, "%s: %v, want %v\n", k, got[k], want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "%s: %v, want none\n", k, got[k])
		}
	}
	t.Fatalf("the members' metrics, summed, differ from the merged results:\n%s", b.String())
}

// metricLines is what a member serves on listen's /metrics, a line each.
func metricLines(t *testing.T, listen string) []string {
	lines, err := scrape(listen)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// scrape is what a member serves on listen's /metrics, a line each.
func scrape(listen string) ([]string, error) {
	resp, err := http.Get("http://" + listen + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return strings.Split(string(body), "\n"), nil
}

// metricSum sums a metric's series served on listen.
func metricSum(t *testing.T, listen, name string) float64 {
	sum, err := sumOf(metricLines(t, listen), name)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// sumOf sums a metric's series among lines of /metrics.
func sumOf(lines []string, name string) (float64, error) {
	sum := 0.0
	for _, l := range lines {
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			f, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %v", l, err)
			}
			sum += f
		}
	}
	return sum, nil
}

// TestStreamSegmentsPartitions: a segments topic made before with more
// partitions than the topic gathered is refused, in one line, before
// anything is read (a partition's segments would be looked for on
// another's); one with fewer (the topic gathered has grown since) grows
// to as many.
func TestStreamSegmentsPartitions(t *testing.T) {
	cluster, _ := newBroker(t, kfake.SeedTopics(4, "otlp_spans"), kfake.SeedTopics(8, stream.SegmentsTopic("g")), kfake.SeedTopics(1, stream.SegmentsTopic("h")))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := stream.Run(ctx, stream.Config{Kafka: stream.Kafka{Brokers: cluster.ListenAddrs()}, Topic: "otlp_spans", Group: "g", Log: io.Discard, ByTraceID: true})
	if err == nil || !strings.Contains(err.Error(), "has 8 partitions, otlp_spans has 4") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("got %v, want a one-line error naming both counts", err)
	}
	short, stop := context.WithTimeout(ctx, 3*time.Second)
	defer stop()
	if err := stream.Run(short, stream.Config{Kafka: stream.Kafka{Brokers: cluster.ListenAddrs()}, Topic: "otlp_spans", Group: "h", Log: io.Discard, ByTraceID: true}); err != nil {
		t.Fatalf("with a segments topic of fewer partitions: %v", err)
	}
	if n := len(cluster.PartitionInfos(stream.SegmentsTopic("h"))); n != 4 {
		t.Errorf("the segments topic has %d partitions, want 4 as otlp_spans", n)
	}
}

// TestStreamNoTopic: a span topic that is not there is named in one
// line that says why it may not be, before anything is made.
func TestStreamNoTopic(t *testing.T) {
	cluster, _ := newBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := stream.Run(ctx, stream.Config{Kafka: stream.Kafka{Brokers: cluster.ListenAddrs()}, Topic: "otlp_spans", Group: "g", Log: io.Discard})
	if err == nil || !strings.HasPrefix(err.Error(), "span topic otlp_spans: not found (no collector has written to it yet") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("got %v, want one line naming the topic", err)
	}
	if n := len(cluster.PartitionInfos(stream.ResultsTopic("g"))); n != 0 {
		t.Errorf("the results topic was made (%d partitions)", n)
	}
}

// TestStreamTopicGrows: partitions added to the topic gathered while a
// member runs (keyed by trace ID, so gathered directly) are taken up: the
// segments topic grows to as many, and the traces written to the new
// TestStreamPairsGrown: partitions added to the pairs topic would have
// the halves of a pair judged apart by members that count them otherwise
// (those that began before and those after): a member that finds them
// stops with an error, so that it starts again counting them.
func TestStreamPairsGrown(t *testing.T) {
	_, brokers := newBroker(t, kfake.SeedTopics(2, "otlp_spans"))
	done, cancel := runMember(stream.Config{Kafka: stream.Kafka{Brokers: brokers}, Topic: "otlp_spans", Group: "g", TraceIdle: 300 * time.Millisecond,
		Window: 300 * time.Millisecond, MetadataMaxAge: 500 * time.Millisecond, Instance: "m", Log: io.Discard, ByTraceID: true})
	defer cancel()
	ts := synth.Generate(synth.Config{Traces: 50, Seed: 6})
	produceSpans(t, brokers, "otlp_spans", ts, true, "")
	for deadline := time.Now().Add(60 * time.Second); publishedTraces(brokers, "g") != len(ts); time.Sleep(300 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the traces were not published within a minute")
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the member stopped before the pairs topic grew: %v", err)
	case <-time.After(2 * time.Second): // it checked, and found the count it began with
	}
	if resp, err := admin(t, brokers).UpdatePartitions(context.Background(), 4, stream.PairsTopic("g")); err != nil || resp.Error() != nil {
		t.Fatalf("adding partitions: %v %v", err, resp.Error())
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "pairs topic ktrace.g.pairs has 4 partitions, not the 2 this member began with") {
			t.Fatalf("the member stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the member did not stop within 30 seconds of the pairs topic growing")
	}
}

// partitions are published with the others.
func TestStreamTopicGrows(t *testing.T) {
	cluster, brokers := newBroker(t, kfake.SeedTopics(2, "otlp_spans"))
	ts := synth.Generate(synth.Config{Traces: 400, SpansPerTrace: 10, BrokenShare: 0.1, Seed: 5})
	done, cancel := runMember(stream.Config{Kafka: stream.Kafka{Brokers: brokers}, Topic: "otlp_spans", Group: "g", TraceIdle: 300 * time.Millisecond,
		Window: 300 * time.Millisecond, MetadataMaxAge: 500 * time.Millisecond, Instance: "m", Log: io.Discard, ByTraceID: true})
	traces := func() int { return publishedTraces(brokers, "g") }
	wait := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); traces() != want; time.Sleep(300 * time.Millisecond) {
			select {
			case err := <-done:
				t.Fatalf("the member stopped: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d traces published after a minute", traces(), want)
			}
		}
	}
	produceSpans(t, brokers, "otlp_spans", ts[:200], true, "")
	wait(200)
	adm := admin(t, brokers)
	if resp, err := adm.UpdatePartitions(context.Background(), 5, "otlp_spans"); err != nil || resp.Error() != nil {
		t.Fatalf("adding partitions: %v %v", err, resp.Error())
	}
	produceSpans(t, brokers, "otlp_spans", ts[200:], true, "")
	wait(len(ts))
	ends, err := adm.ListEndOffsets(context.Background(), "otlp_spans")
	if err != nil {
		t.Fatal(err)
	}
	added := int64(0)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Partition >= 2 {
			added += o.Offset
		}
	})
	if added == 0 {
		t.Fatal("no trace went to the partitions added: the test tests nothing")
	}
	if n := len(cluster.PartitionInfos(stream.SegmentsTopic("g"))); n != 5 {
		t.Errorf("the segments topic has %d partitions, want 5 as otlp_spans now", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestStreamPairsReadBack: a member given a partition of the pairs topic
// that another member judged parts of reads those parts back, to pair
// the next parts with, and does not count them again.
func TestStreamPairsReadBack(t *testing.T) {
	_, brokers := newBroker(t, kfake.SeedTopics(2, "otlp_spans"))
	ts := synth.Generate(synth.Config{Traces: 200, SpansPerTrace: 10, BrokenShare: 0.3, Seed: 5})
	run := func(instance string, log io.Writer) (listen string, stop func()) {
		listen = freeAddr(t)
		// The parts read back are those of the last four waits: a wait
		// longer than the test's steps, however slow the machine.
		return listen, startMember(t, stream.Config{Kafka: stream.Kafka{Brokers: brokers}, Topic: "otlp_spans", Group: "g", TraceIdle: 300 * time.Millisecond,
			Window: 300 * time.Millisecond, Instance: instance, Log: log, Listen: listen, PairWait: 3 * time.Second})
	}
	listen, stop := run("m", io.Discard)
	produceSpans(t, brokers, "otlp_spans", ts, false, "")
	for deadline := time.Now().Add(60 * time.Second); metricSum(t, listen, "ktrace_stream_pair_parts_total") == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no part of the pairs topic judged within a minute")
		}
	}
	judged := metricSum(t, listen, "ktrace_stream_pair_parts_total")
	stop()
	var mu sync.Mutex
	var buf strings.Builder
	listen, stop = run("m2", lockedWriter{&mu, &buf})
	defer stop()
	readBack := regexp.MustCompile(`read back (\d+) parts judged before offset`)
	// Each partition of the pairs topic is read back on its own, and says
	// so when done: the count is taken once they all said it, or at the
	// deadline.
	n := 0
	for deadline := time.Now().Add(30 * time.Second); n < int(judged) && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		mu.Lock()
		n = 0
		for _, m := range readBack.FindAllStringSubmatch(buf.String(), -1) {
			k, _ := strconv.Atoi(m[1])
			n += k
		}
		mu.Unlock()
	}
	if n == 0 {
		mu.Lock()
		said := buf.String()
		mu.Unlock()
		t.Fatalf("the next member read no part judged before back; it said:\n%s", said)
	}
	if n < int(judged) {
		t.Errorf("the next member read back %d parts, want at least the %v judged before", n, judged)
	}
	// The next member judges the rest, and nothing twice.
	parts := pairParts(t, brokers)
	for deadline := time.Now().Add(30 * time.Second); metricSum(t, listen, "ktrace_stream_pair_parts_total") < float64(parts)-judged; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			break
		}
	}
	time.Sleep(4 * time.Second) // more than a wait: anything judged twice would be by now
	if got := metricSum(t, listen, "ktrace_stream_pair_parts_total"); got != float64(parts)-judged {
		t.Errorf("the next member judged %v parts, want the %v of %d the first did not", got, float64(parts)-judged, parts)
	}
}

// admin is an admin client of the brokers, closed when the test ends.
func admin(t *testing.T, brokers []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// freeAddr is a loopback address nothing listens on, one another test's
// connections will not take meanwhile.
func freeAddr(t testing.TB) string {
	t.Helper()
	p, err := jaeger.FreePort() // below the ephemeral range: no outgoing connection takes it
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}

// runMember runs a member until cancel is called; done says how it ended.
func runMember(cfg stream.Config) (done <-chan error, cancel func()) {
	ctx, cancel := context.WithCancel(context.Background())
	end := make(chan error, 1)
	go func() { end <- stream.Run(ctx, cfg) }()
	return end, cancel
}

// startMember runs a member until the function it returns is called.
func startMember(t *testing.T, cfg stream.Config) (stop func()) {
	done, cancel := runMember(cfg)
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// pairParts counts the parts the pairs topic of group g holds, read
// committed, up to its end when called (members keep writing marks).
func pairParts(t *testing.T, brokers []string) int {
	n := 0
	for _, r := range topicRecords(t, brokers, stream.PairsTopic("g")) {
		if len(r.Value) > 0 && !strings.Contains(string(r.Key), "#") { // a part's first record, not a mark
			n++
		}
	}
	return n
}

// TestStreamLagging: a member that lags behind the span topic — its
// fetches held back for seconds, longer than the pairing wait, while the
// other member goes on — holds back the judgement of the hops whose
// other half it has not read: the members' metrics, summed, still count
// what the merged results count. Read by trace ID the gathering lags;
// re-keyed, the re-keying does. For eight waits, no longer: past them
// the parts are judged all the same, and counted overdue.
func TestStreamLagging(t *testing.T) {
	for _, c := range []struct {
		keyed, overdue bool
	}{{true, false}, {false, false}, {true, true}} {
		t.Run(fmt.Sprintf("keyed=%v,overdue=%v", c.keyed, c.overdue), func(t *testing.T) { lagging(t, c.keyed, c.overdue) })
	}
}

func lagging(t *testing.T, keyed, overdue bool) {
	// No fetch sessions: every fetch names all the partitions it reads,
	// so that the one holding partition 0 is known.
	cluster, brokers := newBroker(t, kfake.SeedTopics(2, "otlp_spans"), kfake.BrokerConfigs(map[string]string{"max.incremental.fetch.session.cache.slots": "0"}))
	adm := admin(t, brokers)
	details, err := adm.ListTopics(context.Background(), "otlp_spans")
	if err != nil {
		t.Fatal(err)
	}
	id := details["otlp_spans"].ID
	var lagUntil atomic.Int64 // Unix ns
	var held atomic.Int32
	cluster.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		until := time.Unix(0, lagUntil.Load())
		if time.Now().After(until) {
			return nil, nil, false
		}
		for _, ft := range req.(*kmsg.FetchRequest).Topics {
			if ft.Topic != "otlp_spans" && ft.TopicID != id {
				continue
			}
			for _, p := range ft.Partitions {
				if p.Partition == 0 {
					held.Add(1)
					cluster.SleepControl(func() { // lagUntil may move
						for time.Now().UnixNano() < lagUntil.Load() {
							time.Sleep(20 * time.Millisecond)
						}
					})
					return nil, nil, false
				}
			}
		}
		return nil, nil, false
	})
	listen := []string{freeAddr(t), freeAddr(t)}
	var logs [2]strings.Builder
	var mu sync.Mutex
	wait := 3 * time.Second // longer than the set's hops take; eight of them, than the lag
	if overdue {
		wait = time.Second // eight of them are less than the lag
	}
	for i, l := range listen {
		stop := startMember(t, stream.Config{Kafka: stream.Kafka{Brokers: brokers}, Topic: "otlp_spans", Group: "g", TraceIdle: 300 * time.Millisecond,
			Window: 300 * time.Millisecond, PairWait: wait,
			Instance: fmt.Sprintf("m%d", i), Log: lockedWriter{&mu, &logs[i]}, Listen: l, ByTraceID: keyed})
		defer stop()
	}
	for _, l := range listen { // serving
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if resp, err := http.Get("http://" + l + "/healthz"); err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not serving within 30s", l)
			}
		}
	}
	// Each member reads a partition of the span topic (in group g: the
	// gathering by trace ID, else the re-keying).
	for deadline := time.Now().Add(30 * time.Second); !partitionEach(adm, "g", "otlp_spans"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the members do not hold a partition of otlp_spans each within 30s")
		}
	}
	waitReady(t, listen, true)
	// The spans are written once a fetch of partition 0 is held (one in
	// flight before would bring them), held twelve seconds after.
	lagUntil.Store(time.Now().Add(time.Minute).UnixNano())
	for deadline := time.Now().Add(10 * time.Second); held.Load() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no fetch of partition 0 was held back: the test tests nothing")
		}
	}
	lagUntil.Store(time.Now().Add(12 * time.Second).UnixNano())
	ts := synth.Generate(synth.Config{Traces: 200, SpansPerTrace: 10, BrokenShare: 0.4, Seed: 11})
	// A record a trace, keyed by its ID, either way: re-keyed, a trace of
	// partition 1 does not wait for spans of partition 0.
	produceSpans(t, brokers, "otlp_spans", ts, true, "")
	want := graph.Build(ts)
	wantRep := analyze.Breaks(ts, want, analyze.Options{SkewTolerance: 10 * time.Millisecond})
	var got *graph.Graph
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		p, err := stream.ReadResults(context.Background(), stream.Kafka{Brokers: brokers}, "g", time.Time{}, time.Time{}, nil)
		if err == nil {
			if got, _ = p.Finish(); got.Traces == len(ts) {
				break
			}
		} else if !errors.Is(err, stream.ErrNoResults) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the merged results do not hold every trace within a minute")
		}
	}
	defer func() {
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			for i := range logs {
				t.Logf("member %d:\n%s", i, logs[i].String())
			}
		}
	}()
	if testenv.GraphSummary(got) != testenv.GraphSummary(want) {
		t.Fatalf("the merged graph differs from graph.Build's:\n%s\nwant\n%s", testenv.GraphSummary(got), testenv.GraphSummary(want))
	}
	overdueParts := func() float64 {
		return metricSum(t, listen[0], "ktrace_stream_pair_parts_overdue_total") + metricSum(t, listen[1], "ktrace_stream_pair_parts_overdue_total")
	}
	if !overdue {
		metricsAgree(t, listen, want, wantRep)
		if n := overdueParts(); n != 0 {
			t.Errorf("%v parts judged overdue, want none", n)
		}
		return
	}
	for deadline := time.Now().Add(30 * time.Second); overdueParts() == 0; time.Sleep(300 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no part judged overdue, eight waits after it came")
		}
	}
	mu.Lock()
	said := logs[0].String() + logs[1].String()
	mu.Unlock()
	if !strings.Contains(said, "parts judged before every partition gathered said") {
		t.Errorf("no member said it judged parts overdue:\n%s", said)
	}
}

// partitionEach says whether every member of group holds one partition
// of topic, and there are two.
func partitionEach(adm *kadm.Client, group, topic string) bool {
	groups, err := adm.DescribeGroups(context.Background(), group)
	if err != nil {
		return false
	}
	g := groups[group]
	if g.Err != nil || g.State != "Stable" || len(g.Members) != 2 {
		return false
	}
	for _, m := range g.Members {
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			return false
		}
		n := 0
		for _, at := range a.Topics {
			if at.Topic == topic {
				n += len(at.Partitions)
			}
		}
		if n != 1 {
			return false
		}
	}
	return true
}

// TestStreamNeverQuiet: a trace whose spans never stop coming (records
// under one trace ID every 100 ms, on the one partition) is analysed once
// open for the max age, so the traces written after its first record are
// published while it goes on, and the member says so once.
func TestStreamNeverQuiet(t *testing.T) {
	_, brokers := newBroker(t, kfake.SeedTopics(1, "otlp_spans"))
	var logs strings.Builder
	var mu sync.Mutex
	done, cancel := runMember(stream.Config{Kafka: stream.Kafka{Brokers: brokers}, Topic: "otlp_spans", Group: "g", TraceIdle: 500 * time.Millisecond,
		TraceMaxAge: 2 * time.Second, Window: 300 * time.Millisecond, Instance: "m", Log: lockedWriter{&mu, &logs}, ByTraceID: true})
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	// The endless trace: pieces of other traces, all under its ID.
	endless := synth.Generate(synth.Config{Traces: 200, SpansPerTrace: 3, Seed: 11})
	id := endless[0].ID
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("otlp_spans"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close() // after the writer stopped
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	wg.Go(func() { // one client, and off the test's goroutine, errors, not failures
		for i := range endless {
			if ctx.Err() != nil {
				return
			}
			endless[i].ID = id
			for j := range endless[i].Spans {
				sp := &endless[i].Spans[j]
				sp.TraceID = id
				for k := range sp.Refs {
					if sp.Refs[k].Type == trace.RefParent {
						sp.Refs[k].TraceID = id
					}
				}
			}
			data, err := file.MarshalOTLPProto(endless[i : i+1])
			if err == nil {
				err = cl.ProduceSync(ctx, &kgo.Record{Key: []byte(id.String()), Value: data}).FirstErr()
			}
			if err != nil && ctx.Err() == nil {
				t.Error(err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	time.Sleep(300 * time.Millisecond)
	ts := synth.Generate(synth.Config{Traces: 50, SpansPerTrace: 10, Seed: 12})
	produceSpans(t, brokers, "otlp_spans", ts, true, "")
	for deadline := time.Now().Add(12 * time.Second); publishedTraces(brokers, "g") <= len(ts); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d traces published while one trace goes on, want the %d after its first record too", publishedTraces(brokers, "g"), len(ts))
		}
	}
	if ctx.Err() != nil {
		t.Fatal("the endless trace ended before the others were published")
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logs.String(), "had spans coming for longer than --trace-max-age (2s)"); n != 1 {
		t.Errorf("said %d times that a trace was cut while open, want once:\n%s", n, logs.String())
	}
}

// TestStreamLargeRecord: a span topic that takes records larger than
// Kafka's default (the exporter's max_message_bytes raised to match) holds
// one record of a single trace of about 3 MiB, among ordinary ones. The
// re-keying cuts it into records the spans topic takes, and every trace is
// published whole (a write refused was lost: the transaction committed
// the input's offsets all the same).
func TestStreamLargeRecord(t *testing.T) {
	brokers := largeRecordsTopic(t)
	// One trace of 3000 spans: a server span's children, each with an
	// attribute of a kilobyte.
	big := largeTrace(1, 3000, func(int) string { return strings.Repeat("x", 1000) })
	if size := produceLarge(t, brokers, big); size < 3<<20 {
		t.Fatalf("the large record holds %d bytes, want at least 3 MiB", size)
	}
	amongOrdinary(t, brokers, 1, len(big[0].Spans))
}

// largeRecordsTopic starts a broker whose span topic otlp_spans, of two
// partitions, takes records of up to 16 MiB (closed at the test's end).
func largeRecordsTopic(t *testing.T) (brokers []string) {
	t.Helper()
	_, brokers = newBroker(t)
	maxBytes := strconv.Itoa(16 << 20)
	if _, err := admin(t, brokers).CreateTopic(context.Background(), 2, 1, map[string]*string{"max.message.bytes": &maxBytes}, "otlp_spans"); err != nil {
		t.Fatal(err)
	}
	return brokers
}

// produceLarge writes each of sets as one record to otlp_spans, returning
// the largest record's size.
func produceLarge(t *testing.T, brokers []string, sets ...[]trace.Trace) (largest int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("otlp_spans"), kgo.ProducerBatchMaxBytes(16<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, ts := range sets {
		data, err := file.MarshalOTLPProto(ts)
		if err != nil {
			t.Fatal(err)
		}
		largest = max(largest, len(data))
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: data}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	return largest
}

// amongOrdinary writes 20 ordinary traces of 10 spans to otlp_spans after
// what the test wrote there, runs a member until its results hold them
// and the test's traces (more), and checks they hold their spans and the
// test's (spans); it returns what the member logged.
func amongOrdinary(t *testing.T, brokers []string, more, spans int) (log func() string) {
	t.Helper()
	ts := synth.Generate(synth.Config{Traces: 20, SpansPerTrace: 10, Seed: 22})
	produceSpans(t, brokers, "otlp_spans", ts, false, "")
	stop, log := quickMember(t, brokers)
	t.Cleanup(stop)
	awaitTraces(t, brokers, len(ts)+more, log)
	p, err := stream.ReadResults(context.Background(), stream.Kafka{Brokers: brokers}, "g", time.Time{}, time.Time{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := p.Finish()
	if want := spans + 10*len(ts); g.Spans != want {
		t.Errorf("the results hold %d spans, want %d", g.Spans, want)
	}
	return log
}

// largeTrace is a trace of n spans, a server span and its children, each
// child with an attribute pad(i); its ID is not one synth gives.
func largeTrace(id uint64, n int, pad func(i int) string) []trace.Trace {
	big := synth.Generate(synth.Config{Traces: 1, Seed: 21})[:1]
	big[0].ID = trace.TraceID{High: 0xb16, Low: id}
	root := big[0].Spans[0]
	root.TraceID, root.Refs = big[0].ID, nil
	big[0].Spans = []trace.Span{root}
	for i := range n - 1 {
		s := root
		s.SpanID = trace.SpanID(1000 + i)
		s.Refs = []trace.Ref{{Type: trace.RefParent, TraceID: root.TraceID, SpanID: root.SpanID}}
		s.Attributes = trace.Attributes{{Key: "pad", Value: pad(i)}}
		big[0].Spans = append(big[0].Spans, s)
	}
	return big
}

// TestStreamOldTopics: the internal topics were made by earlier members,
// with Kafka's default largest record (about 1 MiB), and the spans are
// large and do not compress. The re-keying writes batches the spans
// topic takes (it wrote batches of up to 16 MiB, refused, and aborted for
// ever), and a span larger than that topic takes is counted as
// undecodable, not written; every other trace is published.
func TestStreamOldTopics(t *testing.T) {
	brokers := largeRecordsTopic(t)
	for _, topic := range []string{stream.SpansTopic("g"), stream.SegmentsTopic("g"), stream.PairsTopic("g"), stream.ResultsTopic("g")} {
		if _, err := admin(t, brokers).CreateTopic(context.Background(), 2, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(7, 8))
	random := func(n int) string {
		const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
		b := make([]byte, n)
		for i := range b {
			b[i] = letters[rng.IntN(len(letters))]
		}
		return string(b)
	}
	big := largeTrace(1, 3000, func(int) string { return random(1000) })
	huge := largeTrace(2, 2, func(int) string { return random(1536 << 10) })
	produceLarge(t, brokers, big, huge)
	// The huge trace's server span is published alone.
	log := amongOrdinary(t, brokers, 2, len(big[0].Spans)+1)
	if !strings.Contains(log(), "more than a record of the spans topic may (983052)") {
		t.Errorf("the span too large for the spans topic was not told:\n%s", log())
	}
}

// TestStreamRekeyWriteFails: the broker refuses the re-keying's first
// write to the spans topic (a record it will not take); the transaction
// must abort, not commit the offsets past spans it never wrote, so that
// they are read and written again: every trace is published.
func TestStreamRekeyWriteFails(t *testing.T) {
	cluster, brokers := newBroker(t, kfake.SeedTopics(2, "otlp_spans"))
	spans := stream.SpansTopic("g") // made here, to know its ID: requests may name it by that alone
	adm := admin(t, brokers)
	if _, err := adm.CreateTopic(context.Background(), 2, 1, nil, spans); err != nil {
		t.Fatal(err)
	}
	details, err := adm.ListTopics(context.Background(), spans)
	if err != nil {
		t.Fatal(err)
	}
	refused := kafkatest.RefuseFirstWrite(cluster, spans, details[spans].ID)
	ts := synth.Generate(synth.Config{Traces: 30, SpansPerTrace: 8, Seed: 23})
	produceSpans(t, brokers, "otlp_spans", ts, false, "")
	stop, log := quickMember(t, brokers)
	defer stop()
	awaitTraces(t, brokers, len(ts), log)
	if refused.Load() == 0 {
		t.Fatal("no write to the spans topic was refused")
	}
	if l := log(); strings.Count(l, "INVALID_RECORD") != 1 || strings.Contains(l, "rebalanced") {
		t.Errorf("the refused write is not told once, as the abort's cause:\n%s", l)
	}
}

// TestStreamManyTraces: 70,000 traces of a span each, on one partition,
// with a window of a minute. A segment's record in the segments topic
// lists its traces' IDs: one of them all would be larger than Kafka's
// default largest record, which that topic has where an earlier member
// made it (and where the publishing transaction then aborted at every
// window, for ever). The member publishes a segment once it holds 32,768
// traces, well before the window ends, and no segment record it writes is
// larger than a MiB.
func TestStreamManyTraces(t *testing.T) {
	_, brokers := newBroker(t, kfake.SeedTopics(1, "otlp_spans"))
	ts := synth.Generate(synth.Config{Traces: 70_000, Seed: 24})
	rng := rand.New(rand.NewPCG(24, 25))
	for i := range ts { // a root span each, under a random ID as real ones are
		ts[i].ID = trace.TraceID{High: rng.Uint64(), Low: rng.Uint64()}
		ts[i].Spans = ts[i].Spans[:1]
		ts[i].Spans[0].TraceID, ts[i].Spans[0].Refs = ts[i].ID, nil
	}
	var logs strings.Builder
	var mu sync.Mutex
	listen := freeAddr(t)
	stop := startMember(t, stream.Config{Kafka: stream.Kafka{Brokers: brokers}, Topic: "otlp_spans", Group: "g", TraceIdle: 300 * time.Millisecond,
		Window: time.Minute, Instance: "m", Log: lockedWriter{&mu, &logs}, ByTraceID: true, Listen: listen})
	defer stop()
	// The rest is written once the member holds the partition and is
	// ready: read as it comes, not restored (a partition given is
	// published once restored).
	produceSpans(t, brokers, "otlp_spans", ts[:1], true, "")
	held := func() bool {
		resp, err := http.Get("http://" + listen + "/healthz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), "partitions 0 of") && !strings.Contains(string(b), "not ready")
	}
	for deadline := time.Now().Add(10 * time.Second); !held(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the member holds no partition, or is not ready")
		}
	}
	produceSpans(t, brokers, "otlp_spans", ts[1:], true, "")
	for deadline := time.Now().Add(30 * time.Second); publishedTraces(brokers, "g") < 32_768; time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			mu.Lock()
			t.Fatalf("%d traces published within the window, want a segment of 32,768 at least:\n%.2000s", publishedTraces(brokers, "g"), logs.String())
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(stream.SegmentsTopic("g")), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for read := 0; read == 0; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("no segment record read")
		}
		fs.EachRecord(func(r *kgo.Record) {
			read++
			if len(r.Value) > 1<<20 {
				t.Errorf("a segment record of %d bytes", len(r.Value))
			}
		})
	}
}

// TestStreamResultTooLarge: a service puts a query in every span name, so
// a segment's result lists as many names as spans, more than a record
// may hold: here the results topic was made by hand to take records of
// 192 KiB at most (a member writes pieces of up to 900 KiB, which such a
// topic refused, and the transaction aborted at every window, for ever).
// The result is written in pieces that topic takes and read back whole:
// every span counted, every name kept. A topic that takes less than a
// member can work with is refused at start, in one line.
func TestStreamResultTooLarge(t *testing.T) {
	_, brokers := newBroker(t, kfake.SeedTopics(1, "otlp_spans"))
	limit := func(group string, bytes int) {
		t.Helper()
		v := strconv.Itoa(bytes)
		if _, err := admin(t, brokers).CreateTopic(context.Background(), 1, 1, map[string]*string{"max.message.bytes": &v}, stream.ResultsTopic(group)); err != nil {
			t.Fatal(err)
		}
	}
	limit("tiny", 100<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := stream.Run(ctx, stream.Config{Kafka: stream.Kafka{Brokers: brokers}, Topic: "otlp_spans", Group: "tiny", Log: io.Discard, ByTraceID: true})
	if err == nil || !strings.Contains(err.Error(), "ktrace.tiny.results takes records of at most 102400 bytes (max.message.bytes): a member needs at least 131072 there") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("a results topic that takes 100 KiB: got %v, want a one-line error naming it", err)
	}
	limit("g", 192<<10)
	ts := synth.Generate(synth.Config{Traces: 200, Seed: 26})
	n := 0
	for i := range ts {
		for j := range ts[i].Spans {
			ts[i].Spans[j].Operation = fmt.Sprintf("SELECT login, name, email, created_at FROM users WHERE id = %d AND deleted_at IS NULL", n)
			n++
		}
	}
	produceSpans(t, brokers, "otlp_spans", ts, true, "")
	stop, log := quickMember(t, brokers, func(c *stream.Config) { c.ByTraceID = true })
	defer stop()
	awaitTraces(t, brokers, len(ts), log)
	p, err := stream.ReadResults(context.Background(), stream.Kafka{Brokers: brokers}, "g", time.Time{}, time.Time{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := p.Finish()
	if g.Spans != n {
		t.Errorf("the results hold %d spans, want %d", g.Spans, n)
	}
	names := 0
	for _, node := range g.Nodes {
		names += len(node.Operations)
	}
	if names != n {
		t.Errorf("the results list %d span names, want %d", names, n)
	}
	recs := topicRecords(t, brokers, stream.ResultsTopic("g"))
	if pieceCount(recs) == 0 {
		t.Error("no result was written in pieces")
	}
	for _, r := range recs {
		if len(r.Value) > 128<<10 {
			t.Errorf("a record of %d bytes in the results topic, more than its limit less a batch's room", len(r.Value))
		}
	}
}

// newBroker starts a kfake broker with opts for the test, closed when it
// ends, and returns it and its addresses.
func newBroker(t *testing.T, opts ...kfake.Opt) (*kfake.Cluster, []string) {
	t.Helper()
	cluster, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return cluster, cluster.ListenAddrs()
}

// pieceCount counts the records of pieces after a value's first.
func pieceCount(recs []*kgo.Record) int {
	n := 0
	for _, r := range recs {
		if strings.Contains(string(r.Key), "#") {
			n++
		}
	}
	return n
}

// topicRecords reads every committed record of topic up to its end when
// called.
func topicRecords(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	var recs []*kgo.Record
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading %s: %v", topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if !r.Attrs.IsControl() {
				recs = append(recs, r)
			}
			if r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return recs
}

// quickMember starts a member of group g re-keying otlp_spans, with short
// idle and window times, its config changed by each of tweaks; log reads
// what it logged so far.
func quickMember(t *testing.T, brokers []string, tweaks ...func(*stream.Config)) (stop func(), log func() string) {
	var logs strings.Builder
	var mu sync.Mutex
	cfg := stream.Config{Kafka: stream.Kafka{Brokers: brokers}, Topic: "otlp_spans", Group: "g", TraceIdle: 300 * time.Millisecond,
		Window: 300 * time.Millisecond, Instance: "m", Log: lockedWriter{&mu, &logs}}
	for _, tweak := range tweaks {
		tweak(&cfg)
	}
	stop = startMember(t, cfg)
	return stop, func() string {
		mu.Lock()
		defer mu.Unlock()
		return logs.String()
	}
}

// awaitTraces waits until group g's results hold want traces, failing
// with log after 20 seconds.
func awaitTraces(t *testing.T, brokers []string, want int, log func() string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); publishedTraces(brokers, "g") < want; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d traces published, want %d:\n%s", publishedTraces(brokers, "g"), want, log())
		}
	}
}

// TestStreamBacklog: a member that reads a backlog (records written over
// minutes, read in a second) completes a trace once the partition has
// moved the idle time past its last span in the records' own time, as it
// would have reading them as they came: it does not hold every trace it
// read until the wall clock's idle time has passed. Here 300 traces a
// second apart in record time and an idle time of a minute: the first
// 239 are published within seconds and equal graph.Build's over them;
// the last minute's wait for the wall clock.
func TestStreamBacklog(t *testing.T) {
	_, brokers := newBroker(t, kfake.SeedTopics(1, "otlp_spans"))
	ts := synth.Generate(synth.Config{Traces: 300, SpansPerTrace: 6, Seed: 31})
	base := time.Now().Add(-400 * time.Second)
	var recs []*kgo.Record
	for i := range ts {
		data, err := file.MarshalOTLPProto(ts[i : i+1])
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: "otlp_spans", Key: []byte(ts[i].ID.String()), Value: data, Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	stop, log := quickMember(t, brokers, func(c *stream.Config) { c.ByTraceID, c.TraceIdle, c.PairWait = true, time.Minute, time.Second })
	defer stop()
	const want = 239 // last span more than a minute of record time before the newest
	awaitTraces(t, brokers, want, log)
	time.Sleep(2 * time.Second) // a window or more: nothing else is complete
	p, err := stream.ReadResults(context.Background(), stream.Kafka{Brokers: brokers}, "g", time.Time{}, time.Time{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := p.Finish()
	if g, w := testenv.GraphSummary(got), testenv.GraphSummary(graph.Build(ts[:want])); g != w {
		t.Fatalf("the published graph differs from graph.Build's over the first %d traces:\n%s\nwant\n%s", want, g, w)
	}
}
