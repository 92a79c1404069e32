//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/testenv"
	"github.com/ktrace-dev/ktrace/render"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/source/jaeger"
	"github.com/ktrace-dev/ktrace/stack"
	sj "github.com/ktrace-dev/ktrace/stack/jaeger"
	"github.com/ktrace-dev/ktrace/stack/services"
	"github.com/ktrace-dev/ktrace/stack/stargazers"
	"github.com/ktrace-dev/ktrace/trace"
)

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func stackOptions(t *testing.T, propagation string) stack.Options {
	return stack.Options{
		Exe: ktraceBin, StateDir: t.TempDir(), Propagation: propagation, Progress: logWriter{t},
		KafkaPort: freePort(t), JaegerGRPCPort: freePort(t), JaegerUIPort: freePort(t), OTLPPort: freePort(t), APIPort: freePort(t),
	}
}

// upStack starts a stack and stops it at cleanup, checking that no
// component outlives Down. A port the test picked free and something else
// took before the stack bound it (tests of other packages run alongside)
// is picked again, up to three times: o is updated.
func upStack(t *testing.T, o *stack.Options) *stack.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var st *stack.State
	var err error
	for attempt := 1; ; attempt++ {
		if st, err = stack.Up(ctx, *o); err == nil || attempt == 3 || !strings.Contains(err.Error(), "already in use") {
			break
		}
		t.Logf("a port was taken meanwhile (%v); picking others", err)
		o.StateDir = t.TempDir()
		o.KafkaPort, o.JaegerGRPCPort, o.JaegerUIPort, o.OTLPPort, o.APIPort = freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	}
	if err != nil {
		t.Fatal(err)
	}
	downAtCleanup(t, o.StateDir)
	return st
}

// downAtCleanup brings the stack in dir down when the test ends, and
// fails it if a component outlives stack down (which it then kills).
func downAtCleanup(t *testing.T, dir string) {
	t.Cleanup(func() {
		final, err := stack.Load(dir)
		if err != nil {
			t.Errorf("state gone before Down: %v", err)
			return
		}
		if t.Failed() {
			// What the components said is all CI keeps of a failure.
			for _, c := range final.Components {
				if b, err := os.ReadFile(c.Log); err == nil {
					t.Logf("--- %s log (last lines):\n%s", c.Name, lastLines(string(b), 40))
				}
			}
		}
		if err := stack.Down(dir, nil); err != nil {
			t.Errorf("down: %v", err)
		}
		for _, c := range final.Components {
			if c.Alive() {
				t.Errorf("%s (pid %d) still running after down", c.Name, c.Pid)
				syscall.Kill(c.Pid, syscall.SIGKILL)
			}
		}
	})
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func apiResults(t *testing.T, url string) []stargazers.Result {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []stargazers.Result
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	return got
}

func expected(t *testing.T) []stargazers.Result {
	f, err := stargazers.Load()
	if err != nil {
		t.Fatal(err)
	}
	return stargazers.Expected(f.Events)
}

// waitAnswer waits until the API holds as many results as expected, then
// checks they are exactly the expected ones.
func waitAnswer(t *testing.T, url string) {
	t.Helper()
	want := expected(t)
	deadline := time.Now().Add(60 * time.Second)
	var got []stargazers.Result
	for time.Now().Before(deadline) {
		if got = apiResults(t, url); len(got) >= len(want) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // a duplicate would arrive now
	got = apiResults(t, url)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("API holds %d results, want the %d expected:\n got %v\nwant %v", len(got), len(want), got, want)
	}
}

// stableTraces reads every trace from Jaeger until the span count stops changing.
func stableTraces(t *testing.T, addr string) []trace.Trace {
	t.Helper()
	c, err := jaeger.Dial(jaeger.Config{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	last, stable := -1, 0
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		set := &trace.Set{}
		now := time.Now()
		if _, err := c.Find(context.Background(), jaeger.Query{Start: now.Add(-time.Hour), End: now.Add(time.Minute)}, set, nil); err != nil {
			t.Fatal(err)
		}
		if n := set.SpanCount(); n > 0 && n == last {
			if stable++; stable >= 2 {
				return set.Traces()
			}
		} else {
			stable, last = 0, n
		}
	}
	t.Fatal("traces did not settle in Jaeger")
	return nil
}

// recordFixture writes traces as fixtures/NAME.ktrace when -record is given.
func recordFixture(t *testing.T, name string, traces []trace.Trace) {
	t.Helper()
	if !*record {
		return
	}
	af, err := file.CreateAtomic("../../fixtures/"+name+".ktrace", true)
	if err != nil {
		t.Fatal(err)
	}
	defer af.Abort()
	if err := file.WriteSnapshot(af, "ktrace stack, "+name, traces); err != nil {
		t.Fatal(err)
	}
	if err := af.Commit(); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded fixtures/%s.ktrace", name)
}

func edgeSet(g *graph.Graph) map[string]*graph.Edge {
	m := map[string]*graph.Edge{}
	for _, e := range g.Edges {
		if e.From.Kind == graph.KindUnknownCaller { // our own GET /stargazers calls
			continue
		}
		m[fmt.Sprintf("%s -> %s %s/%s", e.From.Key, e.To.Key, e.Kind, e.Relation)] = e
	}
	return m
}

func servicesOf(t *trace.Trace) map[string]bool {
	m := map[string]bool{}
	for i := range t.Spans {
		m[t.Spans[i].Service()] = true
	}
	return m
}

func checkStackGraph(t *testing.T, traces []trace.Trace, joinRelation string) *graph.Graph {
	t.Helper()
	g := graph.Build(traces)
	got := edgeSet(g)
	want := map[string]int{
		"service:github-source -> topic:github-avro-stargazers-kafka produce/span":        216,
		"service:github-source -> topic:github-avro-stargazers-jackdaw produce/span":      66,
		"topic:github-avro-stargazers-kafka -> service:stargazers-flatten consume/parent": 216,
		"service:stargazers-flatten -> topic:stargazers-flat produce/parent":              216,
		"topic:github-avro-stargazers-kafka -> service:stargazers-join consume/parent":    216,
		"topic:github-avro-stargazers-jackdaw -> service:stargazers-join consume/parent":  66,
		"service:stargazers-join -> topic:stargazers-results produce/" + joinRelation:     24,
		"topic:stargazers-results -> service:stargazers-api consume/parent":               24,
	}
	for k, n := range want {
		e, ok := got[k]
		if !ok {
			t.Errorf("missing edge %s", k)
			continue
		}
		if e.Count != n {
			t.Errorf("%s: count %d, want %d", k, e.Count, n)
		}
		if e.From == e.To {
			t.Errorf("self-loop %s", k)
		}
	}
	if len(got) != len(want) {
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected edge %s", k)
			}
		}
	}
	return g
}

