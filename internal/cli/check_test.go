package cli

import (
	"encoding/json"
	"encoding/xml"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktrace-dev/ktrace/internal/testenv"
	"github.com/ktrace-dev/ktrace/render"
	"github.com/ktrace-dev/ktrace/source/file"
)

const spec = "../../examples/stargazers-check.yaml"

// The stargazers flow breaks inside the join with the default join and
// passes with the linked join; the flatten flow passes in both.
func TestCheckRecordedStackRuns(t *testing.T) {
	for fixture, want := range map[string]int{"stargazers-lost": ExitFindings, "stargazers-links": ExitOK} {
		r := run(t, "", nil, "check", "--spec", spec, "--fixture", fixture, "-o", "json")
		if r.code != want {
			t.Fatalf("%s: exit %d, want %d: %s", fixture, r.code, want, r.err)
		}
		var doc render.CheckJSON
		if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
			t.Fatal(err)
		}
		flows := map[string]render.FlowJSON{}
		for _, f := range doc.Flows {
			flows[f.Name] = f
		}
		if flows["flatten"].Verdict != "pass" || flows["flatten"].Reaching != 216 {
			t.Errorf("%s: flatten flow %+v", fixture, flows["flatten"])
		}
		sg := flows["stargazer"]
		if want == ExitOK && (sg.Verdict != "pass" || sg.Covering != 24) {
			t.Errorf("links: stargazer flow %+v", sg)
		}
		if want == ExitFindings {
			hop := sg.Hops[2]
			if sg.Verdict != "fail" || sg.Continuity != 0 || hop.From != "stargazers-join" || hop.To != "stargazers-results" ||
				hop.Verdict != "fail" || hop.Seen != 24 || len(hop.Examples) == 0 || !strings.Contains(sg.Reason, "0.00 < 0.99") {
				t.Errorf("lost: stargazer flow %+v", sg)
			}
		}
	}
}

func TestCheckReports(t *testing.T) {
	dir := t.TempDir()
	junit, sarif, summary := filepath.Join(dir, "c.xml"), filepath.Join(dir, "c.sarif"), filepath.Join(dir, "summary.md")
	env := map[string]string{"GITHUB_STEP_SUMMARY": summary}
	r := run(t, "", env, "check", "--spec", spec, "--fixture", "stargazers-lost", "--junit", junit, "--sarif", sarif, "--github")
	if r.code != ExitFindings {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	if !strings.Contains(r.out, "::error file="+spec+",line=11,title=ktrace check::flow stargazer, hop stargazers-join → stargazers-results: continuity 0.00 < 0.99") {
		t.Errorf("annotation missing:\n%s", r.out)
	}
	var js struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Suites   []struct {
			Name  string `xml:"name,attr"`
			Cases []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	b, _ := os.ReadFile(junit)
	if err := xml.Unmarshal(b, &js); err != nil {
		t.Fatal(err)
	}
	if js.Tests != 7 || js.Failures != 1 || js.Errors != 0 || js.Suites[0].Name != "stargazer" || js.Suites[0].Cases[2].Failure == nil ||
		js.Suites[0].Cases[2].Name != "stargazers-join → stargazers-results" {
		t.Errorf("junit %+v", js)
	}
	var sf struct {
		Version string
		Runs    []struct {
			Results []struct {
				RuleID    string
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string }
						Region           struct{ StartLine int }
					}
				}
			}
		}
	}
	b, _ = os.ReadFile(sarif)
	if err := json.Unmarshal(b, &sf); err != nil {
		t.Fatal(err)
	}
	if sf.Version != "2.1.0" || len(sf.Runs[0].Results) != 1 || sf.Runs[0].Results[0].RuleID != "broken-hop" ||
		sf.Runs[0].Results[0].Locations[0].PhysicalLocation.Region.StartLine != 11 {
		t.Errorf("sarif %s", b)
	}
	md, _ := os.ReadFile(summary)
	if !strings.Contains(string(md), "```mermaid") || !strings.Contains(string(md), "linkStyle 2 stroke:#d33") || !strings.Contains(string(md), "FAIL") {
		t.Errorf("step summary:\n%s", md)
	}
}

func TestCheckSpecless(t *testing.T) {
	r := run(t, "", nil, "check", "--fixture", "kafka-e2e")
	if r.code != ExitFindings || !strings.Contains(r.out, "orders → shipping") {
		t.Errorf("exit %d:\n%s", r.code, r.out)
	}
	if r := run(t, "", nil, "check", "--fixture", "stargazers-links"); r.code != ExitOK {
		t.Errorf("links: exit %d\n%s", r.code, r.out)
	}
	if r := run(t, "", nil, "check", "--fixture", "rpc-chain"); r.code != ExitInconclusive {
		t.Errorf("no messaging at all: exit %d, want inconclusive\n%s", r.code, r.out)
	}
}

