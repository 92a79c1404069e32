package jaeger

import (
	"context"
	"io"
	"time"

	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"google.golang.org/grpc"
)

// local is a query client that calls a store's FindTraces in process: no
// gRPC, no socket. The search's own logic (windows cut, pages read again,
// traces merged or handed on) is tested through it; what gRPC adds
// (codecs, TLS, tokens, deadlines) is tested through serve.
type local struct {
	api_v2.QueryServiceClient // the other calls: not used by these tests
	s                         *store
}

// newLocal returns a client of s that makes no connection.
func newLocal(s *store) *Client {
	return &Client{cfg: Config{Addr: "in-process", Timeout: time.Minute}, api: local{s: s}}
}

func (l local) FindTraces(ctx context.Context, r *api_v2.FindTracesRequest, _ ...grpc.CallOption) (api_v2.QueryService_FindTracesClient, error) {
	srv := &localServer{ctx: ctx}
	err := l.s.FindTraces(r, srv)
	return &localClient{chunks: srv.chunks, err: err}, nil
}

// localServer collects what FindTraces sends.
type localServer struct {
	grpc.ServerStream
	ctx    context.Context
	chunks []*api_v2.SpansResponseChunk
}

func (s *localServer) Context() context.Context { return s.ctx }

func (s *localServer) Send(c *api_v2.SpansResponseChunk) error {
	s.chunks = append(s.chunks, c)
	return nil
}

// localClient gives the chunks back, then the server's error or io.EOF,
// as a gRPC stream does.
type localClient struct {
	grpc.ClientStream
	chunks []*api_v2.SpansResponseChunk
	err    error
}

func (c *localClient) Recv() (*api_v2.SpansResponseChunk, error) {
	if len(c.chunks) > 0 {
		ch := c.chunks[0]
		c.chunks = c.chunks[1:]
		return ch, nil
	}
	if c.err != nil {
		return nil, c.err
	}
	return nil, io.EOF
}

func (l local) GetServices(ctx context.Context, r *api_v2.GetServicesRequest, _ ...grpc.CallOption) (*api_v2.GetServicesResponse, error) {
	return l.s.GetServices(ctx, r)
}

func (l local) GetOperations(ctx context.Context, r *api_v2.GetOperationsRequest, _ ...grpc.CallOption) (*api_v2.GetOperationsResponse, error) {
	return l.s.GetOperations(ctx, r)
}