// With the default join the traces break inside the join: no trace runs
// from github-source to stargazers-api, and the graph stitches the join's
// new traces back to its inputs.
func TestStackLostPropagation(t *testing.T) {
	o := stackOptions(t, services.PropagationLost)
	st := upStack(t, &o)
	if _, err := stack.Traffic(context.Background(), o.StateDir, 0, 0); err != nil {
		t.Fatal(err)
	}
	waitAnswer(t, st.Endpoints.API)
	traces := stableTraces(t, st.Endpoints.JaegerQuery)
	recordFixture(t, "stargazers-lost", traces)
	g := checkStackGraph(t, traces, "stitched")

	apiTraces := 0
	for i := range traces {
		s := servicesOf(&traces[i])
		if s["github-source"] && s["stargazers-api"] {
			t.Fatalf("trace %s runs from github-source to stargazers-api; the join should have lost the context", traces[i].ID)
		}
		if s["stargazers-api"] && s["stargazers-join"] {
			apiTraces++
		}
	}
	if apiTraces != 24 {
		t.Errorf("%d traces start at the join's output and reach the API, want 24", apiTraces)
	}
	// The break is reported inside the join, and the CI gate fails on it.
	out, err := exec.Command(ktraceBin, "report", "--broken", "--jaeger", st.Endpoints.JaegerQuery, "--settle", "500ms").Output()
	if err != nil || !strings.Contains(string(out), "lost-inside\tstargazers-join: github-avro-stargazers-jackdaw, github-avro-stargazers-kafka → stargazers-results\t24\t24") {
		t.Errorf("report --broken: %v\n%s", err, out)
	}
	checkExit(t, st.Endpoints.JaegerQuery, 1)

	// The stack's live map (ktrace serve on its Jaeger) draws the join's
	// broken output within a re-read.
	if st.Endpoints.Map == "" {
		t.Fatal("the stack has no map endpoint")
	}
	drawn := false
	for deadline := time.Now().Add(30 * time.Second); !drawn && time.Now().Before(deadline); time.Sleep(time.Second) {
		resp, err := http.Get(st.Endpoints.Map + "data.json")
		if err != nil {
			continue
		}
		var d struct {
			Edges []struct{ From, To, Relation string }
		}
		json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		for _, e := range d.Edges {
			drawn = drawn || (e.From == "service:stargazers-join" && e.To == "topic:stargazers-results" && e.Relation == "stitched")
		}
	}
	if !drawn {
		t.Error("the live map does not draw the join's output as broken")
	}

	pass := 0
	for _, s := range g.Stitches {
		if s.Kind == graph.StitchPassThrough && s.Producer.Service == "stargazers-join" && s.OutTopic == stargazers.TopicResults {
			pass++
		}
	}
	if pass != 24 {
		t.Errorf("%d pass-through stitches at the join, want 24", pass)
	}
}

