package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/docs"
	"github.com/ktrace-dev/ktrace/render"
	"github.com/ktrace-dev/ktrace/source/file"
)

// DocsOptions are `ktrace docs`' inputs.
type DocsOptions struct {
	IO        *IOStreams
	Source    SourceOptions
	Out       string
	Owners    string
	Timestamp bool
	Stats     bool
}

// NewCmdDocs builds `ktrace docs`.
func NewCmdDocs(ios *IOStreams, runF func(context.Context, *DocsOptions) error) *cobra.Command {
	opts := &DocsOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "docs --out DIR",
		Short: "Write the system's documentation from its traces",
		Long: `Writes, into --out:

  index.md                 overview, Mermaid service graph, services and topics
  services/<name>.md       operations, upstream/downstream with latency and
                           error rates, topics, instances, breaks, SPOFs
  topics/<name>.md         producers, consumer groups, partitions, lag
  graph.dot, graph.svg     the graph (SVG rendered in-process, no binary needed)
  asyncapi/<service>.yaml  AsyncAPI 3.0 per service (payloads are placeholders)
  catalog-info.yaml        Backstage Components and APIs

Output is deterministic (no timestamps unless --timestamp), so the folder can
live in git. Text between <!-- ktrace:keep NAME --> and <!-- ktrace:end NAME -->
in the Markdown pages survives regeneration.`,
		Example: `  ktrace docs --fixture stargazers-lost --out docs/system
  ktrace docs --jaeger 127.0.0.1:16685 --out docs/system --owners owners.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Out == "" {
				return usagef("--out DIR is required")
			}
			if err := opts.Source.validate(ios); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return docsRun(cmd.Context(), opts)
		},
	}
	opts.Source.register(cmd)
	f := cmd.Flags()
	f.StringVar(&opts.Out, "out", "", "directory to write the documentation into")
	f.StringVar(&opts.Owners, "owners", "", "YAML `file` mapping services to owner and lifecycle for catalog-info.yaml")
	f.BoolVar(&opts.Timestamp, "timestamp", false, "stamp the generation time into the pages")
	f.BoolVar(&opts.Stats, "stats", false, "add counts, error rates and latency percentiles (the pages then change with every run)")
	return cmd
}

func docsRun(ctx context.Context, opts *DocsOptions) error {
	var owners *docs.Owners
	if opts.Owners != "" {
		var err error
		b, err := file.ReadConfig(opts.Owners)
		if err == nil {
			owners, err = docs.ParseOwners(opts.Owners, b)
		}
		if err != nil {
			return usagef("--owners: %v", err)
		}
	}
	g, rep, err := opts.Source.analyzeSource(ctx, opts.IO, 10*time.Millisecond, 0)
	if err != nil {
		return err
	}
	sp, _ := analyze.SPOF(g, nil)
	in := docs.Input{Graph: g, Breaks: rep, SPOF: sp, Owners: owners, Stats: opts.Stats}
	if opts.Timestamp {
		in.Generated = time.Now()
	}
	paths, err := docs.Generate(ctx, opts.Out, in)
	if err != nil {
		return err
	}
	for _, p := range paths {
		fmt.Fprintln(opts.IO.Out, p)
	}
	fmt.Fprintf(opts.IO.ErrOut, "wrote %s to %s\n", render.N(len(paths), "file"), opts.Out)
	return nil
}
