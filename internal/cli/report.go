package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ktrace-dev/ktrace/render"
)

// ReportOptions are `ktrace report`'s inputs.
type ReportOptions struct {
	IO     *IOStreams
	Source SourceOptions
	Broken bool
	Output string
	UIURL  string
	Fail   bool
	Skew   time.Duration
	Settle time.Duration
}

// NewCmdReport builds `ktrace report`.
func NewCmdReport(ios *IOStreams, runF func(context.Context, *ReportOptions) error) *cobra.Command {
	opts := &ReportOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "report --broken",
		Short: "Name where traces break, ranked, with example traces",
		Long: `Finds and ranks the places trace context is lost:

  lost-inside     a service that consumes and produces writes records in new
                  traces: its output lost its input's context (a stateful join)
  lost-hop        a consumer started a new trace; paired by topic, partition
                  and offset (or message id) with the producer it should continue
  mid-graph-root  a consumer or server span starts a trace although the graph
                  shows instrumented producers or callers upstream
  orphan-span     a span whose parent is not in the trace
  multiple-roots  a trace with several roots
  clock-skew      a child starting before its parent, or a consumer before its
                  producer, beyond --skew-tolerance

Traces still arriving (their span count changed between two reads of
Jaeger, --settle apart) are reported as incomplete, never as broken.`,
		Example: `  ktrace report --broken --fixture stargazers-lost
  ktrace report --broken --jaeger 127.0.0.1:16685 --ui-url http://127.0.0.1:16686 -o markdown
  ktrace report --broken --file traces.json --fail`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !opts.Broken {
				return usagef("say which report: --broken (the only one so far)")
			}
			if err := checkFormat(opts.Output, []string{"text", "json", "markdown"}); err != nil {
				return err
			}
			if opts.Skew < 0 || opts.Settle < 0 {
				return usagef("--skew-tolerance and --settle must not be negative")
			}
			if err := opts.Source.validate(ios); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return reportRun(cmd.Context(), opts)
		},
	}
	opts.Source.register(cmd)
	f := cmd.Flags()
	f.BoolVar(&opts.Broken, "broken", false, "report where traces break")
	f.StringVarP(&opts.Output, "output", "o", "text", "output format: text, json or markdown")
	f.StringVar(&opts.UIURL, "ui-url", "", "Jaeger UI base `URL`; example traces become links")
	f.BoolVar(&opts.Fail, "fail", false, "exit 1 when any break is found")
	f.DurationVar(&opts.Skew, "skew-tolerance", 10*time.Millisecond, "clock skew allowed before it is reported")
	f.DurationVar(&opts.Settle, "settle", 2*time.Second, "Jaeger: read twice this far apart; traces that changed are incomplete (0: read once)")
	return cmd
}

func reportRun(ctx context.Context, opts *ReportOptions) error {
	_, rep, err := opts.Source.analyzeSource(ctx, opts.IO, opts.Skew, opts.Settle)
	if err != nil {
		return err
	}
	switch opts.Output {
	case "json":
		err = render.JSON(opts.IO.Out, render.ReportToJSON(rep, opts.UIURL))
	case "markdown":
		err = render.ReportMarkdown(opts.IO.Out, rep, opts.UIURL)
	default:
		err = render.ReportText(opts.IO.Out, rep, opts.UIURL, opts.IO.Style())
		if err == nil && !opts.IO.OutTTY && len(rep.Findings) == 0 {
			// stdout keeps its one header line for machines; people are told.
			fmt.Fprintln(opts.IO.ErrOut, "no breaks: every hop carries its trace context")
		}
	}
	if err != nil {
		return err
	}
	if opts.Fail && len(rep.Findings) > 0 {
		return withCode(ExitFindings, errSilent)
	}
	return nil
}