// With --propagation links (and an existing Kafka cluster and Jaeger given by
// --kafka-brokers, --jaeger-endpoint and --otlp-endpoint), one trace runs from github-source to stargazers-api for
// every result, and each output links to the buffered input.
func TestStackLinksPropagationOnExistingKafka(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close) // after the stack is down: cleanups run last first
	external := testenv.Jaeger(t)
	o := stackOptions(t, services.PropagationLinks)
	o.Cluster.Brokers = cluster.ListenAddrs()
	o.JaegerEndpoint, o.OTLPEndpoint = external.QueryAddr(), external.OTLPAddr()
	st := upStack(t, &o)
	if st.Component(stack.Broker) != nil || st.Component(stack.Jaeger) != nil {
		t.Fatal("started an embedded broker or Jaeger although existing ones were given")
	}
	if st.Endpoints.JaegerQuery != external.QueryAddr() {
		t.Fatalf("stack reads traces from %s, want the existing Jaeger %s", st.Endpoints.JaegerQuery, external.QueryAddr())
	}
	if _, err := stack.Traffic(context.Background(), o.StateDir, 0, 0); err != nil {
		t.Fatal(err)
	}
	waitAnswer(t, st.Endpoints.API)
	traces := stableTraces(t, st.Endpoints.JaegerQuery)
	recordFixture(t, "stargazers-links", traces)
	checkStackGraph(t, traces, "parent")

	through, linked := 0, 0
	for i := range traces {
		tr := &traces[i]
		s := servicesOf(tr)
		if s["github-source"] && s["stargazers-join"] && s["stargazers-api"] {
			through++
		}
		for j := range tr.Spans {
			sp := &tr.Spans[j]
			if sp.Service() == "stargazers-join" && sp.Kind == trace.KindProducer {
				for _, r := range sp.Refs {
					if r.Type == trace.RefLink && r.TraceID != tr.ID {
						linked++
					}
				}
			}
		}
	}
	if through != 24 || linked != 24 {
		t.Errorf("%d traces run github-source → stargazers-api and %d outputs link to their buffered input; want 24 and 24", through, linked)
	}
	checkExit(t, st.Endpoints.JaegerQuery, 0)
}

// Killing the join mid-traffic and restarting it loses and duplicates nothing.
func TestStackJoinRestart(t *testing.T) {
	o := stackOptions(t, services.PropagationLost)
	st := upStack(t, &o)
	done := make(chan error, 1)
	go func() {
		_, err := stack.Traffic(context.Background(), o.StateDir, 0, 150)
		done <- err
	}()
	time.Sleep(800 * time.Millisecond)
	join := st.Component(stack.Join)
	if err := syscall.Kill(join.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := stack.Restart(ctx, o.StateDir, stack.Join, false, 0); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitAnswer(t, st.Endpoints.API)
	// The second start restored the window store from the changelog.
	log, _ := os.ReadFile(join.Log)
	var readies []string
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, "ready:") {
			readies = append(readies, line)
		}
	}
	if len(readies) != 2 || strings.Contains(readies[1], " 0 store entries restored") {
		t.Errorf("join log does not show a restart with restored state:\n%s", strings.Join(readies, "\n"))
	}
}

// A malformed event on a source topic is skipped, counted and logged; the
// services keep going and the answer is still right.
// (This stack also keeps its traces in Badger, --persist.)
func TestStackSkipsMalformedEvents(t *testing.T) {
	o := stackOptions(t, services.PropagationLost)
	o.Persist = true
	st := upStack(t, &o)
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.Endpoints.Kafka))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: stargazers.TopicKafka, Value: []byte("not avro")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if _, err := stack.Traffic(context.Background(), o.StateDir, 0, 0); err != nil {
		t.Fatal(err)
	}
	waitAnswer(t, st.Endpoints.API)
	for _, name := range []string{stack.Flatten, stack.Join} {
		c := st.Component(name)
		resp, err := http.Get(c.Health)
		if err != nil {
			t.Fatal(err)
		}
		var h services.Health
		json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if h.Skipped != 1 {
			t.Errorf("%s skipped %d records, want 1", name, h.Skipped)
		}
		log, _ := os.ReadFile(c.Log)
		if !strings.Contains(string(log), "skipping record "+stargazers.TopicKafka) {
			t.Errorf("%s did not log the malformed record", name)
		}
	}
	// stack logs shows it too.
	out, err := exec.Command(ktraceBin, "stack", "logs", stack.Flatten, "--state-dir", o.StateDir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "skipping record") {
		t.Errorf("stack logs: %v\n%s", err, out)
	}
	// Traces went to Badger on disk.
	entries, err := os.ReadDir(filepath.Join(o.StateDir, "jaeger", "badger", "keys"))
	if err != nil || len(entries) == 0 {
		t.Errorf("no Badger data under the state directory: %v", err)
	}
	traces := stableTraces(t, st.Endpoints.JaegerQuery)
	if len(traces) < 282 {
		t.Errorf("Badger-backed Jaeger holds %d traces", len(traces))
	}
}

