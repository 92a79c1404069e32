package cli

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/render"
)

// SPOFOptions are `ktrace spof`'s inputs.
type SPOFOptions struct {
	IO      *IOStreams
	Source  SourceOptions
	Output  string
	Entries []string
	FailOn  string
}

// NewCmdSPOF builds `ktrace spof`.
func NewCmdSPOF(ios *IOStreams, runF func(context.Context, *SPOFOptions) error) *cobra.Command {
	opts := &SPOFOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "spof",
		Short: "Flag single points of failure, ranked by blast radius",
		Long: `Finds single points of failure in the trace-derived graph (services and
topics both as nodes):

  articulation      a node whose loss splits the (undirected) graph
  bridge            an edge whose loss splits it
  dominator         a node every path from an entry point to a sink crosses
  single-instance   a service seen with one service.instance.id (else host.name)
  single-consumer   a topic read by one consumer group with one instance
  single-partition  a topic whose records all went to one partition

Each finding's blast radius is what its failure cuts off: the services and
topics some entry point no longer reaches, and the entry flows affected.
Entry points are the nodes nothing instrumented leads to and services called
by an unknown caller, or --entry.`,
		Example: `  ktrace spof --fixture stargazers-lost
  ktrace spof --jaeger 127.0.0.1:16685 --entry github-avro-stargazers-jackdaw
  ktrace spof --file traces.json -o mermaid
  ktrace spof --fixture stargazers-lost --fail-on articulation,dominator`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(opts.Output, []string{"text", "json", "mermaid", "dot"}); err != nil {
				return err
			}
			if opts.FailOn != "" {
				for _, k := range strings.Split(opts.FailOn, ",") {
					if err := checkFormat(strings.TrimSpace(k), analyze.SPOFKinds); err != nil {
						return usagef("--fail-on %q: want a comma-separated list of %s", k, strings.Join(analyze.SPOFKinds, ", "))
					}
				}
			}
			if err := opts.Source.validate(ios); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return spofRun(cmd.Context(), opts)
		},
	}
	opts.Source.register(cmd)
	f := cmd.Flags()
	f.StringVarP(&opts.Output, "output", "o", "text", "output format: text, json, mermaid or dot")
	f.StringArrayVar(&opts.Entries, "entry", nil, "entry point, a service or topic `name` (repeatable; default: found from the graph)")
	f.StringVar(&opts.FailOn, "fail-on", "", "exit 1 when a finding of these `kinds` exists (comma-separated)")
	return cmd
}

func spofRun(ctx context.Context, opts *SPOFOptions) error {
	g, err := opts.Source.buildGraph(ctx, opts.IO)
	if err != nil {
		return err
	}
	rep, err := analyze.SPOF(g, opts.Entries)
	if err != nil {
		return usagef("%v", err)
	}
	switch opts.Output {
	case "json":
		err = render.JSON(opts.IO.Out, render.SPOFToJSON(rep))
	case "mermaid":
		err = render.MermaidHighlight(opts.IO.Out, g, render.SPOFNodes(rep))
	case "dot":
		err = render.DOTHighlight(opts.IO.Out, g, render.SPOFNodes(rep))
	default:
		err = render.SPOFText(opts.IO.Out, rep, opts.IO.Style())
	}
	if err != nil {
		return err
	}
	if opts.FailOn != "" {
		fail := map[string]bool{}
		for _, k := range strings.Split(opts.FailOn, ",") {
			fail[strings.TrimSpace(k)] = true
		}
		for _, f := range rep.Findings {
			if fail[f.Kind] && !f.Minor {
				return withCode(ExitFindings, errSilent)
			}
		}
	}
	return nil
}
