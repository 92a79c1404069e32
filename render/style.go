package render

import (
	"fmt"
	"strconv"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"
)

// Style says how text output looks.
type Style struct {
	// TTY selects the boxed table; otherwise tables are tab-separated.
	TTY bool
	// Color enables ANSI colour (only honoured with TTY).
	Color bool
	// Width is the terminal's width in cells; tables are cut to fit it
	// (long names end in "…"; -o tsv and -o json keep them whole). Zero
	// means unknown.
	Width int
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

// fit cuts the cells of a table's columns, widest first, with an ellipsis,
// until the table (with lipgloss's rounded border and one space of
// padding each side) is no wider than width. Only the columns in cut are
// cut, and none below 8 cells. Width 0 means unknown: nothing is cut.
func fit(header []string, rows [][]string, width int, cut ...int) [][]string {
	if width <= 0 || len(header) == 0 {
		return rows
	}
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = ansi.StringWidth(h)
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], ansi.StringWidth(c))
		}
	}
	total := func() int {
		t := 1 // the left border
		for _, w := range widths {
			t += w + 3 // padding and the border after
		}
		return t
	}
	limited := map[int]bool{}
	for total() > width {
		widest := -1
		for _, i := range cut {
			if widths[i] > 8 && (widest < 0 || widths[i] > widths[widest]) {
				widest = i
			}
		}
		if widest < 0 {
			break // as narrow as it goes
		}
		widths[widest]--
		limited[widest] = true
	}
	out := make([][]string, len(rows))
	for r, row := range rows {
		out[r] = append([]string(nil), row...)
		for i := range limited {
			out[r][i] = ansi.Truncate(row[i], widths[i], "…")
		}
	}
	return out
}
