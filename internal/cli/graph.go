package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/render"
)

// GraphOptions are `ktrace graph`'s inputs.
type GraphOptions struct {
	IO     *IOStreams
	Source SourceOptions
	Output string
	UIURL  string
}

var graphFormats = []string{"text", "json", "dot", "mermaid", "html"}

// NewCmdGraph builds `ktrace graph`. runF replaces graphRun in tests.
func NewCmdGraph(ios *IOStreams, runF func(context.Context, *GraphOptions) error) *cobra.Command {
	opts := &GraphOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "graph",
		Short: "Rebuild the service graph, with Kafka topics as nodes",
		Long: `Rebuild the service graph from traces: services, Kafka topics and
uninstrumented peers as nodes; calls, produce and consume hops as edges, each
with how it was found (span, parent, link, stitched), counts, errors and
latency percentiles. A stitched edge is a consumer that lost its trace
context, paired with the producer of the same record.`,
		Example: `  ktrace graph --fixture kafka-e2e
  ktrace graph --jaeger 127.0.0.1:16685 --lookback 15m -o json
  ktrace graph --file traces.json -o mermaid
  ktrace graph --fixture stargazers-lost -o html > map.html`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(opts.Output, graphFormats); err != nil {
				return err
			}
			if err := opts.Source.validate(ios); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return graphRun(cmd.Context(), opts)
		},
	}
	opts.Source.register(cmd)
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "text", "output format: text, json, dot, mermaid or html (an interactive map in one self-contained page)")
	cmd.Flags().StringVar(&opts.UIURL, "ui-url", "", "-o html: Jaeger UI base `URL` for example trace links")
	return cmd
}

func graphRun(ctx context.Context, opts *GraphOptions) error {
	if opts.Output == "html" {
		g, rep, err := opts.Source.analyzeSource(ctx, opts.IO, 10*time.Millisecond, 0)
		if err != nil {
			return err
		}
		sp, err := analyze.SPOF(g, nil)
		if err != nil {
			return err
		}
		return render.HTML(opts.IO.Out, render.ToMap(g, rep, sp, opts.UIURL))
	}
	g, err := opts.Source.buildGraph(ctx, opts.IO)
	if err != nil {
		return err
	}
	return writeGraph(opts.IO, g, opts.Output)
}

func writeGraph(ios *IOStreams, g *graph.Graph, format string) error {
	switch format {
	case "json":
		return render.JSON(ios.Out, render.ToJSON(g))
	case "dot":
		return render.DOT(ios.Out, g)
	case "mermaid":
		return render.Mermaid(ios.Out, g)
	}
	return render.GraphText(ios.Out, g, ios.Style())
}

func checkFormat(f string, allowed []string) error {
	for _, a := range allowed {
		if f == a {
			return nil
		}
	}
	return usagef("-o %q: want one of %v", f, allowed)
}
