package render

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/trace"
)

// ReportJSON is the stable JSON shape of `ktrace report --broken -o json`.
type ReportJSON struct {
	Version    int           `json:"version"`
	Traces     int           `json:"traces"`
	Spans      int           `json:"spans"`
	Incomplete []string      `json:"incomplete"`
	Findings   []FindingJSON `json:"findings"`
	// Unverifiable are the hops whose other end is not in the data
	// (rules unverified-hop, unverified-output): not breaks.
	Unverifiable []FindingJSON `json:"unverifiable"`
	// Coverage is what the data says of each service's sampling.
	Coverage []CoverageJSON `json:"coverage"`
}

// CoverageJSON is a service's estimated coverage: the share of its traces
// the data holds, null when it cannot be told (basis says why).
type CoverageJSON struct {
	Service  string   `json:"service"`
	Estimate *float64 `json:"estimate"`
	Basis    string   `json:"basis"`
}

// FindingJSON is one break point.
type FindingJSON struct {
	Rule        string        `json:"rule"`
	Where       string        `json:"where"`
	Service     string        `json:"service"`
	Topic       string        `json:"topic,omitempty"`
	From        []string      `json:"from,omitempty"`
	Group       string        `json:"group,omitempty"`
	Traces      int           `json:"traces"`
	Occurrences int           `json:"occurrences"`
	MaxSkewMs   float64       `json:"max_skew_ms,omitempty"`
	Examples    []ExampleJSON `json:"examples"`
}

// ExampleJSON is an example trace, with a Jaeger UI link when one was asked for.
type ExampleJSON struct {
	TraceID string `json:"trace_id"`
	URL     string `json:"url,omitempty"`
}

// TraceURL is the Jaeger UI page of a trace, or "" without a UI URL.
func TraceURL(ui string, id trace.TraceID) string {
	if ui == "" {
		return ""
	}
	return strings.TrimRight(ui, "/") + "/trace/" + id.String()
}

// ReportToJSON converts a report.
func ReportToJSON(r analyze.Report, ui string) ReportJSON {
	out := ReportJSON{Version: 1, Traces: r.Traces, Spans: r.Spans, Incomplete: []string{}, Findings: []FindingJSON{}, Unverifiable: []FindingJSON{}}
	for _, id := range r.Incomplete {
		out.Incomplete = append(out.Incomplete, id.String())
	}
	for _, f := range r.Findings {
		out.Findings = append(out.Findings, findingJSON(f, ui))
	}
	for _, f := range r.Unverifiable {
		out.Unverifiable = append(out.Unverifiable, findingJSON(f, ui))
	}
	out.Coverage = []CoverageJSON{}
	for _, c := range r.Coverage {
		cj := CoverageJSON{Service: c.Service, Basis: c.Basis}
		if c.Estimate >= 0 {
			cj.Estimate = &c.Estimate
		}
		out.Coverage = append(out.Coverage, cj)
	}
	return out
}

// samplingSummary says what the data says of sampling, when it says any
// service was sampled or some hop could not be told; else "".
func samplingSummary(r analyze.Report, text func(string) string) string {
	var known, unknown []string
	sampled := len(r.Unverifiable) > 0
	for _, c := range r.Coverage {
		if c.Estimate < 0 {
			unknown = append(unknown, text(c.Service))
			continue
		}
		sampled = sampled || c.Estimate < 1
		known = append(known, fmt.Sprintf("%s %.0f%% (%s)", text(c.Service), 100*c.Estimate, text(c.Basis)))
	}
	if !sampled {
		return ""
	}
	s := "sampling: "
	if len(known) > 0 {
		s += "traces kept: " + strings.Join(known, "; ")
	}
	if len(unknown) > 0 {
		if len(known) > 0 {
			s += "; "
		}
		s += "cannot be told for " + strings.Join(unknown, ", ")
	}
	return s
}

func findingJSON(f analyze.Finding, ui string) FindingJSON {
	fj := FindingJSON{Rule: string(f.Rule), Where: f.Where, Service: f.Service, Topic: f.Topic, From: f.From, Group: f.Group,
		Traces: f.Traces, Occurrences: f.Occurrences, MaxSkewMs: ms(f.MaxSkew), Examples: []ExampleJSON{}}
	for _, id := range f.Examples {
		fj.Examples = append(fj.Examples, ExampleJSON{TraceID: id.String(), URL: TraceURL(ui, id)})
	}
	return fj
}

// unverifiedSummary says how many hops could not be told, or "".
func unverifiedSummary(r analyze.Report) string {
	if len(r.Unverifiable) == 0 {
		return ""
	}
	n := 0
	for _, f := range r.Unverifiable {
		n += f.Occurrences
	}
	return fmt.Sprintf("%s in %s cannot be told: the other end is not in the data (sampled out?)",
		N(n, "record"), N(len(r.Unverifiable), "place"))
}

var reportHeader = []string{"RULE", "WHERE", "TRACES", "OCCURRENCES", "EXAMPLE"}

func example(f analyze.Finding, ui string) string {
	if len(f.Examples) == 0 {
		return "-"
	}
	if u := TraceURL(ui, f.Examples[0]); u != "" {
		return u
	}
	return f.Examples[0].String()
}

