package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ktrace-dev/ktrace/render"
	"github.com/ktrace-dev/ktrace/source/file"
	"github.com/ktrace-dev/ktrace/trace"
)

// PullOptions are `ktrace pull`'s inputs.
type PullOptions struct {
	IO     *IOStreams
	Source SourceOptions
	Path   string
	Force  bool
}

// NewCmdPull builds `ktrace pull`.
func NewCmdPull(ios *IOStreams, runF func(context.Context, *PullOptions) error) *cobra.Command {
	opts := &PullOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "pull FILE",
		Short: "Save traces to a snapshot file for offline use",
		Long: `Fetch traces (usually from Jaeger) and write them to a ktrace snapshot:
gzip-compressed, versioned JSON Lines that every command reads with --file.
The file is written under a temporary name and renamed into place, so it is
never left half-written. An existing file is kept unless --force is given.
FILE "-" writes to stdout.`,
		Example: `  ktrace pull --jaeger 127.0.0.1:16685 --lookback 30m traces.ktrace
  ktrace graph --file traces.ktrace`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Path = args[0]
			if err := opts.Source.validate(ios); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return pullRun(cmd.Context(), opts)
		},
	}
	opts.Source.register(cmd)
	cmd.Flags().BoolVar(&opts.Force, "force", false, "overwrite FILE if it exists")
	return cmd
}

func pullRun(ctx context.Context, opts *PullOptions) error {
	var af *file.AtomicFile
	if opts.Path != "-" {
		var err error
		// Fail before fetching if the target exists.
		if af, err = file.CreateAtomic(opts.Path, opts.Force); err != nil {
			return err
		}
		defer af.Abort()
	}
	out := opts.IO.Out
	if af != nil {
		out = af
	}
	sw, err := file.NewSnapshotWriter(out, opts.Source.describe())
	if err != nil {
		return err
	}
	// Jaeger streams into the snapshot, keeping no traces; files are read
	// into one set first (a file may hold a trace in parts).
	var werr error
	traces, spans := 0, 0
	write := func(t *trace.Trace) {
		if werr == nil {
			werr = sw.Write(t)
			traces++
			spans += len(t.Spans)
		}
	}
	if opts.Source.Jaeger != "" && len(opts.Source.Files)+len(opts.Source.Fixtures) == 0 {
		for t, err := range opts.Source.stream(ctx, opts.IO) {
			if err != nil {
				return err
			}
			write(t)
		}
	} else {
		set, err := opts.Source.load(ctx, opts.IO)
		if err != nil {
			return err
		}
		all := set.Traces()
		p := newProgress(opts.IO)
		for i := range all {
			write(&all[i])
			p.update("writing snapshot: %d/%d traces", i+1, len(all))
		}
		p.clear()
	}
	if werr != nil {
		return fmt.Errorf("writing snapshot: %w", werr)
	}
	if err := sw.Close(); err != nil {
		return fmt.Errorf("writing snapshot: %w", err)
	}
	if af != nil {
		if err := af.Commit(); err != nil {
			return fmt.Errorf("writing %s: %w", opts.Path, err)
		}
	}
	fmt.Fprintf(opts.IO.ErrOut, "wrote %s (%s) to %s\n", render.N(traces, "trace"), render.N(spans, "span"), opts.Path)
	return nil
}
