package cli

import (
	"io"
	"os"

	"golang.org/x/term"

	"github.com/ktrace-dev/ktrace/render"
)

// IOStreams are a command's standard streams and what is known of them.
type IOStreams struct {
	In          io.Reader
	Out, ErrOut io.Writer
	// OutTTY and ErrTTY say whether stdout / stderr are terminals.
	OutTTY, ErrTTY bool
	// NoColor is set when NO_COLOR is non-empty or TERM is "dumb".
	NoColor bool
	// Width is stdout's terminal width in cells (0: not a terminal, or
	// unknown); tables are cut to fit it.
	Width int
	// Getenv reads the environment.
	Getenv func(string) string
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// SystemIO returns the process's streams.
func SystemIO() *IOStreams {
	s := &IOStreams{
		In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
		OutTTY: isTerminal(os.Stdout), ErrTTY: isTerminal(os.Stderr),
		NoColor: noColor(os.Getenv),
		Getenv:  os.Getenv,
	}
	if s.OutTTY {
		if w, _, err := term.GetSize(int(os.Stdout.Fd())); err == nil {
			s.Width = w
		}
	}
	return s
}

// noColor reports whether the environment turns colour off: NO_COLOR with
// any non-empty value, or TERM=dumb.
func noColor(getenv func(string) string) bool {
	return getenv("NO_COLOR") != "" || getenv("TERM") == "dumb"
}

// Style is the text style for stdout.
func (s *IOStreams) Style() render.Style {
	return render.Style{TTY: s.OutTTY, Color: s.OutTTY && !s.NoColor, Width: s.Width}
}
