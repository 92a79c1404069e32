package main

import (
	"context"
	"encoding/binary"
	"runtime"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/connector/spanmetricsconnector"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/ktrace-dev/ktrace/trace"
)

// toPtrace converts traces into collector batches of about batch spans,
// one ResourceSpans per resource within a batch.
func toPtrace(ts []trace.Trace, batch int) []ptrace.Traces {
	var out []ptrace.Traces
	var td ptrace.Traces
	var scopes map[*trace.Resource]ptrace.ScopeSpans
	n := 0
	for i := range ts {
		for j := range ts[i].Spans {
			if n%batch == 0 {
				td = ptrace.NewTraces()
				scopes = map[*trace.Resource]ptrace.ScopeSpans{}
				out = append(out, td)
			}
			n++
			s := &ts[i].Spans[j]
			ss, ok := scopes[s.Resource]
			if !ok {
				rs := td.ResourceSpans().AppendEmpty()
				for _, a := range s.Resource.Attributes {
					rs.Resource().Attributes().PutStr(a.Key, a.Value)
				}
				ss = rs.ScopeSpans().AppendEmpty()
				scopes[s.Resource] = ss
			}
			sp := ss.Spans().AppendEmpty()
			var tid [16]byte
			binary.BigEndian.PutUint64(tid[:8], s.TraceID.High)
			binary.BigEndian.PutUint64(tid[8:], s.TraceID.Low)
			sp.SetTraceID(pcommon.TraceID(tid))
			var sid [8]byte
			binary.BigEndian.PutUint64(sid[:], uint64(s.SpanID))
			sp.SetSpanID(pcommon.SpanID(sid))
			if pid, ok := s.Parent(); ok {
				binary.BigEndian.PutUint64(sid[:], uint64(pid))
				sp.SetParentSpanID(pcommon.SpanID(sid))
			}
			sp.SetName(s.Operation)
			sp.SetKind(ptrace.SpanKind(s.Kind))
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(s.Start))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(s.Start.Add(s.Duration)))
			for _, a := range s.Attributes {
				sp.Attributes().PutStr(a.Key, a.Value)
			}
		}
	}
	return out
}

// spanmetrics feeds the identical spans (as collector batches) to a new
// collector-contrib spanmetrics connector in this process and returns how
// long it took.
func spanmetrics(ctx context.Context, batches []ptrace.Traces) (time.Duration, error) {
	f := spanmetricsconnector.NewFactory()
	sink := new(consumertest.MetricsSink)
	c, err := f.CreateTracesToMetrics(ctx, connectortest.NewNopSettings(f.Type()), f.CreateDefaultConfig(), sink)
	if err != nil {
		return 0, err
	}
	if err := c.Start(ctx, componenttest.NewNopHost()); err != nil {
		return 0, err
	}
	runtime.GC()
	start := time.Now()
	for _, b := range batches {
		if err := c.ConsumeTraces(ctx, b); err != nil {
			return 0, err
		}
	}
	d := time.Since(start)
	return d, c.Shutdown(ctx)
}
