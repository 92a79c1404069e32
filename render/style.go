package render

import (
	"fmt"
	"strconv"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// Style says how text output looks.
type Style struct {
	// TTY selects the boxed table; otherwise tables are tab-separated.
	TTY bool
	// Color enables ANSI colour (only honoured with TTY).
	Color bool
}

func (s Style) renderer() *lipgloss.Renderer {
	r := lipgloss.NewRenderer(nil)
	if s.Color {
		r.SetColorProfile(termenv.ANSI256)
	} else {
		r.SetColorProfile(termenv.Ascii)
	}
	return r
}

var (
	colorOK   = lipgloss.Color("2")
	colorBad  = lipgloss.Color("1")
	colorWarn = lipgloss.Color("3")
)

// human formats a duration for people: three significant figures.
func human(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < 0:
		return "-" + human(-d)
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'g', 3, 64) + "µs"
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'g', 3, 64) + "ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'g', 3, 64) + "s"
}

// millis formats a duration as milliseconds with microsecond precision, for
// machines.
func millis(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
}
