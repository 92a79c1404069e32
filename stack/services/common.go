package services

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/ktrace-dev/ktrace/stream"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Config is what every service needs.
type Config struct {
	// Kafka is the cluster: its seed brokers, and the TLS and SASL a
	// cluster that takes them needs (none for the embedded broker).
	Kafka stream.Kafka
	// OTLP is the OTLP gRPC endpoint (host:port); empty disables export.
	OTLP string
	// Health is the listen address of /healthz (and the service's own API).
	Health string
	// Instance is the service.instance.id; empty means "<service>-<pid>".
	Instance string
	// Log receives the service's log lines; nil means stderr.
	Log io.Writer
	// Sample, between 0 and 1, makes the service sample its traces as an
	// SDK's parent-based ratio sampler does: a span with a parent follows
	// the parent's decision, a root keeps this share of traces (by trace
	// ID). Zero keeps every trace.
	Sample float64
}

func (c *Config) logger(service string) *log.Logger {
	w := c.Log
	if w == nil {
		w = os.Stderr
	}
	return log.New(w, service+" ", log.LstdFlags|log.Lmsgprefix)
}

// W3C is the propagator every service uses for record and HTTP headers.
var W3C = propagation.TraceContext{}

// provider returns the service's tracer provider and a flush function.
func (c *Config) provider(ctx context.Context, service string) (*sdktrace.TracerProvider, error) {
	inst := c.Instance
	if inst == "" {
		inst = fmt.Sprintf("%s-%d", service, os.Getpid())
	}
	host, _ := os.Hostname()
	res := resource.NewSchemaless(
		attribute.String("service.name", service),
		attribute.String("service.instance.id", inst),
		attribute.String("host.name", host),
	)
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if c.Sample > 0 && c.Sample < 1 {
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.Sample))))
	}
	if c.OTLP != "" {
		exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(c.OTLP), otlptracegrpc.WithInsecure())
		if err != nil {
			return nil, fmt.Errorf("otlp exporter for %s: %w", c.OTLP, err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(200*time.Millisecond)))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}

func shutdown(tp *sdktrace.TracerProvider) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = tp.Shutdown(ctx)
}

// Counters are a service's health figures, and what its readiness is
// judged on.
type Counters struct {
	Processed atomic.Int64
	Produced  atomic.Int64
	Skipped   atomic.Int64

	// group is set for a consumer-group member: it is ready only while it
	// holds partitions (a member that joined while dead members still hold
	// them consumes nothing until their sessions time out).
	group     bool
	assigned  atomic.Int64
	restoring atomic.Bool
	brokerErr atomic.Pointer[string]
}

// groupHooks counts the partitions the member holds; onAssigned, when not
// nil, is called on each assignment too.
func (c *Counters) groupHooks(onAssigned func()) []kgo.Opt {
	c.group = true
	count := func(m map[string][]int32) (n int64) {
		for _, p := range m {
			n += int64(len(p))
		}
		return n
	}
	return []kgo.Opt{
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			c.assigned.Add(count(m))
			if onAssigned != nil {
				onAssigned()
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { c.assigned.Add(-count(m)) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { c.assigned.Add(-count(m)) }),
	}
}

// watchBroker pings Kafka every second until ctx ends, so that readiness
// says when no broker answers.
func (c *Counters) watchBroker(ctx context.Context, cl *kgo.Client) {
	go func() {
		for ctx.Err() == nil {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := cl.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				msg := err.Error()
				c.brokerErr.Store(&msg)
			} else {
				c.brokerErr.Store(nil)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
}

// notReady says why the service cannot do its work now, or "".
func (c *Counters) notReady() string {
	switch {
	case c.brokerErr.Load() != nil:
		return "Kafka unreachable: " + *c.brokerErr.Load()
	case c.restoring.Load():
		return "restoring state from the changelog"
	case c.group && c.assigned.Load() <= 0:
		return "no partitions assigned (waiting for the consumer group)"
	}
	return ""
}

// Health is the JSON /healthz returns: status "ok" (HTTP 200) while the
// service can consume and produce, else "not ready" (HTTP 503) with the
// reason.
type Health struct {
	Service   string `json:"service"`
	Instance  string `json:"instance,omitempty"`
	Status    string `json:"status"`
	Reason    string `json:"reason,omitempty"`
	Processed int64  `json:"processed"`
	Produced  int64  `json:"produced"`
	Skipped   int64  `json:"skipped"`
	// Partitions are those a consumer-group member holds.
	Partitions *int64 `json:"partitions,omitempty"`
}

// serveHTTP serves mux (plus /healthz) on addr until ctx ends. ready is
// closed once the listener is open.
func serveHTTP(ctx context.Context, addr, service string, c *Counters, mux *http.ServeMux) error {
	if mux == nil {
		mux = http.NewServeMux()
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		h := Health{Service: service, Status: "ok",
			Processed: c.Processed.Load(), Produced: c.Produced.Load(), Skipped: c.Skipped.Load()}
		if c.group {
			n := c.assigned.Load()
			h.Partitions = &n
		}
		w.Header().Set("Content-Type", "application/json")
		if h.Reason = c.notReady(); h.Reason != "" {
			h.Status = "not ready"
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(h)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: listening on %s: %w", service, addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

func kafkaOpts(cfg *Config, service string, extra ...kgo.Opt) []kgo.Opt {
	return cfg.Kafka.Opts(append([]kgo.Opt{kgo.ClientID(service)}, extra...)...)
}

// pingKafka fails fast when no broker answers.
func pingKafka(ctx context.Context, cl *kgo.Client, k stream.Kafka) error {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		return k.Unreachable(err)
	}
	return nil
}

// consume polls cl until ctx ends, logging fetch errors and handing every
// record to each. It returns early with the error of the service's HTTP
// server, if that stops.
func consume(ctx context.Context, cl *kgo.Client, logger *log.Logger, httpErr <-chan error, each func(*kgo.Record)) error {
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(t string, p int32, err error) {
			if ctx.Err() == nil {
				logger.Printf("fetch %s/%d: %v", t, p, err)
			}
		})
		fs.EachRecord(each)
		select {
		case err := <-httpErr:
			return err
		default:
		}
	}
	return nil
}
