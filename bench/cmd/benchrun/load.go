package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ktrace-dev/ktrace/trace"
)

func traceID(id trace.TraceID) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b[:8], id.High)
	binary.BigEndian.PutUint64(b[8:], id.Low)
	return b
}

func spanID(id trace.SpanID) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(id))
	return b
}

func kv(k, v string) *common.KeyValue {
	return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: v}}}
}

// toOTLP converts spans to OTLP, one ResourceSpans per resource.
func toOTLP(spans []*trace.Span) []*tracepb.ResourceSpans {
	byRes := map[*trace.Resource]*tracepb.ScopeSpans{}
	var out []*tracepb.ResourceSpans
	for _, s := range spans {
		ss, ok := byRes[s.Resource]
		if !ok {
			var attrs []*common.KeyValue
			for _, a := range s.Resource.Attributes {
				attrs = append(attrs, kv(a.Key, a.Value))
			}
			ss = &tracepb.ScopeSpans{}
			byRes[s.Resource] = ss
			out = append(out, &tracepb.ResourceSpans{Resource: &resource.Resource{Attributes: attrs}, ScopeSpans: []*tracepb.ScopeSpans{ss}})
		}
		ps := &tracepb.Span{TraceId: traceID(s.TraceID), SpanId: spanID(s.SpanID), Name: s.Operation,
			Kind:              tracepb.Span_SpanKind(s.Kind),
			StartTimeUnixNano: uint64(s.Start.UnixNano()), EndTimeUnixNano: uint64(s.Start.Add(s.Duration).UnixNano())}
		for _, r := range s.Refs {
			if r.Type == trace.RefParent {
				ps.ParentSpanId = spanID(r.SpanID)
			} else {
				ps.Links = append(ps.Links, &tracepb.Span_Link{TraceId: traceID(r.TraceID), SpanId: spanID(r.SpanID)})
			}
		}
		for _, a := range s.Attributes {
			ps.Attributes = append(ps.Attributes, kv(a.Key, a.Value))
		}
		ss.Spans = append(ss.Spans, ps)
	}
	return out
}

// load exports every span to an OTLP gRPC endpoint in batches.
func load(ctx context.Context, addr string, traces []trace.Trace, progress io.Writer) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := coltrace.NewTraceServiceClient(conn)
	const batch = 2000
	var pending []*trace.Span
	sent := 0
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if _, err := client.Export(ctx, &coltrace.ExportTraceServiceRequest{ResourceSpans: toOTLP(pending)}); err != nil {
			return fmt.Errorf("otlp export to %s: %w", addr, err)
		}
		sent += len(pending)
		pending = pending[:0]
		if sent%200000 < batch {
			fmt.Fprintf(progress, "  loaded %d spans\n", sent)
		}
		return nil
	}
	for i := range traces {
		for j := range traces[i].Spans {
			pending = append(pending, &traces[i].Spans[j])
			if len(pending) == batch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}
