package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/render"
)

// GraphOptions are `ktrace graph`'s inputs.
type GraphOptions struct {
	IO     *IOStreams
	Source SourceOptions
	Output string
}

var graphFormats = []string{"text", "json", "dot", "mermaid"}

// NewCmdGraph builds `ktrace graph`. runF replaces graphRun in tests.
func NewCmdGraph(io *IOStreams, runF func(context.Context, *GraphOptions) error) *cobra.Command {
	opts := &GraphOptions{IO: io}
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
  ktrace graph --file traces.json -o mermaid`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(opts.Output, graphFormats); err != nil {
				return err
			}
			if err := opts.Source.validate(io); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return graphRun(cmd.Context(), opts)
		},
	}
	opts.Source.register(cmd)
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "text", "output format: text, json, dot or mermaid")
	return cmd
}

func graphRun(ctx context.Context, opts *GraphOptions) error {
	g, err := opts.Source.buildGraph(ctx, opts.IO)
	if err != nil {
		return err
	}
	return writeGraph(opts.IO, g, opts.Output)
}

func writeGraph(io *IOStreams, g *graph.Graph, format string) error {
	switch format {
	case "json":
		return render.JSON(io.Out, render.ToJSON(g))
	case "dot":
		return render.DOT(io.Out, g)
	case "mermaid":
		return render.Mermaid(io.Out, g)
	}
	return render.GraphText(io.Out, g, io.Style())
}

func checkFormat(f string, allowed []string) error {
	for _, a := range allowed {
		if f == a {
			return nil
		}
	}
	return usagef("-o %q: want one of %v", f, allowed)
}