func TestStackBadInput(t *testing.T) {
	ctx := context.Background()
	t.Run("unreachable brokers", func(t *testing.T) {
		o := stackOptions(t, "")
		o.Cluster.Brokers = []string{fmt.Sprintf("127.0.0.1:%d", freePort(t))}
		_, err := stack.Up(ctx, o)
		if err == nil || !strings.Contains(err.Error(), "cannot reach Kafka at "+o.Cluster.Brokers[0]) {
			t.Fatalf("error %v", err)
		}
		if _, err := stack.Load(o.StateDir); !errors.Is(err, stack.ErrNotRunning) {
			t.Errorf("state left behind: %v", err)
		}
	})
	t.Run("flags that go with others", func(t *testing.T) {
		for _, args := range [][]string{{"--spans-by-trace"}, {"--stream-replicas", "2"}, {"--kafka-tls"}, {"--kafka-sasl", "plain", "--kafka-user", "u"}} {
			out, code := runOut(t, append([]string{"stack", "up", "--state-dir", t.TempDir()}, args...)...)
			if code != 2 || out != "" {
				t.Errorf("stack up %v: exit %d, stdout %q: want a usage error", args, code, out)
			}
		}
	})
	t.Run("port in use", func(t *testing.T) {
		o := stackOptions(t, "")
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", o.APIPort))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		_, err = stack.Up(ctx, o)
		var pe *stack.PortInUseError
		if !errors.As(err, &pe) || pe.Port != o.APIPort {
			t.Fatalf("error %v", err)
		}
		// Through the CLI: one line, exit code 2.
		out, err := exec.Command(ktraceBin, "stack", "up", "--state-dir", o.StateDir, "--api-port", fmt.Sprint(o.APIPort),
			"--kafka-port", fmt.Sprint(o.KafkaPort)).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), fmt.Sprintf("port %d (stargazers-api) is already in use", o.APIPort)) {
			t.Errorf("ktrace stack up: %v\n%s", err, out)
		}
	})
	t.Run("no jaeger and no go toolchain", func(t *testing.T) {
		o := stackOptions(t, "")
		t.Setenv("KTRACE_JAEGER_BIN", "")
		t.Setenv("XDG_CACHE_HOME", t.TempDir())
		t.Setenv("PATH", t.TempDir())
		_, err := stack.Up(ctx, o)
		if !errors.Is(err, sj.ErrNoToolchain) {
			t.Fatalf("error %v", err)
		}
		if _, err := stack.Load(o.StateDir); !errors.Is(err, stack.ErrNotRunning) {
			t.Errorf("state left behind: %v", err)
		}
	})
	t.Run("a component fails mid-start", func(t *testing.T) {
		o := stackOptions(t, "")
		fake := filepath.Join(t.TempDir(), "jaeger")
		os.WriteFile(fake, []byte("#!/bin/sh\necho 'no such storage backend' >&2\nexit 3\n"), 0o755)
		o.JaegerBin = fake
		st, err := stack.Up(ctx, o)
		if err == nil || !strings.Contains(err.Error(), "jaeger exited during start-up") || !strings.Contains(err.Error(), "no such storage backend") {
			t.Fatalf("error %v", err)
		}
		if st == nil || st.Component(stack.Broker) == nil {
			t.Fatal("the broker should have been started before jaeger")
		}
		for _, c := range st.Components {
			if c.Alive() {
				t.Errorf("%s (pid %d) left running after a failed up", c.Name, c.Pid)
				syscall.Kill(c.Pid, syscall.SIGKILL)
			}
		}
		if _, err := stack.Load(o.StateDir); !errors.Is(err, stack.ErrNotRunning) {
			t.Errorf("state left behind: %v", err)
		}
	})
	t.Run("stale state", func(t *testing.T) {
		o := stackOptions(t, "")
		// A state file whose processes are long gone (an exited process's pid).
		dead := exec.Command("true")
		dead.Run()
		os.MkdirAll(o.StateDir, 0o755)
		stale := fmt.Sprintf(`{"components":[{"name":"kafka","argv":["/nonexistent"],"pid":%d,"health":"http://127.0.0.1:1/healthz","log":"/dev/null"}]}`, dead.Process.Pid)
		os.WriteFile(filepath.Join(o.StateDir, "state.json"), []byte(stale), 0o644)
		_, list, err := stack.Status(o.StateDir)
		if err != nil || len(list) != 1 || list[0].Status != "stopped" {
			t.Errorf("status of stale state: %+v %v", list, err)
		}
		upStack(t, &o) // replaces the stale state
	})
	t.Run("already running and stale state", func(t *testing.T) {
		o := stackOptions(t, "")
		st := upStack(t, &o)
		if _, err := stack.Up(ctx, o); !errors.Is(err, stack.ErrRunning) {
			t.Errorf("second up: %v", err)
		}
		// Status through the CLI, then a component dies: status exits 1.
		out, err := exec.Command(ktraceBin, "stack", "status", "--state-dir", o.StateDir).CombinedOutput()
		if err != nil || strings.Count(string(out), "\thealthy\t") != 7 {
			t.Errorf("status: %v\n%s", err, out)
		}
		api := st.Component(stack.API)
		syscall.Kill(api.Pid, syscall.SIGKILL)
		time.Sleep(300 * time.Millisecond)
		out, err = exec.Command(ktraceBin, "stack", "status", "--state-dir", o.StateDir).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "stargazers-api\tstopped") {
			t.Errorf("status with a dead component: %v\n%s", err, out)
		}
	})
}

