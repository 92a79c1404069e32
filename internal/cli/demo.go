package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/render"
	"github.com/ktrace-dev/ktrace/stack"
	"github.com/ktrace-dev/ktrace/stack/stargazers"
)

// NewCmdDemo builds `ktrace demo`.
func NewCmdDemo(ios *IOStreams) *cobra.Command {
	opts := &StackOptions{}
	var keep bool
	var settle time.Duration
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the stargazers stack, send traffic, and show the graph and where traces break",
		Long: `Starts the stargazers stack, replays the bundled stargazer events, waits
until the API holds the join's answer and Jaeger's traces stop changing,
prints the service graph and where traces break, and stops the stack
(--keep leaves it running). The first run builds Jaeger v2 (minutes, with
progress on stderr); later runs start in seconds.`,
		Example: `  ktrace demo
  ktrace demo --propagation links
  ktrace demo --keep`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := stackSupported(); err != nil {
				return err
			}
			if err := opts.prepare(ios); err != nil {
				return err
			}
			if opts.JaegerEndpoint == "" && opts.OTLPEndpoint != "" {
				return usagef("demo reads traces back from Jaeger: give --jaeger-endpoint with --otlp-endpoint")
			}
			return demoRun(cmd.Context(), ios, opts, keep, settle)
		},
	}
	opts.register(cmd)
	cmd.Flags().BoolVar(&keep, "keep", false, "leave the stack running afterwards")
	cmd.Flags().DurationVar(&settle, "settle", 90*time.Second, "how long to wait for the answer and for traces to stop changing")
	return cmd
}

func demoRun(ctx context.Context, ios *IOStreams, opts *StackOptions, keep bool, settle time.Duration) (err error) {
	st, err := stack.Up(ctx, opts.Options)
	if err != nil {
		return stackErr(err)
	}
	if !keep {
		defer func() {
			if derr := stack.Down(opts.StateDir, ios.ErrOut); err == nil && derr != nil {
				err = derr
			}
		}()
	}
	fmt.Fprintln(ios.ErrOut, "replaying stargazer events...")
	res, err := stack.Traffic(ctx, opts.StateDir, 0, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(ios.ErrOut, "sent %d events\n", res.Sent)

	deadline := time.Now().Add(settle)
	var want []stargazers.Result
	if !opts.Live {
		f, err := stargazers.Load()
		if err != nil {
			return err
		}
		want = stargazers.Expected(f.Events)
	}
	got, err := waitForAnswer(ctx, st.Endpoints.API, len(want), deadline)
	if err != nil {
		return err
	}

	fmt.Fprintln(ios.ErrOut, "waiting for traces to settle in Jaeger...")
	src := jaegerSource(st.Endpoints.JaegerQuery, "", "")
	set, _, err := src.loadStable(ctx, ios, 2, time.Second, deadline)
	if err != nil {
		return err
	}
	g, rep, err := engine.Run(ctx, engine.Slice(set.Traces()), engine.Options{SkewTolerance: 10 * time.Millisecond})
	if err != nil {
		return err
	}
	if opts.SpansViaKafka {
		// What the stream members published, once it holds every trace
		// Jaeger has: the same graph, read from Kafka.
		fmt.Fprintf(ios.ErrOut, "reading the graph ktrace stream published (--kafka %s --group %s)...\n", st.Endpoints.Kafka, stack.StreamGroup)
		ks := jaegerSource("", "", "")
		ks.Kafka, ks.Group, ks.kafka = st.Endpoints.Kafka, stack.StreamGroup, opts.Cluster
		ks.kafka.Brokers = strings.Split(st.Endpoints.Kafka, ",")
		for {
			kg, krep, err := ks.readKafka(ctx, &IOStreams{In: ios.In, Out: ios.Out, ErrOut: io.Discard, Getenv: ios.Getenv})
			if err == nil && kg.Traces >= g.Traces {
				g, rep = kg, krep
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("ktrace stream did not publish Jaeger's %d traces before the deadline", g.Traces)
			}
			time.Sleep(time.Second)
		}
	}
	if err := render.GraphText(ios.Out, g, ios.Style()); err != nil {
		return err
	}
	fmt.Fprintln(ios.Out)
	fmt.Fprintln(ios.Out, "Where traces break:")
	if err := render.ReportSentences(ios.Out, rep, render.Terminal, true); err != nil {
		return err
	}
	fmt.Fprintln(ios.Out)
	if want != nil {
		if !reflect.DeepEqual(got, want) {
			fmt.Fprintf(ios.Out, "stargazers-api holds %d results; the join should give %d\n", len(got), len(want))
			return withCode(ExitFindings, errSilent)
		}
		fmt.Fprintf(ios.Out, "stargazers-api holds the %d logins that starred both repositories within 10 days, as expected\n", len(got))
	}
	if keep {
		printEndpoints(ios, st)
	}
	return nil
}

// waitForAnswer polls the API until it returns want results (any number
// when want is 0 and something arrived) or the deadline passes.
func waitForAnswer(ctx context.Context, api string, want int, deadline time.Time) ([]stargazers.Result, error) {
	var got []stargazers.Result
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			got = nil
			json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			if (want > 0 && len(got) >= want) || (want == 0 && len(got) > 0) {
				// Give a late duplicate a moment to show itself.
				time.Sleep(500 * time.Millisecond)
				if resp, err := http.Get(api); err == nil {
					got = nil
					json.NewDecoder(resp.Body).Decode(&got)
					resp.Body.Close()
				}
				return got, nil
			}
		}
		if time.Now().After(deadline) {
			return got, fmt.Errorf("stargazers-api at %s holds %d results after waiting; expected %d (see ktrace stack logs)", api, len(got), want)
		}
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
