package jaeger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	gogoproto "github.com/gogo/protobuf/proto"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ktrace-dev/ktrace/internal/tlsconf"
	"github.com/ktrace-dev/ktrace/trace"
)

// gogoCodec marshals the gogo-generated api_v2 types. Its name is "proto"
// so the server sees the ordinary content type.
type gogoCodec struct{}

func (gogoCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(gogoproto.Message)
	if !ok {
		return nil, fmt.Errorf("gogo codec: %T is not a gogo message", v)
	}
	return gogoproto.Marshal(m)
}

func (gogoCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(gogoproto.Message)
	if !ok {
		return fmt.Errorf("gogo codec: %T is not a gogo message", v)
	}
	return gogoproto.Unmarshal(data, m)
}

func (gogoCodec) Name() string { return "proto" }

// BackendError is a failure to talk to Jaeger. Its message is one line that
// names the address and the cause; it never contains the token.
type BackendError struct {
	Addr  string
	Cause string
	Err   error
}

func (e *BackendError) Error() string { return "jaeger at " + e.Addr + ": " + e.Cause }
func (e *BackendError) Unwrap() error { return e.Err }

// Config says how to reach Jaeger.
type Config struct {
	// Addr is host:port of the query gRPC API (Jaeger's default port is 16685).
	Addr string
	// Timeout bounds each call. Zero means 30s.
	Timeout time.Duration
	// MaxRecvBytes is the gRPC receive limit. Zero means 64 MiB.
	MaxRecvBytes int
	// TLS enables TLS; CAFile, CertFile and KeyFile are optional PEM files.
	TLS                       bool
	CAFile, CertFile, KeyFile string
	// ServerName overrides the TLS server name.
	ServerName string
	// Token is sent as "authorization: Bearer <token>". It is never logged.
	Token string
}

// Client is a Jaeger query client. It is safe for concurrent use.
type Client struct {
	cfg  Config
	conn *grpc.ClientConn
	api  api_v2.QueryServiceClient
}

// bearer sends the token on every call. It does not insist on TLS: a
// token over plaintext to a loopback or sidecar proxy is the user's call.
type bearer struct {
	token string
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return false }

// Dial prepares a client. gRPC connects lazily: an unreachable address is
// reported by the first call, as a *BackendError.
func Dial(cfg Config) (*Client, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MaxRecvBytes <= 0 {
		cfg.MaxRecvBytes = 64 << 20
	}
	opts := []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.ForceCodec(gogoCodec{}), grpc.MaxCallRecvMsgSize(cfg.MaxRecvBytes)),
		// A server that accepts the connection and never answers is given
		// --timeout, as every call is, not gRPC's own 20 s handshake limit.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.DefaultConfig, MinConnectTimeout: cfg.Timeout}),
	}
	if cfg.TLS {
		tc, err := tlsconf.Load("jaeger", cfg.CAFile, cfg.CertFile, cfg.KeyFile, cfg.ServerName)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if cfg.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: cfg.Token}))
	}
	conn, err := grpc.NewClient(cfg.Addr, opts...)
	if err != nil {
		return nil, &BackendError{Addr: cfg.Addr, Cause: "invalid address: " + oneLine(err.Error()), Err: err}
	}
	return &Client{cfg: cfg, conn: conn, api: api_v2.NewQueryServiceClient(conn)}, nil
}

// Close releases the connection.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil // made in process, by a test
	}
	return c.conn.Close()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// wrap turns a gRPC failure into a *BackendError with a readable cause.