// ktrace demo runs end to end and says where traces break.
func TestDemo(t *testing.T) {
	for _, viaKafka := range []bool{false, true} {
		t.Run(fmt.Sprint("spans via kafka ", viaKafka), func(t *testing.T) { demo(t, viaKafka) })
	}
}

// demo runs ktrace demo, with --spans-via-kafka (the graph read from what
// ktrace stream published) or without.
func demo(t *testing.T, viaKafka bool) {
	o := stackOptions(t, "")
	var stdout, stderr strings.Builder
	// Ports picked free may be taken meanwhile on a busy machine: then
	// the demo runs again on others (as upStack does).
	for attempt := 1; ; attempt++ {
		args := []string{"demo", "--state-dir", o.StateDir, "--kafka-port", fmt.Sprint(o.KafkaPort),
			"--jaeger-grpc-port", fmt.Sprint(o.JaegerGRPCPort), "--jaeger-ui-port", fmt.Sprint(o.JaegerUIPort),
			"--otlp-port", fmt.Sprint(o.OTLPPort), "--api-port", fmt.Sprint(o.APIPort)}
		if viaKafka {
			args = append(args, "--spans-via-kafka")
		}
		cmd := exec.Command(ktraceBin, args...)
		stdout.Reset()
		stderr.Reset()
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(stderr.String(), "already in use") {
			t.Fatalf("demo: %v\n%s\n%s", err, stdout.String(), stderr.String())
		}
		t.Logf("a port was taken meanwhile; picking others")
		o.StateDir = t.TempDir()
		o.KafkaPort, o.JaegerGRPCPort, o.JaegerUIPort, o.OTLPPort, o.APIPort = freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	}
	out := stdout.String()
	for _, want := range []string{
		"stargazers-join\ttopic:stargazers-results\tproduce\tstitched\t",
		"context lost inside stargazers-join: github-avro-stargazers-jackdaw, github-avro-stargazers-kafka → stargazers-results (24 records",
		"stargazers-api holds the 24 logins that starred both repositories within 10 days, as expected",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr.String(), "starting jaeger") || strings.Contains(out, "starting jaeger") {
		t.Error("progress not on stderr only")
	}
	if viaKafka != strings.Contains(stderr.String(), "reading the graph ktrace stream published") {
		t.Errorf("spans via Kafka %v, yet stderr says:\n%s", viaKafka, stderr.String())
	}
	if _, err := stack.Load(o.StateDir); !errors.Is(err, stack.ErrNotRunning) {
		t.Errorf("demo left the stack running: %v", err)
	}
}