// ReportText writes the findings as a table (boxed on a terminal, else
// tab-separated with a header), then a summary line.
func ReportText(w io.Writer, r analyze.Report, ui string, st Style) error {
	text := Terminal
	if !st.TTY {
		text = TSV
	}
	rows := make([][]string, 0, len(r.Findings)+len(r.Unverifiable))
	// The unverifiable come after the breaks, their rule telling them apart.
	for _, f := range append(r.Findings[:len(r.Findings):len(r.Findings)], r.Unverifiable...) {
		rows = append(rows, []string{string(f.Rule), text(f.Where), strconv.Itoa(f.Traces), strconv.Itoa(f.Occurrences), text(example(f, ui))})
	}
	summary := fmt.Sprintf("%s in %s (%s)", N(len(r.Findings), "break point"), N(r.Traces, "trace"), N(r.Spans, "span"))
	if len(r.Incomplete) > 0 {
		summary += fmt.Sprintf("; %s still arriving left out as incomplete", N(len(r.Incomplete), "trace"))
	}
	if u := unverifiedSummary(r); u != "" {
		summary += "; " + u
	}
	if smp := samplingSummary(r, text); smp != "" {
		summary += "\n" + smp
	}
	if !st.TTY {
		var b strings.Builder
		b.WriteString(strings.Join(reportHeader, "\t") + "\n")
		for _, row := range rows {
			b.WriteString(strings.Join(row, "\t") + "\n")
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintf(w, "no breaks: every hop carries its trace context\n%s\n", summary)
		return err
	}
	breaks := len(r.Findings)
	rows = fit(reportHeader, rows, st.Width, 1, 4)
	rd := st.renderer()
	head := rd.NewStyle().Bold(true).Padding(0, 1)
	cell := rd.NewStyle().Padding(0, 1)
	rule := cell.Foreground(lipgloss.Color("1"))
	t := table.New().Border(lipgloss.RoundedBorder()).BorderStyle(rd.NewStyle().Faint(true)).
		Headers(reportHeader...).Rows(rows...).
		StyleFunc(func(row, col int) lipgloss.Style {
			switch {
			case row == table.HeaderRow:
				return head
			case col == 0 && row < breaks:
				return rule
			case row >= breaks:
				return cell.Faint(true)
			}
			return cell
		})
	_, err := fmt.Fprintf(w, "%s\n%s\n", t.Render(), summary)
	return err
}

// ReportMarkdown writes the findings as a Markdown table, for pull requests.
func ReportMarkdown(w io.Writer, r analyze.Report, ui string) error {
	var b strings.Builder
	b.WriteString("## Where traces break\n\n")
	if len(r.Findings) == 0 {
		b.WriteString("No breaks: every hop carries its trace context.\n")
	} else {
		b.WriteString("| rule | where | traces | occurrences | examples |\n|---|---|---:|---:|---|\n")
		for _, f := range r.Findings {
			var ex []string
			for _, id := range f.Examples {
				if u := TraceURL(ui, id); u != "" {
					ex = append(ex, fmt.Sprintf("[`%s`](%s)", id.String()[:8], u))
				} else {
					ex = append(ex, "`"+id.String()+"`")
				}
			}
			fmt.Fprintf(&b, "| `%s` | %s | %d | %d | %s |\n", f.Rule, Markdown(f.Where), f.Traces, f.Occurrences, strings.Join(ex, " "))
		}
	}
	if len(r.Unverifiable) > 0 {
		b.WriteString("\n### Cannot be told\n\nThe other end of these hops is not in the data (sampled out?), so whether they carry their trace context cannot be told. They are not breaks.\n\n")
		b.WriteString("| rule | where | traces | occurrences |\n|---|---|---:|---:|\n")
		for _, f := range r.Unverifiable {
			fmt.Fprintf(&b, "| `%s` | %s | %d | %d |\n", f.Rule, Markdown(f.Where), f.Traces, f.Occurrences)
		}
	}
	if smp := samplingSummary(r, Markdown); smp != "" {
		b.WriteString("\n" + smp + "\n")
	}
	fmt.Fprintf(&b, "\n%s, %s analysed", N(r.Traces, "trace"), N(r.Spans, "span"))
	if len(r.Incomplete) > 0 {
		fmt.Fprintf(&b, "; %d incomplete traces left out", len(r.Incomplete))
	}
	b.WriteString(".\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// ReportSentences writes one sentence per finding, for people reading a
// demo or a log; text escapes the names in them for where they go
// (Terminal, Markdown). Without counts, the sentences leave out how many
// records and traces each finding saw, and its example.
func ReportSentences(w io.Writer, r analyze.Report, text func(string) string, counts bool) error {
	if len(r.Findings) == 0 {
		_, err := fmt.Fprintln(w, "no breaks: every hop carries its trace context")
		for _, line := range []string{unverifiedSummary(r), samplingSummary(r, text)} {
			if line != "" && err == nil {
				_, err = fmt.Fprintln(w, line)
			}
		}
		return err
	}
	for _, f := range r.Findings {
		var s string
		switch f.Rule {
		case analyze.RuleLostInside:
			from := make([]string, len(f.From))
			for i, t := range f.From {
				from[i] = text(t)
			}
			s = fmt.Sprintf("context lost inside %s: %s → %s", text(f.Service), strings.Join(from, ", "), text(f.Topic))
			if counts {
				s += fmt.Sprintf(" (%s start new traces)", N(f.Occurrences, "record"))
			}
		case analyze.RuleLostHop:
			s = fmt.Sprintf("context lost between %s (group %s", text(f.Where), text(f.Group))
			if counts {
				s += ", " + N(f.Occurrences, "record")
			}
			s += ")"
		default:
			s = fmt.Sprintf("%s: %s", f.Rule, text(f.Where))
			if counts {
				s += " (" + N(f.Traces, "trace") + ")"
			}
		}
		if counts && len(f.Examples) > 0 {
			s += ", e.g. trace " + f.Examples[0].String()
		}
		if _, err := fmt.Fprintln(w, s); err != nil {
			return err
		}
	}
	for _, line := range []string{unverifiedSummary(r), samplingSummary(r, text)} {
		if line != "" {
			if _, err := fmt.Fprintln(w, line); err != nil {
				return err
			}
		}
	}
	return nil
}
