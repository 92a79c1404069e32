package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"
	"github.com/charmbracelet/x/ansi"

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
	// Minor: true, but not shown in the table (see analyze.SPOFFinding).
	Minor bool `json:"minor,omitempty"`
}

// SPOFToJSON converts a report.
func SPOFToJSON(r analyze.SPOFReport) SPOFJSON {
	out := SPOFJSON{Version: 1, Nodes: r.Nodes, Entries: r.Entries, Findings: []SPOFFindingJSON{}}
	if out.Entries == nil {
		out.Entries = []string{}
	}
	for _, f := range r.Findings {
		fj := SPOFFindingJSON{Kind: f.Kind, Node: f.Node, Reason: f.Reason, Blast: f.Blast, Entries: f.Entries, Minor: f.Minor}
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

var spofHeader = []string{"NODE", "RISKS", "WHY", "BLAST RADIUS"}

func blastText(blast []string) string {
	if len(blast) == 0 {
		return "-"
	}
	return fmt.Sprintf("%d: %s", len(blast), strings.Join(blast, ", "))
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
	nodes := r.ByNode()
	rows := make([][]string, len(nodes))
	for i, n := range nodes {
		rows[i] = []string{text(n.Node), strings.Join(n.Kinds, ", "), text(strings.Join(n.Reasons, "; ")), text(blastText(n.Blast))}
	}
	summary := Terminal(fmt.Sprintf("%d of %s at risk (-o json lists every finding); entry points: %s", len(nodes), N(r.Nodes, "node"), strings.Join(r.Entries, ", ")))
	if st.Width > 0 {
		summary = ansi.Truncate(summary, st.Width, "…")
	}
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
			case col == 1:
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
		if f.Minor {
			continue
		}
		if a, b, ok := strings.Cut(f.Node, " -> "); ok {
			hl[a], hl[b] = true, true
		} else {
			hl[f.Node] = true
		}
	}
	return hl
}