// --foreground stays attached and stops the stack on Ctrl-C.
func TestStackForeground(t *testing.T) {
	o := stackOptions(t, "")
	var cmd *exec.Cmd
	var stdout, stderr *testenv.Buffer
	var exited chan error
	var st *stack.State
	// Ports picked free may be taken meanwhile on a busy machine: then
	// the stack starts again on others (as upStack does).
	for attempt := 1; st == nil; attempt++ {
		cmd = exec.Command(ktraceBin, "stack", "up", "--foreground", "--state-dir", o.StateDir, "--kafka-port", fmt.Sprint(o.KafkaPort),
			"--jaeger-grpc-port", fmt.Sprint(o.JaegerGRPCPort), "--jaeger-ui-port", fmt.Sprint(o.JaegerUIPort),
			"--otlp-port", fmt.Sprint(o.OTLPPort), "--api-port", fmt.Sprint(o.APIPort))
		stdout, stderr = &testenv.Buffer{}, &testenv.Buffer{}
		cmd.Stdout, cmd.Stderr = stdout, stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited = make(chan error, 1)
		go func(cmd *exec.Cmd, exited chan error) { exited <- cmd.Wait() }(cmd, exited)
		early := false
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && !early; time.Sleep(200 * time.Millisecond) {
			select {
			case err := <-exited:
				exited <- err
				early = true
				continue
			default:
			}
			if !strings.Contains(stdout.String(), "Jaeger UI") {
				continue // up has not finished
			}
			if s, list, err := stack.Status(o.StateDir); err == nil && len(list) == 7 && list[6].Status == "healthy" {
				st = s
				break
			}
		}
		if st != nil {
			break
		}
		if early && attempt < 3 && strings.Contains(stderr.String(), "already in use") {
			t.Logf("a port was taken meanwhile; picking others")
			o.StateDir = t.TempDir()
			o.KafkaPort, o.JaegerGRPCPort, o.JaegerUIPort, o.OTLPPort, o.APIPort = freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
			continue
		}
		cmd.Process.Kill()
		// The components run in sessions of their own: stop them too.
		stack.Down(o.StateDir, nil)
		t.Fatalf("stack did not come up in the foreground:\n%s", stderr.String())
	}
	cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("foreground stack exited with %v", err)
		}
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatal("foreground stack did not stop on interrupt")
	}
	for _, c := range st.Components {
		if c.Alive() {
			t.Errorf("%s still running after Ctrl-C", c.Name)
			syscall.Kill(c.Pid, syscall.SIGKILL)
		}
	}
	if !strings.Contains(stdout.String(), "Jaeger UI") {
		t.Errorf("endpoints not printed:\n%s", stdout.String())
	}
}

// checkExit runs ktrace check with the example spec against a live Jaeger.
func checkExit(t *testing.T, jaegerAddr string, want int) {
	t.Helper()
	cmd := exec.Command(ktraceBin, "check", "--spec", "../../examples/stargazers-check.yaml", "--jaeger", jaegerAddr,
		"--poll", "300ms", "--stable-polls", "2", "--wait", "60s")
	out, err := cmd.Output()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != want {
		t.Errorf("ktrace check exited %d, want %d:\n%s", code, want, out)
	}
	if !strings.Contains(string(out), "flow flatten: PASS") {
		t.Errorf("the flatten flow should pass:\n%s", out)
	}
}

// With two replicas of the join in one consumer group, the answer is still
// exact and ktrace spof no longer flags the join as a single instance.
func TestStackReplicasAndSPOF(t *testing.T) {
	o := stackOptions(t, services.PropagationLost)
	o.Replicas = map[string]int{stack.Join: 2}
	st := upStack(t, &o)
	if st.Component(stack.Join+"-2") == nil {
		t.Fatal("no second join replica")
	}
	if _, err := stack.Traffic(context.Background(), o.StateDir, 0, 0); err != nil {
		t.Fatal(err)
	}
	waitAnswer(t, st.Endpoints.API)
	stableTraces(t, st.Endpoints.JaegerQuery)
	out, err := exec.Command(ktraceBin, "spof", "--jaeger", st.Endpoints.JaegerQuery, "-o", "json").Output()
	if err != nil {
		t.Fatalf("spof: %v", err)
	}
	var doc render.SPOFJSON
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	single := map[string]bool{}
	for _, f := range doc.Findings {
		if f.Kind == "single-instance" {
			single[f.Node] = true
		}
	}
	if single["service:stargazers-join"] || !single["service:stargazers-flatten"] || !single["service:github-source"] {
		t.Errorf("single-instance findings %v: want flatten and source flagged, the replicated join not", single)
	}
	// Both replicas did work: each consumed some of the records.
	for _, name := range []string{stack.Join, stack.Join + "-2"} {
		resp, err := http.Get(st.Component(name).Health)
		if err != nil {
			t.Fatal(err)
		}
		var h services.Health
		json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if h.Processed == 0 {
			t.Errorf("%s processed nothing", name)
		}
	}
}

// health reads a component's /healthz.
func health(t *testing.T, c *stack.Component) (int, services.Health) {
	t.Helper()
	var h services.Health
	resp, err := http.Get(c.Health)
	if err != nil {
		return 0, h
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&h)
	return resp.StatusCode, h
}

