package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"

	"github.com/ktrace-dev/ktrace/analyze"
)

// SPOFJSON is the stable JSON shape of `ktrace spof -o json`.
type SPOFJSON struct {
	Version  int               `json:"version"`
	Nodes    int               `json:"nodes"`
	Entries  []string          `json:"entries"`
	Findings []SPOFFindingJSON `json:"findings"`
}

// SPOFFindingJSON is one single point of failure.
type SPOFFindingJSON struct {
	Kind    string   `json:"kind"`
	Node    string   `json:"node"`
	Reason  string   `json:"reason"`
	Blast   []string `json:"blast_radius"`
	Entries []string `json:"entries_cut_off"`
}

// SPOFToJSON converts a report.
func SPOFToJSON(r analyze.SPOFReport) SPOFJSON {
	out := SPOFJSON{Version: 1, Nodes: r.Nodes, Entries: r.Entries, Findings: []SPOFFindingJSON{}}
	if out.Entries == nil {
		out.Entries = []string{}
	}
	for _, f := range r.Findings {
		fj := SPOFFindingJSON{Kind: f.Kind, Node: f.Node, Reason: f.Reason, Blast: f.Blast, Entries: f.Entries}
		if fj.Blast == nil {
			fj.Blast = []string{}
		}
		if fj.Entries == nil {
			fj.Entries = []string{}
		}
		out.Findings = append(out.Findings, fj)
	}
	return out
}

var spofHeader = []string{"KIND", "NODE", "REASON", "BLAST RADIUS"}

func blastText(f analyze.SPOFFinding) string {
	if len(f.Blast) == 0 {
		return "-"
	}
	return fmt.Sprintf("%d: %s", len(f.Blast), strings.Join(f.Blast, ", "))
}

// SPOFText writes the findings, largest blast radius first.
func SPOFText(w io.Writer, r analyze.SPOFReport, st Style) error {
	if r.Nodes < 2 {
		_, err := fmt.Fprintf(w, "nothing to analyse: the graph has %d node(s); single points of failure need at least two\n", r.Nodes)
		return err
	}
	text := Terminal
	if !st.TTY {
		text = TSV
	}
	rows := make([][]string, len(r.Findings))
	for i, f := range r.Findings {
		rows[i] = []string{f.Kind, text(f.Node), text(f.Reason), text(blastText(f))}
	}
	summary := Terminal(fmt.Sprintf("%s in %s; entry points: %s", N(len(r.Findings), "finding"), N(r.Nodes, "node"), strings.Join(r.Entries, ", ")))
	if !st.TTY {
		var b strings.Builder
		b.WriteString(strings.Join(spofHeader, "\t") + "\n")
		for _, row := range rows {
			b.WriteString(strings.Join(row, "\t") + "\n")
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	rows = fit(spofHeader, rows, st.Width, 1, 2, 3)
	rd := st.renderer()
	head := rd.NewStyle().Bold(true).Padding(0, 1)
	cell := rd.NewStyle().Padding(0, 1)
	t := table.New().Border(lipgloss.RoundedBorder()).BorderStyle(rd.NewStyle().Faint(true)).
		Headers(spofHeader...).Rows(rows...).
		StyleFunc(func(row, col int) lipgloss.Style {
			switch {
			case row == table.HeaderRow:
				return head
			case col == 0:
				return cell.Foreground(colorBad)
			}
			return cell
		})
	_, err := fmt.Fprintf(w, "%s\n%s\n", t.Render(), summary)
	return err
}

// SPOFNodes are the node keys of the findings (a bridge marks both ends).
func SPOFNodes(r analyze.SPOFReport) map[string]bool {
	hl := map[string]bool{}
	for _, f := range r.Findings {
		if a, b, ok := strings.Cut(f.Node, " -> "); ok {
			hl[a], hl[b] = true, true
		} else {
			hl[f.Node] = true
		}
	}
	return hl
}
