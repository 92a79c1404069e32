package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/render"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/trace"
)

// CheckOptions are `ktrace check`'s inputs.
type CheckOptions struct {
	IO            *IOStreams
	Source        SourceOptions
	SpecPath      string
	Output        string
	JUnit         string
	SARIF         string
	GitHub        bool
	UIURL         string
	MinContinuity float64
	MinTraces     int
	Wait          time.Duration
	Poll          time.Duration
	StablePolls   int
}

// NewCmdCheck builds `ktrace check`.
func NewCmdCheck(ios *IOStreams, runF func(context.Context, *CheckOptions) error) *cobra.Command {
	opts := &CheckOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Gate CI on trace continuity along flows (exit 0 pass, 1 violation, 3 inconclusive)",
		Long: `Checks that trace context survives along the flows a YAML spec names (see
examples/stargazers-check.yaml), or, without --spec, along every messaging
hop of the graph.

A flow's continuity is the share of traces reaching its end whose every hop,
back to the entry service, continues the trace through a parent or a link
(as each hop's relation allows). Each hop is also judged on its own: the
share of its downstream spans that continue from the hop before, and
optionally its p99 latency against max_latency.

With Jaeger, ktrace re-reads until the span count is stable for
--stable-polls reads in a row; if that does not happen within --wait, or a
hop is never seen, or fewer than min_traces traces reach a flow's end, the
verdict is inconclusive (exit 3), not broken.`,
		Example: `  ktrace check --spec examples/stargazers-check.yaml --fixture stargazers-lost
  ktrace check --spec flows.yaml --jaeger 127.0.0.1:16685 --junit check.xml --sarif check.sarif --github
  ktrace check --file traces.json --min-continuity 0.95`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(opts.Output, []string{"text", "json"}); err != nil {
				return err
			}
			if opts.MinContinuity < 0 || opts.MinContinuity > 1 {
				return usagef("--min-continuity %v: want a number from 0 to 1", opts.MinContinuity)
			}
			if opts.MinTraces < 1 || opts.StablePolls < 1 || opts.Wait <= 0 || opts.Poll <= 0 {
				return usagef("--min-traces, --stable-polls, --wait and --poll must be positive")
			}
			if err := opts.Source.validate(ios); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return checkRun(cmd.Context(), opts)
		},
	}
	opts.Source.register(cmd)
	f := cmd.Flags()
	f.StringVar(&opts.SpecPath, "spec", "", "YAML flow spec `file` (default: check every messaging hop)")
	f.StringVarP(&opts.Output, "output", "o", "text", "output format: text or json")
	f.StringVar(&opts.JUnit, "junit", "", "also write a JUnit XML report to `file` (suite = flow, case = hop)")
	f.StringVar(&opts.SARIF, "sarif", "", "also write a SARIF 2.1.0 report to `file`")
	f.BoolVar(&opts.GitHub, "github", false, "print GitHub Actions annotations; append a summary to $GITHUB_STEP_SUMMARY when set")
	f.StringVar(&opts.UIURL, "ui-url", "", "Jaeger UI base `URL` for example trace links")
	f.Float64Var(&opts.MinContinuity, "min-continuity", 0.99, "without --spec: the continuity every messaging hop needs")
	f.IntVar(&opts.MinTraces, "min-traces", 1, "without --spec: the records that must be seen for a verdict")
	f.DurationVar(&opts.Wait, "wait", 60*time.Second, "Jaeger: how long to wait for the traces to be complete")
	f.DurationVar(&opts.Poll, "poll", 2*time.Second, "Jaeger: time between reads")
	f.IntVar(&opts.StablePolls, "stable-polls", 2, "Jaeger: reads with an unchanged span count that make the traces complete")
	return cmd
}

func specErr(err error) error {
	var se *analyze.SpecError
	if errors.As(err, &se) {
		return withCode(ExitUsage, err)
	}
	return err
}