// Readiness tells the truth: after kill -9 and restart of the join three
// times within seconds, restart returns only once the join holds
// partitions again; with Kafka dead, services say they are not ready and
// stack status says why.
func TestStackReadiness(t *testing.T) {
	o := stackOptions(t, services.PropagationLost)
	st := upStack(t, &o)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := 0; i < 3; i++ {
		if err := stack.Restart(ctx, o.StateDir, stack.Join, true, 90*time.Second); err != nil {
			t.Fatalf("restart %d: %v", i+1, err)
		}
	}
	st2, _ := stack.Load(o.StateDir)
	code, h := health(t, st2.Component(stack.Join))
	if code != http.StatusOK || h.Status != "ok" || h.Partitions == nil || *h.Partitions == 0 {
		t.Errorf("after restarts: HTTP %d %+v, want ok holding partitions", code, h)
	}

	// The broker dies: every service says so within seconds.
	if err := syscall.Kill(st.Component(stack.Broker).Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, list, err := stack.Status(o.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		down := 0
		for _, s := range list {
			if s.Name == stack.Flatten || s.Name == stack.API || s.Name == stack.Source {
				if s.Status == "unhealthy" && strings.Contains(s.Reason, "Kafka unreachable") {
					down++
				}
			}
		}
		if down == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the broker died: %+v", list)
		}
		time.Sleep(500 * time.Millisecond)
	}
	out, _ := exec.Command(ktraceBin, "stack", "status", "--state-dir", o.StateDir).Output()
	if !strings.Contains(string(out), "unhealthy (Kafka unreachable") {
		t.Errorf("stack status does not say why:\n%s", out)
	}
}

