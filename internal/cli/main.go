package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ktrace-dev/ktrace/render"
)

// version is stamped at build time:
//
//	go build -ldflags "-X github.com/ktrace-dev/ktrace/internal/cli.version=v1.2.3"
var version = ""

// Version returns the stamped version (a release), else what the Go
// toolchain recorded: the module version `go install` gives, the commit a
// `go build` in a clone was made from and whether its tree had changes,
// and the Go version.
func Version() string {
	bi, _ := debug.ReadBuildInfo()
	return versionFrom(version, bi)
}

func versionFrom(stamp string, bi *debug.BuildInfo) string {
	if stamp != "" {
		return stamp
	}
	if bi == nil {
		return "dev"
	}
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	var details []string
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		details = append(details, "commit "+rev[:min(12, len(rev))])
		if settings["vcs.modified"] == "true" {
			details = append(details, "modified")
		}
		if t := settings["vcs.time"]; t != "" {
			details = append(details, t)
		}
	}
	if bi.GoVersion != "" {
		details = append(details, bi.GoVersion)
	}
	if len(details) == 0 {
		return v
	}
	return v + " (" + strings.Join(details, ", ") + ")"
}

// usageError marks errors in how ktrace was called.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// NewRootCmd builds the command tree.
func NewRootCmd(ios *IOStreams) *cobra.Command {
	root := &cobra.Command{
		Use:   "ktrace",
		Short: "See where traces break in Kafka-connected systems",
		Long: `ktrace rebuilds the service graph of an event-driven system from its traces
(Jaeger or files), with Kafka topics as nodes, and shows where trace context
is lost between services.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version(),
	}
	root.SetIn(ios.In)
	root.SetOut(ios.Out)
	root.SetErr(ios.ErrOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.AddCommand(
		NewCmdGraph(ios, nil),
		NewCmdPull(ios, nil),
		NewCmdServices(ios, nil),
		NewCmdReport(ios, nil),
		NewCmdCheck(ios, nil),
		NewCmdSPOF(ios, nil),
		NewCmdDiff(ios, nil),
		NewCmdDocs(ios, nil),
		NewCmdServe(ios, nil),
		NewCmdStream(ios, nil),
		NewCmdStack(ios),
		NewCmdDemo(ios),
		NewCmdVersion(ios),
	)
	return root
}

// Main runs ktrace with args and returns the exit code.
func Main(args []string, ios *IOStreams) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	root := NewRootCmd(ios)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) && ee.err == errSilent {
		return ee.code
	}
	// Errors may quote input (names, IDs): nothing in them reaches the
	// terminal as a control sequence.
	fmt.Fprintln(ios.ErrOut, "ktrace: "+render.Terminal(oneLine(err.Error())))
	return exitCode(err)
}

// errSilent ends a command with an exit code and no message (the command
// already said what it had to).
var errSilent = errors.New("")

// NewCmdVersion prints the version.
func NewCmdVersion(ios *IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print ktrace's version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(ios.Out, "ktrace "+Version())
			return err
		},
	}
}