func checkRun(ctx context.Context, opts *CheckOptions) error {
	var spec *analyze.Spec
	if opts.SpecPath != "" {
		var err error
		b, err := file.ReadConfig(opts.SpecPath)
		if err != nil {
			return usagef("--spec: %v", err)
		}
		if spec, err = analyze.ParseSpec(opts.SpecPath, b); err != nil {
			return specErr(err)
		}
		if opts.Source.Jaeger != "" {
			if err := checkJaegerNames(ctx, &opts.Source, spec); err != nil {
				return err
			}
		}
	}
	evaluate := func(set *trace.Set) []analyze.FlowResult {
		traces := set.Traces()
		if spec != nil {
			return analyze.Check(traces, spec)
		}
		return []analyze.FlowResult{analyze.CheckAll(graph.Build(traces), opts.MinContinuity, opts.MinTraces)}
	}

	var flows []analyze.FlowResult
	if opts.Source.Kafka != "" {
		if spec != nil {
			return usagef("check --spec follows flows span by span and needs the traces; --kafka gives a stream's merged graph: check it without --spec")
		}
		g, _, err := opts.Source.analyzeSource(ctx, opts.IO, 0, 0)
		if err != nil {
			return err
		}
		return writeCheck(opts, []analyze.FlowResult{analyze.CheckAll(g, opts.MinContinuity, opts.MinTraces)})
	}
	if opts.Source.Jaeger == "" {
		set, err := opts.Source.load(ctx, opts.IO)
		if err != nil {
			return err
		}
		if spec != nil {
			g := graph.Build(set.Traces())
			var services, topics []string
			for _, n := range g.Nodes {
				switch n.Kind {
				case graph.KindService:
					services = append(services, n.Name)
				case graph.KindTopic:
					topics = append(topics, n.Name)
				}
			}
			if err := spec.CheckNames(services, topics); err != nil {
				return specErr(err)
			}
		}
		flows = evaluate(set)
	} else {
		var err error
		if flows, err = pollJaeger(ctx, opts, evaluate); err != nil {
			return err
		}
	}
	return writeCheck(opts, flows)
}

// checkJaegerNames fails early on a spec service Jaeger has never heard of.
func checkJaegerNames(ctx context.Context, src *SourceOptions, spec *analyze.Spec) error {
	c, err := src.dialJaeger()
	if err != nil {
		return err
	}
	defer c.Close()
	services, err := c.Services(ctx)
	if err != nil {
		return err
	}
	return specErr(spec.CheckNames(services, nil))
}

// pollJaeger reads until the span count is unchanged for StablePolls reads,
// then evaluates; past Wait every flow is inconclusive.
func pollJaeger(ctx context.Context, opts *CheckOptions, evaluate func(*trace.Set) []analyze.FlowResult) ([]analyze.FlowResult, error) {
	set, settled, err := opts.Source.loadStable(ctx, opts.IO, opts.StablePolls, opts.Poll, time.Now().Add(opts.Wait))
	if err != nil {
		return nil, err
	}
	flows := evaluate(set)
	if !settled {
		for i := range flows { // not settled: no verdict, broken or not
			flows[i].Verdict = analyze.Inconclusive
			flows[i].Reason = fmt.Sprintf("traces were still changing after --wait %s", opts.Wait)
		}
	}
	return flows, nil
}

func writeReport(path string, write func(io.Writer) error) error {
	var b bytes.Buffer
	if err := write(&b); err != nil {
		return err
	}
	af, err := file.CreateAtomic(path, true)
	if err != nil {
		return err
	}
	defer af.Abort()
	if _, err := af.Write(b.Bytes()); err != nil {
		return err
	}
	return af.Commit()
}

func writeCheck(opts *CheckOptions, flows []analyze.FlowResult) error {
	var err error
	if opts.GitHub {
		err = render.GitHub(opts.IO.Out, flows, opts.IO.Getenv("GITHUB_STEP_SUMMARY"))
	}
	if err == nil {
		if opts.Output == "json" {
			err = render.JSON(opts.IO.Out, render.CheckToJSON(flows))
		} else {
			err = render.CheckText(opts.IO.Out, flows, opts.UIURL, opts.IO.Style())
		}
	}
	if err == nil && opts.JUnit != "" {
		err = writeReport(opts.JUnit, func(w io.Writer) error { return render.JUnit(w, flows) })
	}
	if err == nil && opts.SARIF != "" {
		err = writeReport(opts.SARIF, func(w io.Writer) error { return render.SARIF(w, flows, Version()) })
	}
	if err != nil {
		return err
	}
	switch render.Overall(flows) {
	case analyze.Fail:
		return withCode(ExitFindings, errSilent)
	case analyze.Inconclusive:
		return withCode(ExitInconclusive, errSilent)
	}
	return nil
}
