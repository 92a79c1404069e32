package jaeger

import (
	"context"
	"errors"
	"math/rand/v2"
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
	// shuffle returns the matching traces in an order of its own (a
	// seeded shuffle), neither newest nor oldest first.
	shuffle bool

	mu    sync.Mutex
	calls int
	sent  int // traces sent, over all calls
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
	if s.shuffle {
		rng := rand.New(rand.NewPCG(uint64(len(order)), 1))
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	if len(order) > int(q.SearchDepth) {
		order = order[:q.SearchDepth]
	}
	s.mu.Lock()
	s.sent += len(order)
	s.mu.Unlock()
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

// TestFindReadsEachTraceFewTimes: a full window is read again in parts,
// so a search reads some traces more than once; what it costs is the
// traces read (a call that reads nothing is cheap). Traces spread evenly
// over a window that fits them, over a two-hour window, in a 2-second
// stretch of a two-hour window, and 72,000 of them in two hours, from
// stores that return the oldest, the newest or any traces of a full window
// first. Halving every full window read 2.26–2.55 times the set, and 7.5
// times for the 2-second stretch (a full call per halving step on the way
// down to it). Cutting out the stretch the returned traces sit in, halved,
// reads 2.0 times from stores that keep an order, 2.5–2.8 from the
// shuffling one. The store is asked in process (newLocal): no gRPC.
func TestFindReadsEachTraceFewTimes(t *testing.T) {
	for _, sc := range []struct {
		name       string
		n          int
		start, end time.Time
	}{
		{"window that fits", 20000, t0, t0.Add(21 * time.Second)},
		{"two hours", 20000, t0.Add(-time.Hour), t0.Add(time.Hour)},
		{"2 s in two hours", 2000, t0.Add(-time.Hour), t0.Add(time.Hour)},
		{"72k in two hours", 72000, t0.Add(-time.Hour), t0.Add(time.Hour)},
	} {
		for _, order := range []string{"oldest", "newest", "shuffled"} {
			s := &store{spans: spans(sc.n, time.Millisecond, false), newest: order == "newest", shuffle: order == "shuffled"}
			c := newLocal(s)
			q := Query{Start: sc.start, End: sc.end, PageSize: 1000}
			var set trace.Set
			st, err := c.Find(context.Background(), q, &set, nil)
			if err != nil {
				t.Fatal(err)
			}
			if set.Len() != sc.n || st.Truncated != 0 {
				t.Fatalf("%s, %s first: got %d traces (stats %+v), want all %d", sc.name, order, set.Len(), st, sc.n)
			}
			most := 2.0
			if order == "shuffled" {
				most = 2.8
			}
			if reads := float64(s.sent) / float64(sc.n); reads > most {
				t.Errorf("%s, %s first: read %.2f times the set in %d calls, want at most %.1f", sc.name, order, reads, st.Calls, most)
			}
			// The bare drain walks the same windows.
			q.Discard = true
			dst, err := c.Find(context.Background(), q, &trace.Set{}, nil)
			if err != nil || dst.Calls != st.Calls || dst.Traces != sc.n {
				t.Errorf("%s, %s first: drain %+v, %v; want %d calls and %d traces", sc.name, order, dst, err, st.Calls, sc.n)
			}
		}
	}
}

// TestSplit: a full window is halved unless the traces it returned sit in
// under a quarter of it; then that stretch, halved, is cut out. No part is
// empty, the parts cover the window, and a window at the narrowest width
// is not cut.
func TestSplit(t *testing.T) {
	w := window{"svc", t0, t0.Add(time.Hour)}
	at := func(a, b time.Duration) [2]time.Time { return [2]time.Time{t0.Add(a), t0.Add(b)} }
	for _, c := range []struct {
		name string
		at   [2]time.Time
		want []time.Duration // cut points after the window's start
	}{
		{"spread", at(time.Minute, 50*time.Minute), []time.Duration{30 * time.Minute}},
		{"nothing seen", [2]time.Time{}, []time.Duration{30 * time.Minute}},
		{"stretch inside", at(10*time.Minute, 12*time.Minute-1), []time.Duration{10 * time.Minute, 11 * time.Minute, 12 * time.Minute}},
		{"stretch at the start", at(0, 2*time.Minute-1), []time.Duration{time.Minute, 2 * time.Minute}},
		{"stretch at the end", at(58*time.Minute, time.Hour-1), []time.Duration{58 * time.Minute, 59 * time.Minute}},
		{"one instant", at(5*time.Minute, 5*time.Minute), []time.Duration{5 * time.Minute, 5*time.Minute + 1}},
	} {
		parts := split(w, c.at, time.Millisecond)
		var cuts []time.Duration
		for i, p := range parts {
			if p.service != "svc" || !p.end.After(p.start) {
				t.Fatalf("%s: part %d %+v is empty or lost the service", c.name, i, p)
			}
			if i == 0 && !p.start.Equal(w.start) || i == len(parts)-1 && !p.end.Equal(w.end) || i > 0 && !p.start.Equal(parts[i-1].end) {
				t.Fatalf("%s: parts %+v do not cover the window", c.name, parts)
			}
			if i > 0 {
				cuts = append(cuts, p.start.Sub(t0))
			}
		}
		if !slices.Equal(cuts, c.want) {
			t.Errorf("%s: cut at %v, want %v", c.name, cuts, c.want)
		}
	}
	if parts := split(window{"", t0, t0.Add(time.Millisecond)}, at(0, 0), time.Millisecond); parts != nil {
		t.Errorf("a window at the narrowest width was cut: %+v", parts)
	}
}

func TestFindWarnsWhenWindowCannotSplit(t *testing.T) {
	s := &store{spans: spans(300, 0, false)} // every trace starts at the same instant
	c := newLocal(s)
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
		cl := newLocal(s)
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
	cl0 := newLocal(s0)
	var set0 trace.Set
	st0, err := cl0.Find(context.Background(), Query{Start: t0, End: t0.Add(time.Minute), ByService: true}, &set0, nil)
	cl0.Close()
	if err != nil || set0.Len() != 50 || set0.SpanCount() != 100 || !st0.PerService || s0.calls != 2 {
		t.Errorf("by service: %d traces, %d spans, stats %+v, %d calls, %v; want 50, 100, per service, 2 calls (one per service, none for \"any\")",
			set0.Len(), set0.SpanCount(), st0, s0.calls, err)
	}
	// With an operation, a service is needed: no empty-name call.
	s := &store{spans: spans(5, time.Millisecond, true), empty: "any"}
	cl := newLocal(s)
	defer cl.Close()
	if st, err := cl.Find(context.Background(), Query{Start: t0, End: t0.Add(time.Minute), Operation: "op-a"}, &trace.Set{}, nil); err != nil || !st.PerService {
		t.Errorf("with an operation: stats %+v, %v; want per service", st, err)
	}
}

func TestFindDeduplicatesAcrossServices(t *testing.T) {
	s := &store{spans: spans(50, time.Millisecond, true)}
	c := newLocal(s)
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

// A server that accepts the connection and never says a word is reported
// with --timeout's message, whether the call's deadline or the connection
// handshake runs out first.
func TestSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, silent, until the test ends
		}
	}()
	c, _ := Dial(Config{Addr: ln.Addr().String(), Timeout: 300 * time.Millisecond})
	defer c.Close()
	_, err = c.Services(context.Background())
	if be := backendErr(t, err); !strings.Contains(be.Error(), "no answer within 300ms (--timeout)") {
		t.Errorf("message %q", be.Error())
	}
	// The handshake's own failure, as gRPC words it, gets the same message.
	err = c.wrap(status.Error(codes.Unavailable, "connection error: desc = \"transport: authentication handshake failed: context deadline exceeded\""))
	if be := backendErr(t, err); !strings.Contains(be.Error(), "no answer within 300ms (--timeout): the server accepted the connection but never answered") {
		t.Errorf("message %q", be.Error())
	}
}