func (c *Client) wrap(err error) error {
	if err == nil {
		return nil
	}
	var be *BackendError
	if errors.As(err, &be) {
		return err
	}
	st, _ := status.FromError(err)
	msg := oneLine(st.Message())
	if c.cfg.Token != "" {
		msg = strings.ReplaceAll(msg, c.cfg.Token, "<redacted>")
	}
	cause := msg
	switch st.Code() {
	case codes.Unavailable:
		if strings.Contains(msg, "handshake") {
			cause = fmt.Sprintf("no answer within %s (--timeout): the server accepted the connection but never answered", c.cfg.Timeout)
			break
		}
		// gRPC wraps the dial error in layers; the last one says it best
		// ("connection refused", "no such host").
		if i := strings.LastIndex(msg, ": "); i >= 0 && strings.Contains(msg, "dial") {
			msg = strings.TrimSuffix(msg[i+2:], `"`)
		}
		cause = "unreachable: " + msg
	case codes.DeadlineExceeded:
		cause = fmt.Sprintf("no answer within %s (--timeout)", c.cfg.Timeout)
	case codes.Unauthenticated:
		cause = "unauthorised: " + msg
	case codes.PermissionDenied:
		cause = "permission denied: " + msg
	case codes.ResourceExhausted:
		cause = "response too large (raise --jaeger-max-recv): " + msg
	case codes.Canceled:
		cause = "cancelled"
	}
	return &BackendError{Addr: c.cfg.Addr, Cause: cause, Err: err}
}

func (c *Client) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, c.cfg.Timeout)
}

// Services returns the service names Jaeger knows, sorted.
func (c *Client) Services(ctx context.Context) ([]string, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.api.GetServices(ctx, &api_v2.GetServicesRequest{})
	if err != nil {
		return nil, c.wrap(err)
	}
	s := append([]string(nil), r.Services...)
	sort.Strings(s)
	return s, nil
}

// Operation is one operation of a service.
type Operation struct {
	Name, SpanKind string
}

// Operations returns the operations Jaeger knows for a service, sorted by name.
func (c *Client) Operations(ctx context.Context, service string) ([]Operation, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.api.GetOperations(ctx, &api_v2.GetOperationsRequest{Service: service})
	if err != nil {
		return nil, c.wrap(err)
	}
	var out []Operation
	for _, o := range r.Operations {
		out = append(out, Operation{Name: o.Name, SpanKind: o.SpanKind})
	}
	if len(out) == 0 {
		for _, n := range r.OperationNames {
			out = append(out, Operation{Name: n})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Trace fetches one trace by ID. A trace Jaeger does not have is an error.
func (c *Client) Trace(ctx context.Context, id trace.TraceID) (trace.Trace, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	stream, err := c.api.GetTrace(ctx, &api_v2.GetTraceRequest{TraceID: toModelID(id)})
	if err != nil {
		return trace.Trace{}, c.wrap(err)
	}
	got := map[trace.TraceID][]trace.Span{}
	if err := c.drain(stream, &decoder{}, got, nil); err != nil {
		return trace.Trace{}, err
	}
	return trace.Trace{ID: id, Spans: got[id]}, nil
}

type spanStream interface {
	Recv() (*api_v2.SpansResponseChunk, error)
}

// drain reads a span stream into got, grouping by trace ID, and tells
// note (when not nil) each span's trace and start as it goes.
func (c *Client) drain(stream spanStream, d *decoder, got map[trace.TraceID][]trace.Span, note func(trace.TraceID, time.Time)) error {
	for {
		chunk, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return c.wrap(err)
		}
		for i := range chunk.Spans {
			s := d.convert(&chunk.Spans[i])
			got[s.TraceID] = append(got[s.TraceID], s)
			if note != nil {
				note(s.TraceID, s.Start)
			}
		}
	}
}

var _ spanStream = (api_v2.QueryService_FindTracesClient)(nil)

// Dependency is one link of Jaeger's own dependency computation.
type Dependency struct {
	Parent, Child string
	CallCount     uint64
}

// Dependencies calls Jaeger's GetDependencies: parent → child service pairs
// counted from parent spans only (no topics, no span links; same-service
// pairs included).
func (c *Client) Dependencies(ctx context.Context, start, end time.Time) ([]Dependency, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.api.GetDependencies(ctx, &api_v2.GetDependenciesRequest{StartTime: start, EndTime: end})
	if err != nil {
		return nil, c.wrap(err)
	}
	out := make([]Dependency, len(r.Dependencies))
	for i, d := range r.Dependencies {
		out[i] = Dependency{Parent: d.Parent, Child: d.Child, CallCount: d.CallCount}
	}
	return out, nil
}
