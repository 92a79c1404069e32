package render

import (
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/trace"
)

// CheckJSON is the stable JSON shape of `ktrace check -o json`.
type CheckJSON struct {
	Version int        `json:"version"`
	Verdict string     `json:"verdict"`
	Flows   []FlowJSON `json:"flows"`
}

// FlowJSON is one flow's outcome.
type FlowJSON struct {
	Name          string    `json:"name"`
	Verdict       string    `json:"verdict"`
	Reason        string    `json:"reason,omitempty"`
	Continuity    float64   `json:"continuity"`
	MinContinuity float64   `json:"min_continuity"`
	Reaching      int       `json:"traces_reaching_end"`
	Covering      int       `json:"traces_covering_flow"`
	Unverifiable  int       `json:"traces_unverifiable"`
	MinTraces     int       `json:"min_traces"`
	Examples      []string  `json:"example_trace_ids"`
	Hops          []HopJSON `json:"hops"`
}

// HopJSON is one hop's outcome.
type HopJSON struct {
	From       string `json:"from"`
	To         string `json:"to"`
	Kind       string `json:"kind"`
	Relation   string `json:"relation"`
	Seen       int    `json:"seen"`
	Continuous int    `json:"continuous"`
	// Unverifiable are the seen spans whose other end is not in the data
	// (UnverifiableReason says how): left out of the continuity.
	Unverifiable       int      `json:"unverifiable"`
	UnverifiableReason string   `json:"unverifiable_reason,omitempty"`
	Continuity         float64  `json:"continuity"`
	P99Ms              float64  `json:"p99_ms"`
	MaxLatency         float64  `json:"max_latency_ms,omitempty"`
	Verdict            string   `json:"verdict"`
	Reason             string   `json:"reason,omitempty"`
	Examples           []string `json:"example_trace_ids"`
}

func ids(list []trace.TraceID) []string {
	out := []string{}
	for _, id := range list {
		out = append(out, id.String())
	}
	return out
}

// Overall is the verdict of several flows: fail beats inconclusive beats pass.
func Overall(flows []analyze.FlowResult) analyze.Verdict {
	v := analyze.Pass
	for _, f := range flows {
		if f.Verdict == analyze.Fail {
			return analyze.Fail
		}
		if f.Verdict == analyze.Inconclusive {
			v = analyze.Inconclusive
		}
	}
	return v
}

// CheckToJSON converts check results.
func CheckToJSON(flows []analyze.FlowResult) CheckJSON {
	out := CheckJSON{Version: 1, Verdict: string(Overall(flows)), Flows: []FlowJSON{}}
	for _, f := range flows {
		fj := FlowJSON{Name: f.Name, Verdict: string(f.Verdict), Reason: f.Reason, Continuity: f.Continuity, MinContinuity: f.MinContinuity,
			Reaching: f.Reaching, Covering: f.Covering, Unverifiable: f.Unverifiable, MinTraces: f.MinTraces, Examples: ids(f.Examples), Hops: []HopJSON{}}
		for _, h := range f.Hops {
			fj.Hops = append(fj.Hops, HopJSON{From: h.From, To: h.To, Kind: h.Kind, Relation: string(h.Relation), Seen: h.Seen,
				Continuous: h.Continuous, Unverifiable: h.Unverifiable, UnverifiableReason: h.Why, Continuity: h.Continuity, P99Ms: ms(h.P99), MaxLatency: ms(h.MaxLatency),
				Verdict: string(h.Verdict), Reason: h.Reason, Examples: ids(h.Examples)})
		}
		out.Flows = append(out.Flows, fj)
	}
	return out
}

// hopCount is a hop's continuous spans over its verifiable ones, and how
// many could not be told: "7/9", "7/7 +2 unverifiable".
func hopCount(h analyze.HopResult) string {
	c := fmt.Sprintf("%d/%d", h.Continuous, h.Seen-h.Unverifiable)
	if h.Unverifiable > 0 {
		c += fmt.Sprintf(" +%d unverifiable", h.Unverifiable)
	}
	return c
}

var marks = map[analyze.Verdict]string{analyze.Pass: "✓", analyze.Fail: "✗", analyze.Inconclusive: "?"}

