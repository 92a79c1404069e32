package jaeger

import (
	"context"
	"errors"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	model "github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ktrace-dev/ktrace/trace"
)

// store is a query server over an in-memory span list that, like Jaeger,
// returns at most SearchDepth traces per FindTraces call, silently.
type store struct {
	api_v2.UnimplementedQueryServiceServer
	spans []model.Span
	token string
	delay time.Duration
	// empty says what an empty service name does: "" matches no service
	// (a backend that takes it as a name), "any" every service (Jaeger's
	// memory and Badger stores), "refuse" is an error.
	empty string
	// newest returns the newest traces first, as Jaeger's memory store
	// does; otherwise the oldest come first.
	newest bool

	mu    sync.Mutex
	calls int
}

func (s *store) auth(ctx context.Context) error {
	if s.token == "" {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer "+s.token {
		return status.Error(codes.Unauthenticated, "missing or bad token")
	}
	return nil
}

func (s *store) GetServices(ctx context.Context, _ *api_v2.GetServicesRequest) (*api_v2.GetServicesResponse, error) {
	if err := s.auth(ctx); err != nil {
		return nil, err
	}
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	seen := map[string]bool{}
	var out []string
	for _, sp := range s.spans {
		if !seen[sp.Process.ServiceName] {
			seen[sp.Process.ServiceName] = true
			out = append(out, sp.Process.ServiceName)
		}
	}
	return &api_v2.GetServicesResponse{Services: out}, nil
}

func (s *store) GetOperations(ctx context.Context, r *api_v2.GetOperationsRequest) (*api_v2.GetOperationsResponse, error) {
	ops := map[string]bool{}
	for _, sp := range s.spans {
		if sp.Process.ServiceName == r.Service {
			ops[sp.OperationName] = true
		}
	}
	out := &api_v2.GetOperationsResponse{}
	for o := range ops {
		out.Operations = append(out.Operations, &api_v2.Operation{Name: o, SpanKind: "server"})
	}
	return out, nil
}

func (s *store) FindTraces(r *api_v2.FindTracesRequest, srv api_v2.QueryService_FindTracesServer) error {
	if err := s.auth(srv.Context()); err != nil {
		return err
	}
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	q := r.Query
	if q.StartTimeMin.IsZero() || q.StartTimeMax.IsZero() || q.SearchDepth <= 0 {
		return status.Error(codes.InvalidArgument, "window and depth required")
	}
	if q.ServiceName == "" && s.empty == "refuse" {
		return status.Error(codes.InvalidArgument, "service name required")
	}
	// Traces with a span of the service starting in the window.
	match := map[model.TraceID]bool{}
	var order []model.TraceID
	for _, sp := range s.spans {
		if (sp.Process.ServiceName == q.ServiceName || q.ServiceName == "" && s.empty == "any") && !sp.StartTime.Before(q.StartTimeMin) && sp.StartTime.Before(q.StartTimeMax) && !match[sp.TraceID] {
			match[sp.TraceID] = true
			order = append(order, sp.TraceID)
		}
	}
	if s.newest {
		slices.Reverse(order)
	}
	if len(order) > int(q.SearchDepth) {
		order = order[:q.SearchDepth]
	}
	keep := map[model.TraceID]bool{}
	for _, id := range order {
		keep[id] = true
	}
	var chunk api_v2.SpansResponseChunk
	for _, sp := range s.spans {
		if keep[sp.TraceID] {
			chunk.Spans = append(chunk.Spans, sp)
		}
	}
	return srv.Send(&chunk)
}

func serve(t *testing.T, s *store) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.ForceServerCodec(gogoCodec{}))
	api_v2.RegisterQueryServiceServer(g, s)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return ln.Addr().String()
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// spans makes n traces; trace i has a span in service a at t0+i*step and,
// when both is set, a child in service b.
func spans(n int, step time.Duration, both bool) []model.Span {
	pa := &model.Process{ServiceName: "a"}
	pb := &model.Process{ServiceName: "b"}
	var out []model.Span
	for i := 0; i < n; i++ {
		id := model.TraceID{Low: uint64(i + 1)}
		start := t0.Add(time.Duration(i) * step)
		out = append(out, model.Span{TraceID: id, SpanID: 1, OperationName: "op-a", StartTime: start, Duration: time.Millisecond, Process: pa,
			Tags: []model.KeyValue{{Key: "span.kind", VStr: "client"}}})
		if both {
			out = append(out, model.Span{TraceID: id, SpanID: 2, OperationName: "op-b", StartTime: start, Duration: time.Millisecond, Process: pb,
				References: []model.SpanRef{{TraceID: id, SpanID: 1, RefType: model.SpanRefType_CHILD_OF}},
				Tags:       []model.KeyValue{{Key: "span.kind", VStr: "server"}, {Key: "error", VType: model.ValueType_BOOL, VBool: true}}})
		}
	}
	return out
}

