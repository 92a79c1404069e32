package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// provider is one service's tracer provider, exporting OTLP to Jaeger.
func provider(t *testing.T, otlpAddr, service string) *sdktrace.TracerProvider {
	t.Helper()
	exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(otlpAddr), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", service),
		attribute.String("service.instance.id", service+"-1"),
		attribute.String("host.name", "e2e-host"),
	)
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(100*time.Millisecond)), sdktrace.WithResource(res))
}

func kotelHooks(tp oteltrace.TracerProvider, prop propagation.TextMapPropagator, group string) kgo.Opt {
	opts := []kotel.TracerOpt{kotel.TracerProvider(tp), kotel.TracerPropagator(prop)}
	if group != "" {
		opts = append(opts, kotel.ConsumerGroup(group))
	}
	k := kotel.NewKotel(kotel.WithTracer(kotel.NewTracer(opts...)))
	return kgo.WithHooks(k.Hooks()...)
}

// runTopology runs the known topology once with n orders:
//
//	web-client --HTTP--> orders-api --produce--> orders --> billing   (context kept)
//	                                              orders --> shipping (context dropped)
//	                                              shipping --produce--> shipments
//
// and flushes every service's spans to Jaeger.
func runTopology(t *testing.T, otlpAddr string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tc := propagation.TraceContext{}

	cluster, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(2, "orders", "shipments"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	seeds := kgo.SeedBrokers(cluster.ListenAddrs()...)

	web := provider(t, otlpAddr, "web-client")
	api := provider(t, otlpAddr, "orders-api")
	billing := provider(t, otlpAddr, "billing")
	shipping := provider(t, otlpAddr, "shipping")

	apiKafka, err := kgo.NewClient(seeds, kotelHooks(api, tc, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer apiKafka.Close()

	// orders-api: an HTTP server that writes each order to Kafka.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sctx := tc.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		sctx, span := api.Tracer("orders-api").Start(sctx, "POST /orders", oteltrace.WithSpanKind(oteltrace.SpanKindServer))
		defer span.End()
		id := r.URL.Query().Get("id")
		rec := &kgo.Record{Topic: "orders", Key: []byte(id), Value: []byte(`{"id":` + id + `}`), Context: sctx}
		if err := apiKafka.ProduceSync(sctx, rec).FirstErr(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})}
	go srv.Serve(ln)
	defer srv.Close()

	// web-client: n calls with client spans and W3C headers.
	for i := 0; i < n; i++ {
		cctx, span := web.Tracer("web-client").Start(ctx, "POST /orders", oteltrace.WithSpanKind(oteltrace.SpanKindClient),
			oteltrace.WithAttributes(attribute.String("server.address", "127.0.0.1")))
		req, _ := http.NewRequestWithContext(cctx, http.MethodPost, "http://"+ln.Addr().String()+"/orders?id="+strconv.Itoa(i), nil)
		tc.Inject(cctx, propagation.HeaderCarrier(req.Header))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		span.End()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("orders-api answered %s", resp.Status)
		}
	}

	// billing keeps the context; shipping drops it (an empty propagator
	// extracts nothing) and re-produces each order to shipments.
	consume := func(group string, tp *sdktrace.TracerProvider, prop propagation.TextMapPropagator, each func(*kgo.Record)) {
		cl, err := kgo.NewClient(seeds, kgo.ConsumerGroup(group), kgo.ConsumeTopics("orders"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kotelHooks(tp, prop, group))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		for got := 0; got < n; {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("%s: got %d of %d records: %v", group, got, n, ctx.Err())
			}
			fs.EachRecord(func(r *kgo.Record) {
				got++
				if each != nil {
					each(r)
				}
			})
		}
	}
	consume("billing", billing, tc, nil)
	shipKafka, err := kgo.NewClient(seeds, kotelHooks(shipping, tc, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer shipKafka.Close()
	consume("shipping", shipping, propagation.NewCompositeTextMapPropagator(), func(r *kgo.Record) {
		out := &kgo.Record{Topic: "shipments", Key: r.Key, Value: r.Value, Context: r.Context}
		if err := shipKafka.ProduceSync(r.Context, out).FirstErr(); err != nil {
			t.Error(err)
		}
	})

	for _, tp := range []*sdktrace.TracerProvider{web, api, billing, shipping} {
		if err := tp.Shutdown(ctx); err != nil {
			t.Fatal(fmt.Errorf("flushing spans: %w", err))
		}
	}
}