func TestCheckInconclusive(t *testing.T) {
	p := write(t, "s.yaml", []byte("version: 1\nflows:\n  - name: f\n    entry: github-source\n    path:\n      - topic: stargazers-flat\n    min_traces: 100000\n"))
	r := run(t, "", nil, "check", "--spec", p, "--fixture", "stargazers-lost")
	if r.code != ExitInconclusive {
		t.Errorf("exit %d:\n%s", r.code, r.out)
	}
}

func TestCheckSpecErrors(t *testing.T) {
	cases := []struct {
		name, spec, want string
	}{
		{"unknown service", "version: 1\nflows:\n  - name: f\n    entry: github-sorce\n    path:\n      - topic: stargazers-flat\n",
			`s.yaml:4: service "github-sorce" is not in the traces (did you mean "github-source"?)`},
		{"unknown topic", "version: 1\nflows:\n  - name: f\n    entry: github-source\n    path:\n      - topic: stargazers-flt\n",
			`s.yaml:6: topic "stargazers-flt" is not in the traces (did you mean "stargazers-flat"?)`},
		{"bad yaml", "version: 1\nflows:\n  - name: f\n   entry: x\n", "s.yaml:2: invalid YAML: did not find expected"},
		{"negative threshold", "version: 1\nflows:\n  - name: f\n    entry: github-source\n    path:\n      - topic: stargazers-flat\n    min_continuity: -0.5\n",
			"s.yaml:7: min_continuity -0.5: want a number from 0 to 1"},
		{"unknown field", "version: 1\nflows:\n  - name: f\n    entry: github-source\n    path:\n      - topic: stargazers-flat\n        relaton: parent\n",
			`s.yaml:7: unknown field "relaton" in path step (want topic, service, relation, max_latency)`},
		{"bad relation", "version: 1\nflows:\n  - name: f\n    entry: github-source\n    path:\n      - topic: stargazers-flat\n        relation: child\n",
			`s.yaml:7: relation "child": want parent, link or either`},
		{"two topics", "version: 1\nflows:\n  - name: f\n    entry: github-source\n    path:\n      - topic: a\n      - topic: b\n",
			`s.yaml:7: topic "b" follows another topic`},
		{"no flows", "version: 1\n", "s.yaml:1: no flows"},
		{"empty", "", "empty spec"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "s.yaml")
			os.WriteFile(p, []byte(c.spec), 0o644)
			r := run(t, "", nil, "check", "--spec", p, "--fixture", "stargazers-lost")
			oneLineErr(t, r, ExitUsage, strings.Replace(c.want, "s.yaml", p, 1))
		})
	}
}

