package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/render"
)

// DiffOptions are `ktrace diff`'s inputs.
type DiffOptions struct {
	IO           *IOStreams
	A, B         string
	Jaeger       string
	JaegerConn   JaegerConn
	Kafka, Group string
	KafkaConn    KafkaOptions
	Timeout      time.Duration
	Output       string
	FailOnChange bool
	Threshold    float64
}

// DiffJSON is the stable JSON shape of `ktrace diff -o json`.
type DiffJSON struct {
	Version int          `json:"version"`
	Before  string       `json:"before"`
	After   string       `json:"after"`
	Changes []ChangeJSON `json:"changes"`
}

// ChangeJSON is one change.
type ChangeJSON struct {
	Kind    string `json:"kind"`
	Subject string `json:"subject"`
	Before  string `json:"before,omitempty"`
	After   string `json:"after,omitempty"`
	Broke   bool   `json:"broke,omitempty"`
}

// NewCmdDiff builds `ktrace diff`.
func NewCmdDiff(ios *IOStreams, runF func(context.Context, *DiffOptions) error) *cobra.Command {
	opts := &DiffOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "diff A B",
		Short: "Show how the topology changed between two trace sets",
		Long: `Compares the graphs of two trace sets (files or snapshots; "-" is stdin for
one of them; "fixture:NAME" a bundled one), or, with --jaeger, two time
windows START..END (RFC 3339) of one Jaeger: nodes and edges added or removed,
edges whose relation changed (parent → stitched means a hop broke),
continuity changes and p95 latency regressions beyond --latency-threshold.`,
		Example: `  ktrace diff yesterday.ktrace today.ktrace
  ktrace diff fixture:stargazers-lost fixture:stargazers-links -o markdown
  ktrace diff before.json after.json --fail-on-change
  ktrace diff --jaeger 127.0.0.1:16685 2026-11-24T09:00:00Z..2026-11-24T10:00:00Z 2026-11-25T09:00:00Z..2026-11-25T10:00:00Z`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.A, opts.B = args[0], args[1]
			if err := checkFormat(opts.Output, []string{"text", "json", "markdown"}); err != nil {
				return err
			}
			if opts.Threshold <= 0 {
				return usagef("--latency-threshold must be positive")
			}
			if opts.A == "-" && opts.B == "-" {
				return usagef("only one of A and B can be stdin")
			}
			for _, n := range kafkaFlags {
				if opts.Kafka == "" && cmd.Flags().Changed(n) {
					return usagef("--%s applies to --kafka only", n)
				}
			}
			for _, n := range append([]string{"timeout"}, jaegerConnFlags...) {
				if opts.Jaeger == "" && cmd.Flags().Changed(n) {
					return usagef("--%s applies to --jaeger only", n)
				}
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return diffRun(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Output, "output", "o", "text", "output format: text, json or markdown")
	f.BoolVar(&opts.FailOnChange, "fail-on-change", false, "exit 1 when anything changed")
	f.Float64Var(&opts.Threshold, "latency-threshold", 0.2, "relative p95 increase reported as a regression (0.2 = 20%)")
	f.StringVar(&opts.Jaeger, "jaeger", "", "compare two time windows of this Jaeger (query gRPC `host:port`); A and B are START..END")
	opts.JaegerConn.addFlags(f)
	f.StringVar(&opts.Kafka, "kafka", "", "compare two time windows of what a `ktrace stream` published (Kafka brokers `host:port,...`, with --group); A and B are START..END")
	f.StringVar(&opts.Group, "group", "", "--kafka: the stream's consumer group `name`")
	opts.KafkaConn.addFlags(f)
	f.DurationVar(&opts.Timeout, "timeout", 30*time.Second, "Jaeger: deadline for each call")
	return cmd
}

func (o *DiffOptions) graphOf(ctx context.Context, arg string) (*graph.Graph, error) {
	src := SourceOptions{}
	if o.Kafka != "" {
		since, until, ok := strings.Cut(arg, "..")
		if !ok {
			return nil, usagef("%q: with --kafka, A and B are time windows START..END (RFC 3339)", arg)
		}
		src = jaegerSource("", since, until)
		src.Kafka, src.Group, src.KafkaConn = o.Kafka, o.Group, o.KafkaConn
		if err := src.validate(o.IO); err != nil {
			return nil, err
		}
		return src.buildGraph(ctx, o.IO)
	}
	if o.Jaeger != "" {
		since, until, ok := strings.Cut(arg, "..")
		if !ok {
			return nil, usagef("%q: with --jaeger, A and B are time windows START..END (RFC 3339)", arg)
		}
		src = jaegerSource(o.Jaeger, since, until)
		src.Timeout, src.JaegerConn = o.Timeout, o.JaegerConn
		if err := src.validate(o.IO); err != nil {
			return nil, err
		}
	} else if name, ok := strings.CutPrefix(arg, "fixture:"); ok {
		src.Fixtures = []string{name}
	} else {
		src.Files = []string{arg}
	}
	set, err := src.load(ctx, o.IO)
	if err != nil {
		return nil, err
	}
	return graph.Build(set.Traces()), nil
}

func diffRun(ctx context.Context, opts *DiffOptions) error {
	a, err := opts.graphOf(ctx, opts.A)
	if err != nil {
		return err
	}
	b, err := opts.graphOf(ctx, opts.B)
	if err != nil {
		return err
	}
	changes := analyze.Diff(a, b, analyze.DiffOptions{LatencyThreshold: opts.Threshold})
	switch opts.Output {
	case "json":
		doc := DiffJSON{Version: 1, Before: opts.A, After: opts.B, Changes: []ChangeJSON{}}
		for _, c := range changes {
			doc.Changes = append(doc.Changes, ChangeJSON(c))
		}
		err = render.JSON(opts.IO.Out, doc)
	case "markdown":
		err = diffMarkdown(opts.IO.Out, opts.A, opts.B, changes)
	default:
		err = diffText(opts.IO.Out, changes)
	}
	if err != nil {
		return err
	}
	if opts.FailOnChange && len(changes) > 0 {
		return withCode(ExitFindings, errSilent)
	}
	return nil
}

func arrow(c analyze.Change) string {
	switch {
	case c.Before != "" && c.After != "":
		return c.Before + " → " + c.After
	case c.After != "":
		return c.After
	}
	return c.Before
}

func diffText(w io.Writer, changes []analyze.Change) error {
	if len(changes) == 0 {
		_, err := fmt.Fprintln(w, "no changes")
		return err
	}
	var b strings.Builder
	for _, c := range changes {
		mark := " "
		if c.Broke {
			mark = "!"
		}
		fmt.Fprintf(&b, "%s %s\t%s\t%s\n", mark, c.Kind, render.TSV(c.Subject), render.TSV(arrow(c)))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func diffMarkdown(w io.Writer, a, b string, changes []analyze.Change) error {
	var s strings.Builder
	fmt.Fprintf(&s, "## Topology changes: %s → %s\n\n", render.Markdown(a), render.Markdown(b))
	if len(changes) == 0 {
		s.WriteString("No changes.\n")
	} else {
		s.WriteString("| change | subject | before → after |\n|---|---|---|\n")
		for _, c := range changes {
			kind := "`" + c.Kind + "`"
			if c.Broke {
				kind = "⚠️ " + kind + " (context now lost)"
			}
			fmt.Fprintf(&s, "| %s | %s | %s |\n", kind, render.Markdown(c.Subject), render.Markdown(arrow(c)))
		}
	}
	_, err := io.WriteString(w, s.String())
	return err
}