func TestFindSplitsFullWindows(t *testing.T) {
	s := &store{spans: spans(1000, 10*time.Millisecond, false)}
	c, err := Dial(Config{Addr: serve(t, s)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var set trace.Set
	var progressed int
	st, err := c.Find(context.Background(), Query{Start: t0, End: t0.Add(time.Minute), PageSize: 100}, &set, func(Stats) { progressed++ })
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 1000 || st.Traces != 1000 || st.Truncated != 0 {
		t.Fatalf("got %d traces (stats %+v), want all 1000", set.Len(), st)
	}
	if st.Calls <= 10 || progressed == 0 {
		t.Errorf("calls %d, progress %d: the window was not split", st.Calls, progressed)
	}
}

// TestFindSplitsWhereTheTracesAre: 2000 traces in a 2-second stretch of a
// 2-hour window. Bisection would spend a dozen full calls halving empty
// hours; cutting at the returned traces' start times goes straight there.
// TestFindSplitsFullWindowsFew: 20000 traces at 1000 a call, in a window
// that fits them and in a two-hour one, from a store that returns the
// newest or the oldest traces of a full window first. Halving takes 61–63
// calls on each; cutting at the quartiles of the returned start times took
// 101–121, and adding half-page parts beside them 64–75.
func TestFindSplitsFullWindowsFew(t *testing.T) {
	for _, wide := range []bool{false, true} {
		for _, newest := range []bool{false, true} {
			s := &store{spans: spans(20000, time.Millisecond, false), newest: newest}
			c, err := Dial(Config{Addr: serve(t, s)})
			if err != nil {
				t.Fatal(err)
			}
			q := Query{Start: t0, End: t0.Add(21 * time.Second), PageSize: 1000}
			if wide {
				q.Start, q.End = t0.Add(-time.Hour), t0.Add(time.Hour)
			}
			var set trace.Set
			st, err := c.Find(context.Background(), q, &set, nil)
			if err != nil {
				t.Fatal(err)
			}
			if set.Len() != 20000 || st.Truncated != 0 {
				t.Fatalf("wide %v, newest first %v: got %d traces (stats %+v), want all 20000", wide, newest, set.Len(), st)
			}
			if st.Calls > 64 {
				t.Errorf("wide %v, newest first %v: %d calls", wide, newest, st.Calls)
			}
			// The bare drain walks the same windows.
			q.Discard = true
			dst, err := c.Find(context.Background(), q, &trace.Set{}, nil)
			if err != nil || dst.Calls != st.Calls || dst.Traces != 20000 {
				t.Errorf("drain: %+v, %v; want %d calls and 20000 traces", dst, err, st.Calls)
			}
			c.Close()
		}
	}
}

func TestFindWarnsWhenWindowCannotSplit(t *testing.T) {
	s := &store{spans: spans(300, 0, false)} // every trace starts at the same instant
	c, _ := Dial(Config{Addr: serve(t, s)})
	defer c.Close()
	var set trace.Set
	st, err := c.Find(context.Background(), Query{Start: t0, End: t0.Add(time.Second), PageSize: 100}, &set, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Truncated == 0 || set.Len() != 100 {
		t.Errorf("stats %+v, %d traces: want a truncation warning and the 100 Jaeger gave", st, set.Len())
	}
}

// TestFindAsksForEveryServiceAtOnce: where the backend takes an empty
// service name as "any", each trace comes back once, in one call; where it
// refuses it or finds nothing, Find asks service by service.
func TestFindAsksForEveryServiceAtOnce(t *testing.T) {
	for _, c := range []struct {
		empty      string
		calls      int
		perService bool
	}{{"any", 1, false}, {"refuse", 3, true}, {"", 3, true}} {
		s := &store{spans: spans(50, time.Millisecond, true), empty: c.empty}
		cl, _ := Dial(Config{Addr: serve(t, s)})
		var set trace.Set
		st, err := cl.Find(context.Background(), Query{Start: t0, End: t0.Add(time.Minute)}, &set, nil)
		cl.Close()
		if err != nil {
			t.Fatalf("empty=%q: %v", c.empty, err)
		}
		if set.Len() != 50 || set.SpanCount() != 100 || st.PerService != c.perService || s.calls != c.calls {
			t.Errorf("empty=%q: %d traces, %d spans, stats %+v, %d calls; want 50, 100, per service %v, %d calls",
				c.empty, set.Len(), set.SpanCount(), st, s.calls, c.perService, c.calls)
		}
	}
	// ByService asks each service (two here) even where the backend takes "any".
	s0 := &store{spans: spans(50, time.Millisecond, true), empty: "any"}
	cl0, _ := Dial(Config{Addr: serve(t, s0)})
	var set0 trace.Set
	st0, err := cl0.Find(context.Background(), Query{Start: t0, End: t0.Add(time.Minute), ByService: true}, &set0, nil)
	cl0.Close()
	if err != nil || set0.Len() != 50 || set0.SpanCount() != 100 || !st0.PerService || s0.calls != 2 {
		t.Errorf("by service: %d traces, %d spans, stats %+v, %d calls, %v; want 50, 100, per service, 2 calls (one per service, none for \"any\")",
			set0.Len(), set0.SpanCount(), st0, s0.calls, err)
	}
	// With an operation, a service is needed: no empty-name call.
	s := &store{spans: spans(5, time.Millisecond, true), empty: "any"}
	cl, _ := Dial(Config{Addr: serve(t, s)})
	defer cl.Close()
	if st, err := cl.Find(context.Background(), Query{Start: t0, End: t0.Add(time.Minute), Operation: "op-a"}, &trace.Set{}, nil); err != nil || !st.PerService {
		t.Errorf("with an operation: stats %+v, %v; want per service", st, err)
	}
}

func TestFindDeduplicatesAcrossServices(t *testing.T) {
	s := &store{spans: spans(50, time.Millisecond, true)}
	c, _ := Dial(Config{Addr: serve(t, s)})
	defer c.Close()
	var set trace.Set
	st, err := c.Find(context.Background(), Query{Start: t0, End: t0.Add(time.Minute)}, &set, nil)
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 50 || set.SpanCount() != 100 || st.Calls != 2 {
		t.Fatalf("%d traces, %d spans, %d calls", set.Len(), set.SpanCount(), st.Calls)
	}
	tr := set.Traces()[0]
	sort.Slice(tr.Spans, func(i, j int) bool { return tr.Spans[i].SpanID < tr.Spans[j].SpanID })
	b := tr.Spans[1]
	if b.Service() != "b" || b.Kind != trace.KindServer || !b.Error || len(b.Refs) != 1 || b.Refs[0].Type != trace.RefParent {
		t.Errorf("converted span %+v", b)
	}
	// The limit stops early and says so.
	var limited trace.Set
	st, err = c.Find(context.Background(), Query{Services: []string{"a"}, Start: t0, End: t0.Add(time.Minute), Limit: 10, PageSize: 5}, &limited, nil)
	if err != nil {
		t.Fatal(err)
	}
	if limited.Len() != 10 || !st.LimitReached {
		t.Errorf("limit: %d traces, stats %+v", limited.Len(), st)
	}
}

func TestServicesAndOperations(t *testing.T) {
	s := &store{spans: spans(3, time.Millisecond, true)}
	c, _ := Dial(Config{Addr: serve(t, s)})
	defer c.Close()
	svcs, err := c.Services(context.Background())
	if err != nil || strings.Join(svcs, ",") != "a,b" {
		t.Fatalf("services %v %v", svcs, err)
	}
	ops, err := c.Operations(context.Background(), "b")
	if err != nil || len(ops) != 1 || ops[0].Name != "op-b" {
		t.Fatalf("operations %v %v", ops, err)
	}
}

func backendErr(t *testing.T, err error) *BackendError {
	t.Helper()
	var be *BackendError
	if !errors.As(err, &be) {
		t.Fatalf("want *BackendError, got %T %v", err, err)
	}
	if strings.Contains(be.Error(), "\n") {
		t.Errorf("multi-line message %q", be.Error())
	}
	return be
}

func TestToken(t *testing.T) {
	s := &store{spans: spans(1, time.Millisecond, false), token: "s3cret-token"}
	addr := serve(t, s)
	good, _ := Dial(Config{Addr: addr, Token: "s3cret-token"})
	defer good.Close()
	if _, err := good.Services(context.Background()); err != nil {
		t.Fatalf("with the token: %v", err)
	}
	bad, _ := Dial(Config{Addr: addr, Token: "wrong-token"})
	defer bad.Close()
	_, err := bad.Services(context.Background())
	be := backendErr(t, err)
	if !strings.Contains(be.Error(), "unauthorised") || !strings.Contains(be.Error(), addr) || strings.Contains(be.Error(), "wrong-token") {
		t.Errorf("message %q", be.Error())
	}
}

func TestUnreachable(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	c, _ := Dial(Config{Addr: addr, Timeout: 5 * time.Second})
	defer c.Close()
	_, err := c.Services(context.Background())
	be := backendErr(t, err)
	if !strings.Contains(be.Error(), "jaeger at "+addr+": unreachable") {
		t.Errorf("message %q", be.Error())
	}
}

func TestSlowServerTimesOut(t *testing.T) {
	s := &store{delay: 5 * time.Second}
	c, _ := Dial(Config{Addr: serve(t, s), Timeout: 200 * time.Millisecond})
	defer c.Close()
	_, err := c.Services(context.Background())
	be := backendErr(t, err)
	if !strings.Contains(be.Error(), "no answer within 200ms") {
		t.Errorf("message %q", be.Error())
	}
}

func TestFindRejectsEmptyWindow(t *testing.T) {
	c, _ := Dial(Config{Addr: "127.0.0.1:1"})
	defer c.Close()
	if _, err := c.Find(context.Background(), Query{Start: t0, End: t0}, &trace.Set{}, nil); err == nil {
		t.Error("empty window accepted")
	}
}

func TestFindDiscard(t *testing.T) {
	s := &store{spans: spans(300, 10*time.Millisecond, true)}
	c, _ := Dial(Config{Addr: serve(t, s)})
	defer c.Close()
	var set trace.Set
	st, err := c.Find(context.Background(), Query{Services: []string{"a"}, Start: t0, End: t0.Add(time.Minute), PageSize: 100, Discard: true}, &set, nil)
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 0 || st.Traces != 300 || st.Spans != 600 || st.Calls < 3 {
		t.Errorf("discard: kept %d, stats %+v", set.Len(), st)
	}
}

func (s *store) GetDependencies(context.Context, *api_v2.GetDependenciesRequest) (*api_v2.GetDependenciesResponse, error) {
	return &api_v2.GetDependenciesResponse{Dependencies: []model.DependencyLink{{Parent: "a", Child: "b", CallCount: 3}}}, nil
}

func TestDependencies(t *testing.T) {
	c, _ := Dial(Config{Addr: serve(t, &store{})})
	defer c.Close()
	deps, err := c.Dependencies(context.Background(), t0, t0.Add(time.Hour))
	if err != nil || len(deps) != 1 || deps[0] != (Dependency{Parent: "a", Child: "b", CallCount: 3}) {
		t.Errorf("%+v %v", deps, err)
	}
}

// TestFindEachHandsOnEachTraceOnce: service by service, every trace comes
// back twice (it touches both services); FindEach hands it on once, whole.
func TestFindEachHandsOnEachTraceOnce(t *testing.T) {
	s := &store{spans: spans(40, time.Millisecond, true)}
	c, _ := Dial(Config{Addr: serve(t, s)})
	defer c.Close()
	got := map[trace.TraceID]int{}
	st, err := c.FindEach(context.Background(), Query{Start: t0, End: t0.Add(time.Minute)}, func(tr *trace.Trace) error {
		got[tr.ID]++
		if len(tr.Spans) != 2 {
			t.Errorf("trace %s: %d spans, want 2", tr.ID, len(tr.Spans))
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 40 || st.Traces != 40 || st.Spans != 80 || !st.PerService {
		t.Fatalf("%d traces handed on, stats %+v", len(got), st)
	}
	for id, n := range got {
		if n != 1 {
			t.Errorf("trace %s handed on %d times", id, n)
		}
	}
	// An error from the callback stops the search and is returned.
	boom := errors.New("boom")
	if _, err := c.FindEach(context.Background(), Query{Start: t0, End: t0.Add(time.Minute)}, func(*trace.Trace) error { return boom }, nil); !errors.Is(err, boom) {
		t.Errorf("callback error: got %v", err)
	}
}

// TestFindSharesNames: spans read over many calls share their names (one
// string table per call in flight, kept from call to call), as the file
// readers share them; gRPC decodes a new copy for every span.
func TestFindSharesNames(t *testing.T) {
	s := &store{spans: spans(200, time.Millisecond, true)}
	c, _ := Dial(Config{Addr: serve(t, s)})
	defer c.Close()
	var set trace.Set
	q := Query{Start: t0, End: t0.Add(time.Minute), PageSize: 20, Concurrency: 2}
	st, err := c.Find(context.Background(), q, &set, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Calls < 10 || set.SpanCount() != 400 {
		t.Fatalf("%d calls, %d spans: want many calls and all 400 spans", st.Calls, set.SpanCount())
	}
	addrs := map[*byte]bool{}
	for _, tr := range set.Traces() {
		for _, sp := range tr.Spans {
			if sp.Operation == "op-a" {
				addrs[unsafe.StringData(sp.Operation)] = true
			}
		}
	}
	if len(addrs) > q.Concurrency {
		t.Errorf("200 spans named op-a hold %d copies of the name, want at most %d (one per call in flight)", len(addrs), q.Concurrency)
	}
}