// runOut runs ktrace and returns its stdout and exit code.
func runOut(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(ktraceBin, args...).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// TestStackSampled: every service samples 30% of its traces (stack up
// --sample 0.3, parent-based as SDKs sample). With the linked join nothing
// is a violation — report --broken finds no break, check (spec-less and
// with the stack's spec) passes or is inconclusive — the hops whose other
// end was sampled out are counted apart, and the join has no origin edge.
// With the default join the break inside the join is still named, and its
// outputs paired with no input are unverified, not origins. The linked join
// again with Jaeger's tail_sampling processor keeping 30% of whole traces
// (stack up --tail-sample 0.3).
func TestStackSampled(t *testing.T) {
	for _, c := range []struct {
		propagation string
		tail        bool
	}{{services.PropagationLinks, false}, {services.PropagationLost, false}, {services.PropagationLinks, true}} {
		propagation := c.propagation
		name := propagation
		if c.tail {
			name += "-tail"
		}
		t.Run(name, func(t *testing.T) {
			o := stackOptions(t, propagation)
			if c.tail {
				o.TailSample = 0.3
			} else {
				o.Sample = 0.3
			}
			st := upStack(t, &o)
			if st.Sample != o.Sample || st.TailSample != o.TailSample {
				t.Fatalf("state says sample %v, tail %v", st.Sample, st.TailSample)
			}
			if _, err := stack.Traffic(context.Background(), o.StateDir, 0, 0); err != nil {
				t.Fatal(err)
			}
			waitAnswer(t, st.Endpoints.API) // sampling drops spans, never records
			traces := stableTraces(t, st.Endpoints.JaegerQuery)
			g := graph.Build(traces)
			joined := map[graph.Relation]int{}
			for _, e := range g.EdgesFrom("service:stargazers-join") {
				joined[e.Relation] += e.Count
			}
			if joined[graph.RelSpan] != 0 || len(joined) == 0 {
				t.Errorf("join's outputs by relation %v: want none drawn as an origin", joined)
			}
			q := st.Endpoints.JaegerQuery
			report, rc := runOut(t, "report", "--broken", "--jaeger", q, "--settle", "500ms", "-o", "json")
			var rep render.ReportJSON
			if err := json.Unmarshal([]byte(report), &rep); err != nil {
				t.Fatalf("report: exit %d, %v: %s", rc, err, report)
			}
			spec, sc := runOut(t, "check", "--spec", "../../examples/stargazers-check.yaml", "--jaeger", q, "-o", "json",
				"--poll", "300ms", "--stable-polls", "2", "--wait", "60s")
			all, ac := runOut(t, "check", "--jaeger", q, "-o", "json", "--poll", "300ms", "--stable-polls", "2", "--wait", "60s")
			var specDoc, allDoc render.CheckJSON
			if json.Unmarshal([]byte(spec), &specDoc) != nil || json.Unmarshal([]byte(all), &allDoc) != nil {
				t.Fatalf("check output:\n%s\n%s", spec, all)
			}
			if propagation == services.PropagationLinks {
				if rc != 0 || len(rep.Findings) != 0 {
					t.Errorf("links: report --broken exit %d, findings %+v", rc, rep.Findings)
				}
				if sc == 1 || ac == 1 || specDoc.Verdict == "fail" || allDoc.Verdict == "fail" {
					t.Errorf("links: check %d (%s), spec-less %d (%s)\n%s\n%s", sc, specDoc.Verdict, ac, allDoc.Verdict, spec, all)
				}
				// The join's outputs triggered by the other topic link to
				// the buffered record; where that record's trace was not
				// kept, the hop cannot be told, and must be counted so.
				// (Most outputs are triggered from the flow's own topic:
				// a run may keep none of the others.)
				present := map[trace.TraceID]bool{}
				for i := range traces {
					present[traces[i].ID] = true
				}
				linkedOut := 0 // outputs not under a jackdaw consume span that link out of the data
				for i := range traces {
					byID := map[trace.SpanID]*trace.Span{}
					for j := range traces[i].Spans {
						byID[traces[i].Spans[j].SpanID] = &traces[i].Spans[j]
					}
					for j := range traces[i].Spans {
						sp := &traces[i].Spans[j]
						if sp.Service() != "stargazers-join" || sp.Kind != trace.KindProducer {
							continue
						}
						fromJackdaw := false
						for cur := sp; cur != nil; {
							if m, ok := cur.Messaging(); ok && m.IsConsumer() && m.Destination == stargazers.TopicJackdaw {
								fromJackdaw = true
							}
							pid, _ := cur.Parent()
							cur = byID[pid]
						}
						for _, r := range sp.Refs {
							if r.Type == trace.RefLink && !present[r.TraceID] && !fromJackdaw {
								linkedOut++
							}
						}
					}
				}
				unverifiable := 0
				for _, f := range specDoc.Flows {
					for _, h := range f.Hops {
						unverifiable += h.Unverifiable
					}
				}
				t.Logf("links: %d outputs from the other topic link out of the data; check counts %d unverifiable", linkedOut, unverifiable)
				if unverifiable != linkedOut {
					t.Errorf("links: %d outputs from the other topic link out of the data, yet check counts %d unverifiable:\n%s", linkedOut, unverifiable, spec)
				}
				return
			}
			// Each output of the join is a root produce span: a
			// pass-through when the join handled a record of the other
			// topic with its key no later (stitched), else unverified —
			// which of them a run holds depends on what was sampled.
			var stitched, unverified int
			for i := range traces {
				for j := range traces[i].Spans {
					sp := &traces[i].Spans[j]
					m, ok := sp.Messaging()
					if _, hasParent := sp.Parent(); sp.Service() != "stargazers-join" || !ok || !m.IsProducer() || hasParent || sp.HasLink() {
						continue
					}
					if joinHandled(traces, m, sp.Start) {
						stitched++
					} else {
						unverified++
					}
				}
			}
			t.Logf("lost: the join's outputs: %d with an input of the same key, %d without", stitched, unverified)
			if stitched+unverified == 0 || joined[graph.RelUnverified] != unverified || joined[graph.RelStitched] != stitched {
				t.Errorf("lost: the join's outputs by relation %v: want %d stitched, %d unverified", joined, stitched, unverified)
			}
			named := false
			for _, f := range rep.Findings {
				named = named || (f.Rule == "lost-inside" && f.Service == "stargazers-join")
			}
			if !named || rc != 0 {
				t.Errorf("lost: report --broken (exit %d) does not name the join: %+v", rc, rep.Findings)
			}
			if ac != 1 || !strings.Contains(all, `"from": "stargazers-join"`) {
				t.Errorf("lost: spec-less check exit %d:\n%s", ac, all)
			}
			if h := specDoc.Flows[0].Hops[2]; h.From != "stargazers-join" || h.Continuous != 0 || h.Verdict == "pass" {
				t.Errorf("lost: check's join hop %+v", h)
			}
		})
	}
}

// joinHandled says whether stargazers-join consumed a record of a topic
// other than out's with out's key, starting no later than start.
func joinHandled(traces []trace.Trace, out trace.Messaging, start time.Time) bool {
	for i := range traces {
		for j := range traces[i].Spans {
			sp := &traces[i].Spans[j]
			m, ok := sp.Messaging()
			if ok && out.Key != "" && sp.Service() == "stargazers-join" && m.IsConsumer() && m.Key == out.Key &&
				m.Destination != out.Destination && !sp.Start.After(start) {
				return true
			}
		}
	}
	return false
}