// CheckText writes a summary for people.
func CheckText(w io.Writer, flows []analyze.FlowResult, ui string, st Style) error {
	r := st.renderer()
	colour := map[analyze.Verdict]func(string) string{
		analyze.Pass:         func(s string) string { return r.NewStyle().Foreground(colorOK).Render(s) },
		analyze.Fail:         func(s string) string { return r.NewStyle().Foreground(colorBad).Bold(true).Render(s) },
		analyze.Inconclusive: func(s string) string { return r.NewStyle().Foreground(colorWarn).Render(s) },
	}
	var b strings.Builder
	for _, f := range flows {
		what := "traces reaching the end cover the flow"
		if f.Unit == "records" {
			what = "records continue their trace"
		}
		unverified := ""
		if f.Unverifiable > 0 {
			unverified = fmt.Sprintf("; %d more cannot be told", f.Unverifiable)
		}
		fmt.Fprintf(&b, "%s flow %s: %s — continuity %.2f (%d of %d %s%s; min %.2f)\n",
			colour[f.Verdict](marks[f.Verdict]), Terminal(f.Name), colour[f.Verdict](strings.ToUpper(string(f.Verdict))), f.Continuity,
			f.Covering, f.Reaching, what, unverified, f.MinContinuity)
		for _, h := range f.Hops {
			lat := "-"
			if h.P99 > 0 {
				lat = human(h.P99)
			}
			fmt.Fprintf(&b, "    %s %s → %s\t%s\t%s\t%.2f\tp99 %s", colour[h.Verdict](marks[h.Verdict]), Terminal(h.From), Terminal(h.To), h.Relation,
				hopCount(h), h.Continuity, lat)
			if h.Reason != "" {
				fmt.Fprintf(&b, "\t%s", Terminal(h.Reason))
			}
			if len(h.Examples) > 0 {
				ex := h.Examples[0].String()
				if u := TraceURL(ui, h.Examples[0]); u != "" {
					ex = u
				}
				fmt.Fprintf(&b, "\te.g. %s", ex)
			}
			b.WriteByte('\n')
		}
		if f.Verdict != analyze.Pass && f.Reason != "" {
			fmt.Fprintf(&b, "    %s\n", Terminal(f.Reason))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// JUnit writes a JUnit XML report: a suite per flow, a test case per hop.
// A hop below its threshold is a failure; a hop never seen is an error
// (inconclusive, not broken).
func JUnit(w io.Writer, flows []analyze.FlowResult) error {
	type failure struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Text    string `xml:",chardata"`
	}
	type testcase struct {
		Name      string   `xml:"name,attr"`
		Classname string   `xml:"classname,attr"`
		Failure   *failure `xml:"failure,omitempty"`
		Error     *failure `xml:"error,omitempty"`
		Output    string   `xml:"system-out,omitempty"`
	}
	type suite struct {
		Name     string     `xml:"name,attr"`
		Tests    int        `xml:"tests,attr"`
		Failures int        `xml:"failures,attr"`
		Errors   int        `xml:"errors,attr"`
		Cases    []testcase `xml:"testcase"`
	}
	type suites struct {
		XMLName  xml.Name `xml:"testsuites"`
		Name     string   `xml:"name,attr"`
		Tests    int      `xml:"tests,attr"`
		Failures int      `xml:"failures,attr"`
		Errors   int      `xml:"errors,attr"`
		Suites   []suite  `xml:"testsuite"`
	}
	all := suites{Name: "ktrace check"}
	for _, f := range flows {
		s := suite{Name: f.Name}
		for _, h := range f.Hops {
			tc := testcase{Name: h.From + " → " + h.To, Classname: "ktrace.check." + f.Name,
				Output: fmt.Sprintf("%s continue (%s), continuity %.4f", hopCount(h), h.Relation, h.Continuity)}
			detail := h.Reason
			if len(h.Examples) > 0 {
				detail += "; example traces: " + strings.Join(ids(h.Examples), " ")
			}
			switch h.Verdict {
			case analyze.Fail:
				tc.Failure = &failure{Message: h.Reason, Type: "broken-hop", Text: detail}
				s.Failures++
			case analyze.Inconclusive:
				tc.Error = &failure{Message: "inconclusive: " + h.Reason, Type: "inconclusive", Text: detail}
				s.Errors++
			}
			s.Cases = append(s.Cases, tc)
		}
		s.Tests = len(s.Cases)
		all.Tests += s.Tests
		all.Failures += s.Failures
		all.Errors += s.Errors
		all.Suites = append(all.Suites, s)
	}
	io.WriteString(w, xml.Header)
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// SARIF writes a SARIF 2.1.0 log with one result per failing hop, located
// at the hop's line in the spec (or at the flow when there is no spec).
func SARIF(w io.Writer, flows []analyze.FlowResult, version string) error {
	type region struct {
		StartLine int `json:"startLine"`
	}
	type location struct {
		PhysicalLocation struct {
			ArtifactLocation struct {
				URI string `json:"uri"`
			} `json:"artifactLocation"`
			Region *region `json:"region,omitempty"`
		} `json:"physicalLocation"`
	}
	type message struct {
		Text string `json:"text"`
	}
	type result struct {
		RuleID    string     `json:"ruleId"`
		Level     string     `json:"level"`
		Message   message    `json:"message"`
		Locations []location `json:"locations,omitempty"`
	}
	type rule struct {
		ID               string  `json:"id"`
		ShortDescription message `json:"shortDescription"`
	}
	var results []result
	for _, f := range flows {
		for _, h := range f.Hops {
			if h.Verdict == analyze.Pass {
				continue
			}
			r := result{RuleID: "broken-hop", Level: "error",
				Message: message{Text: fmt.Sprintf("flow %s, hop %s → %s: %s", f.Name, h.From, h.To, h.Reason)}}
			if h.Verdict == analyze.Inconclusive {
				r.RuleID, r.Level = "inconclusive-hop", "warning"
			} else if len(h.Examples) > 0 {
				r.Message.Text += "; example traces: " + strings.Join(ids(h.Examples), " ")
			}
			if f.File != "" {
				var loc location
				loc.PhysicalLocation.ArtifactLocation.URI = f.File
				if h.Line > 0 {
					loc.PhysicalLocation.Region = &region{StartLine: h.Line}
				}
				r.Locations = append(r.Locations, loc)
			}
			results = append(results, r)
		}
	}
	if results == nil {
		results = []result{}
	}
	doc := map[string]any{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs": []any{map[string]any{
			"tool": map[string]any{"driver": map[string]any{
				"name": "ktrace", "version": version, "informationUri": "https://github.com/ktrace-dev/ktrace",
				"rules": []rule{
					{ID: "broken-hop", ShortDescription: message{Text: "Trace context is lost at this hop more often than the flow allows"}},
					{ID: "inconclusive-hop", ShortDescription: message{Text: "This hop was not seen in the traces"}},
				},
			}},
			"results": results,
		}},
	}
	return JSON(w, doc)
}

// GitHub writes workflow-command annotations for failing hops to w, and
// appends a Markdown summary with a Mermaid diagram of each flow (the
// broken hop in red) to summaryPath when it is not empty.
func GitHub(w io.Writer, flows []analyze.FlowResult, summaryPath string) error {
	// Workflow commands: % and line breaks are escaped in a message, and
	// : and , too in a property.
	esc := strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A")
	prop := strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C")
	for _, f := range flows {
		for _, h := range f.Hops {
			if h.Verdict == analyze.Pass {
				continue
			}
			level := "error"
			if h.Verdict == analyze.Inconclusive {
				level = "warning"
			}
			loc := ""
			if f.File != "" {
				loc = fmt.Sprintf(" file=%s,line=%d,", prop.Replace(f.File), h.Line)
			}
			msg := Terminal(fmt.Sprintf("flow %s, hop %s → %s: %s", f.Name, h.From, h.To, h.Reason))
			if len(h.Examples) > 0 {
				msg += "; e.g. trace " + h.Examples[0].String()
			}
			if loc == "" {
				fmt.Fprintf(w, "::%s title=ktrace check::%s\n", level, esc.Replace(msg))
			} else {
				fmt.Fprintf(w, "::%s%stitle=ktrace check::%s\n", level, loc, esc.Replace(msg))
			}
		}
	}
	if summaryPath == "" {
		return nil
	}
	var b strings.Builder
	b.WriteString("## ktrace check\n\n")
	for _, f := range flows {
		fmt.Fprintf(&b, "### %s flow %s: %s\n\n", marks[f.Verdict], Markdown(f.Name), strings.ToUpper(string(f.Verdict)))
		unverified := ""
		if f.Unverifiable > 0 {
			unverified = fmt.Sprintf("; %d more cannot be told", f.Unverifiable)
		}
		fmt.Fprintf(&b, "Continuity **%.2f** (%d of %d traces reaching the end cover the flow%s; minimum %.2f).\n\n", f.Continuity, f.Covering, f.Reaching, unverified, f.MinContinuity)
		if len(f.Hops) > 0 {
			b.WriteString("```mermaid\nflowchart LR\n")
			nodeID := map[string]string{}
			idOf := func(name string) string {
				if id, ok := nodeID[name]; ok {
					return id
				}
				id := "n" + strconv.Itoa(len(nodeID))
				nodeID[name] = id
				fmt.Fprintf(&b, "  %s[\"%s\"]\n", id, mermaidText(name))
				return id
			}
			var bad []int
			for i, h := range f.Hops {
				from, to := idOf(h.From), idOf(h.To)
				fmt.Fprintf(&b, "  %s -->|\"%s\"| %s\n", from, mermaidText(hopCount(h)), to)
				if h.Verdict != analyze.Pass {
					bad = append(bad, i)
				}
			}
			for _, i := range bad {
				fmt.Fprintf(&b, "  linkStyle %d stroke:#d33,stroke-width:3px,color:#d33\n", i)
			}
			b.WriteString("```\n\n")
		}
		b.WriteString("| hop | relation | continuous | continuity | p99 | verdict |\n|---|---|---:|---:|---:|---|\n")
		for _, h := range f.Hops {
			fmt.Fprintf(&b, "| %s → %s | %s | %s | %.2f | %s | %s %s |\n", Markdown(h.From), Markdown(h.To), h.Relation, hopCount(h), h.Continuity,
				human(h.P99), marks[h.Verdict], Markdown(h.Reason))
		}
		b.WriteString("\n")
	}
	fh, err := os.OpenFile(summaryPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("writing the step summary: %w", err)
	}
	defer fh.Close()
	_, err = io.WriteString(fh, b.String())
	return err
}
