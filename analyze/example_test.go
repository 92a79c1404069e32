package analyze_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/trace"
)

func load(t testing.TB, name string) []trace.Trace {
	t.Helper()
	var set trace.Set
	if _, err := file.ReadFile("../fixtures/"+name+".ktrace", nil, &set, &trace.Resources{}); err != nil {
		t.Fatal(err)
	}
	return set.Traces()
}

// A stream processor whose output starts a new trace loses the context of
// its input: the break is inside it.
func ExampleBreaks() {
	kafka := func(tid trace.TraceID, sid, parent trace.SpanID, svc string, kind trace.Kind, topic string) trace.Span {
		s := trace.Span{TraceID: tid, SpanID: sid, Kind: kind, Start: time.UnixMilli(int64(sid)), Resource: &trace.Resource{Service: svc},
			Attributes: trace.Attributes{{Key: "messaging.system", Value: "kafka"}, {Key: "messaging.destination.name", Value: topic}}}
		if parent != 0 {
			s.Refs = []trace.Ref{{Type: trace.RefParent, TraceID: tid, SpanID: parent}}
		}
		return s
	}
	in, out := trace.TraceID{Low: 1}, trace.TraceID{Low: 2}
	traces := []trace.Trace{
		{ID: in, Spans: []trace.Span{kafka(in, 1, 0, "source", trace.KindProducer, "stars"), kafka(in, 2, 1, "join", trace.KindConsumer, "stars")}},
		{ID: out, Spans: []trace.Span{kafka(out, 3, 0, "join", trace.KindProducer, "results")}},
	}
	for _, f := range analyze.Breaks(traces, graph.Build(traces), analyze.Options{}).Findings {
		fmt.Println(f.Rule, "|", f.Where, "|", f.Traces, "trace(s)")
	}
	// Output: lost-inside | join: stars → results | 1 trace(s)
}