// Fewer traces than min_traces is inconclusive, never broken, even when a
// hop of the flow fails (the reproducer: 24 traces against min_traces 100).
func TestCheckTooFewTracesIsInconclusive(t *testing.T) {
	spec, err := os.ReadFile("../../examples/stargazers-check.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := write(t, "s.yaml", []byte(strings.ReplaceAll(string(spec), "min_traces: 20", "min_traces: 100")))
	r := run(t, "", nil, "check", "--spec", p, "--fixture", "stargazers-lost")
	if r.code != ExitInconclusive || !strings.Contains(r.out, "? flow stargazer: INCONCLUSIVE") ||
		!strings.Contains(r.out, "too few traces to judge") || strings.Contains(r.out, "✗") {
		t.Errorf("exit %d:\n%s", r.code, r.out)
	}
	// With enough traces the same data fails.
	if r := run(t, "", nil, "check", "--spec", "../../examples/stargazers-check.yaml", "--fixture", "stargazers-lost"); r.code != ExitFindings {
		t.Errorf("min_traces 20: exit %d\n%s", r.code, r.out)
	}
}

// Without a spec, hops are listed in the order data flows, each with its
// latency.
func TestCheckAllOrderAndLatency(t *testing.T) {
	r := run(t, "", nil, "check", "--fixture", "stargazers-lost")
	var hops []string
	for _, line := range strings.Split(r.out, "\n") {
		if strings.HasPrefix(line, "    ") && strings.Contains(line, " → ") && strings.Contains(line, "\t") {
			hops = append(hops, strings.Fields(line)[1]+" → "+strings.Fields(line)[3])
			if strings.Contains(line, "p99 -") {
				t.Errorf("no latency: %q", line)
			}
		}
	}
	want := []string{
		"github-avro-stargazers-jackdaw → stargazers-join",
		"github-avro-stargazers-kafka → stargazers-flatten",
		"github-avro-stargazers-kafka → stargazers-join",
		"stargazers-flatten → stargazers-flat",
		"stargazers-join → stargazers-results",
		"stargazers-results → stargazers-api",
	}
	if strings.Join(hops, "\n") != strings.Join(want, "\n") {
		t.Errorf("hops in order:\n%s\nwant\n%s", strings.Join(hops, "\n"), strings.Join(want, "\n"))
	}
}

// Spec and owners files are read with a size check, regular files only.
func TestConfigFilesBounded(t *testing.T) {
	oneLineErr(t, run(t, "", nil, "check", "--spec", "/dev/zero", "--fixture", "kafka-e2e"), ExitUsage, "--spec: /dev/zero: not a regular file")
	oneLineErr(t, run(t, "", nil, "docs", "--owners", "/dev/zero", "--out", t.TempDir(), "--fixture", "kafka-e2e"), ExitUsage, "--owners: /dev/zero: not a regular file")
	big := write(t, "big.yaml", make([]byte, 2<<20))
	oneLineErr(t, run(t, "", nil, "check", "--spec", big, "--fixture", "kafka-e2e"), ExitUsage, "a configuration file is at most")
	oneLineErr(t, run(t, "", nil, "graph", "--max-record-mib", "0", "--fixture", "kafka-e2e"), ExitUsage, "--max-record-mib 0")
}

// sampled writes a snapshot of the recorded stack run fixture with each
// trace kept at ratio (a seeded draw), as a head sampler deciding at each
// root keeps them.
func sampled(t *testing.T, fixture string, ratio float64) string {
	t.Helper()
	set := testenv.Fixture(t, fixture)
	path := filepath.Join(t.TempDir(), fixture+".ktrace")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := file.NewSnapshotWriter(f, "sampled "+fixture)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for _, tr := range set.Traces() {
		if rng.Float64() < ratio {
			if err := w.Write(&tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCheckSampled: with only some traces kept, the linked join is never
// a violation (pass or inconclusive), and the hops whose other end was
// sampled out are counted apart; the default join still fails, at the
// join.
func TestCheckSampled(t *testing.T) {
	for _, ratio := range []float64{0.3, 0.5} {
		links := sampled(t, "stargazers-links", ratio)
		unverifiable := 0
		for _, args := range [][]string{{"--spec", spec}, {}} {
			r := run(t, "", nil, append([]string{"check", "--file", links, "-o", "json"}, args...)...)
			var doc render.CheckJSON
			if err := json.Unmarshal([]byte(r.out), &doc); err != nil || doc.Verdict == "fail" || r.code == ExitFindings {
				t.Fatalf("links, ratio %.1f, %v: exit %d, %v: %s %s", ratio, args, r.code, err, r.out, r.err)
			}
			for _, f := range doc.Flows {
				unverifiable += f.Unverifiable
				for _, h := range f.Hops {
					unverifiable += h.Unverifiable
				}
			}
		}
		if unverifiable == 0 {
			t.Errorf("links, ratio %.1f: nothing counted unverifiable", ratio)
		}
		if r := run(t, "", nil, "report", "--broken", "--file", links, "-o", "json"); r.code != ExitOK || !strings.Contains(r.out, `"findings": []`) {
			t.Errorf("links, ratio %.1f: report --broken %d: %s", ratio, r.code, r.out)
		}
		// The recorded run is small: sampled, the flow has too few traces
		// to fail, but its join hop is lost, not unverifiable; the
		// spec-less check, asking for fewer records, fails at the join.
		lost := sampled(t, "stargazers-lost", ratio)
		r := run(t, "", nil, "check", "--spec", spec, "--file", lost, "-o", "json")
		var doc render.CheckJSON
		if err := json.Unmarshal([]byte(r.out), &doc); err != nil || doc.Flows[0].Verdict == "pass" {
			t.Fatalf("lost, ratio %.1f: exit %d, %v: %s", ratio, r.code, err, r.out)
		}
		if h := doc.Flows[0].Hops[2]; h.From != "stargazers-join" || h.Continuous != 0 || h.Unverifiable != 0 || h.Seen == 0 || len(h.Examples) == 0 {
			t.Errorf("lost, ratio %.1f: join hop %+v", ratio, h)
		}
		r = run(t, "", nil, "check", "--file", lost, "--min-traces", "5")
		if r.code != ExitFindings || !strings.Contains(r.out, "stargazers-join") {
			t.Errorf("lost, ratio %.1f, spec-less: exit %d: %s", ratio, r.code, r.out)
		}
	}
}
