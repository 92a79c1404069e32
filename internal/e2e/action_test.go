package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// actionEnv is a GitHub runner's environment, pointed at temporary files.
type actionEnv struct {
	temp, output, summary string
}

func newActionEnv(t *testing.T) actionEnv {
	dir := t.TempDir()
	e := actionEnv{temp: filepath.Join(dir, "runner-temp"), output: filepath.Join(dir, "output"), summary: filepath.Join(dir, "summary.md")}
	os.MkdirAll(e.temp, 0o755)
	return e
}

// run runs one of the action's scripts with the runner's variables and
// env, and returns its output and exit code.
func (e actionEnv) run(t *testing.T, script string, env ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join("action", script))
	cmd.Dir = filepath.Join("..", "..")
	arch := map[string]string{"amd64": "X64", "arm64": "ARM64"}[runtime.GOARCH]
	cmd.Env = append(os.Environ(), "RUNNER_TEMP="+e.temp, "GITHUB_OUTPUT="+e.output,
		"GITHUB_STEP_SUMMARY="+e.summary, "RUNNER_OS=Linux", "RUNNER_ARCH="+arch)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// outputs reads $GITHUB_OUTPUT's name=value lines.
func (e actionEnv) outputs(t *testing.T) map[string]string {
	b, _ := os.ReadFile(e.output)
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// fakeRelease writes a release directory as GoReleaser lays it out, with
// the ktrace binary under test in this platform's archive.
func fakeRelease(t *testing.T, version string) (dir, archive string) {
	dir = filepath.Join(t.TempDir(), version)
	os.MkdirAll(dir, 0o755)
	bin, err := os.ReadFile(ktraceBin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range []struct {
		name string
		body []byte
	}{{"README.md", []byte("# ktrace\n")}, {"ktrace", bin}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o755, Size: int64(len(f.body))})
		tw.Write(f.body)
	}
	tw.Close()
	zw.Close()
	archive = fmt.Sprintf("ktrace_%s_linux_%s.tar.gz", strings.TrimPrefix(version, "v"), runtime.GOARCH)
	os.WriteFile(filepath.Join(dir, archive), buf.Bytes(), 0o644)
	sum := sha256.Sum256(buf.Bytes())
	os.WriteFile(filepath.Join(dir, "checksums.txt"), fmt.Appendf(nil, "%x  %s\n%x  ktrace_other.zip\n", sum, archive, sha256.Sum256(nil)), 0o644)
	return dir, archive
}

func TestActionInstallsARelease(t *testing.T) {
	dir, archive := fakeRelease(t, "v9.8.7")
	base := "KTRACE_RELEASE_URL=file://" + filepath.Dir(dir)

	e := newActionEnv(t)
	out, code := e.run(t, "install.sh", "KTRACE_VERSION=v9.8.7", base)
	if code != 0 {
		t.Fatalf("install: exit %d\n%s", code, out)
	}
	path := e.outputs(t)["path"]
	if path != filepath.Join(e.temp, "ktrace-bin", "ktrace") {
		t.Fatalf("path output %q", path)
	}
	if v, err := exec.Command(path, "version").Output(); err != nil || !strings.HasPrefix(string(v), "ktrace ") {
		t.Errorf("installed ktrace: %q %v", v, err)
	}

	// The action's ref names the release when no version is given.
	e = newActionEnv(t)
	if out, code := e.run(t, "install.sh", "KTRACE_VERSION=", "KTRACE_ACTION_REF=v9.8.7", base); code != 0 {
		t.Fatalf("install at the action's ref: exit %d\n%s", code, out)
	}

	// A tampered archive is refused, and nothing is installed.
	os.WriteFile(filepath.Join(dir, archive), []byte("not the release"), 0o644)
	e = newActionEnv(t)
	out, code = e.run(t, "install.sh", "KTRACE_VERSION=v9.8.7", base)
	if code == 0 || !strings.Contains(out, "checksum mismatch for "+archive) {
		t.Errorf("tampered archive: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(e.temp, "ktrace-bin", "ktrace")); err == nil {
		t.Error("a binary was installed from a tampered archive")
	}

	for _, c := range []struct{ version, want string }{
		{"v1.0.0; rm -rf /", "want a release tag"},
		{"v1.2.3", "cannot download"}, // no such release
	} {
		e = newActionEnv(t)
		out, code = e.run(t, "install.sh", "KTRACE_VERSION="+c.version, base)
		if code != 2 || !strings.Contains(out, c.want) {
			t.Errorf("version %q: exit %d\n%s", c.version, code, out)
		}
	}
}

func TestActionInstallsFromSource(t *testing.T) {
	e := newActionEnv(t)
	src, _ := filepath.Abs(filepath.Join("..", ".."))
	out, code := e.run(t, "install.sh", "KTRACE_VERSION=source", "KTRACE_SOURCE_DIR="+src)
	if code != 0 {
		t.Fatalf("install from source: exit %d\n%s", code, out)
	}
	if v, err := exec.Command(e.outputs(t)["path"], "version").Output(); err != nil || !strings.HasPrefix(string(v), "ktrace ") {
		t.Errorf("built ktrace: %q %v", v, err)
	}
}

func TestActionCheck(t *testing.T) {
	bin := "KTRACE_BIN=" + ktraceBin
	spec := "INPUT_SPEC=examples/stargazers-check.yaml"

	t.Run("a broken flow fails with its annotation, summary and reports", func(t *testing.T) {
		e := newActionEnv(t)
		out, code := e.run(t, "check.sh", bin, spec, "INPUT_FILE=fixtures/stargazers-lost.ktrace")
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s", code, out)
		}
		if !strings.Contains(out, "::error") {
			t.Errorf("no annotation:\n%s", out)
		}
		o := e.outputs(t)
		if o["verdict"] != "violation" || o["exit-code"] != "1" {
			t.Errorf("outputs %v", o)
		}
		if s, _ := os.ReadFile(e.summary); !strings.Contains(string(s), "stargazer") {
			t.Errorf("job summary:\n%s", s)
		}
		junit, _ := os.ReadFile(o["junit"])
		var suites struct {
			XMLName xml.Name
		}
		if err := xml.Unmarshal(junit, &suites); err != nil || o["junit"] != filepath.Join(e.temp, "ktrace-check.xml") {
			t.Errorf("JUnit at %q: %v", o["junit"], err)
		}
		sarif, _ := os.ReadFile(o["sarif"])
		var doc struct {
			Version string `json:"version"`
		}
		if err := json.Unmarshal(sarif, &doc); err != nil || doc.Version != "2.1.0" {
			t.Errorf("SARIF at %q: %v %q", o["sarif"], err, doc.Version)
		}
	})

	t.Run("a continuous flow passes", func(t *testing.T) {
		e := newActionEnv(t)
		out, code := e.run(t, "check.sh", bin, spec, "INPUT_FILE=fixtures/stargazers-links.ktrace")
		if code != 0 || e.outputs(t)["verdict"] != "pass" {
			t.Fatalf("exit %d, outputs %v\n%s", code, e.outputs(t), out)
		}
	})

	t.Run("inconclusive fails unless told not to", func(t *testing.T) {
		e := newActionEnv(t)
		args := "INPUT_ARGS=--min-traces 100000"
		if _, code := e.run(t, "check.sh", bin, "INPUT_FILE=fixtures/stargazers-links.ktrace", args); code != 3 {
			t.Errorf("exit %d, want 3", code)
		}
		e = newActionEnv(t)
		out, code := e.run(t, "check.sh", bin, "INPUT_FILE=fixtures/stargazers-links.ktrace", args, "INPUT_FAIL_ON_INCONCLUSIVE=false")
		if code != 0 || e.outputs(t)["verdict"] != "inconclusive" || !strings.Contains(out, "::warning") {
			t.Errorf("exit %d, outputs %v\n%s", code, e.outputs(t), out)
		}
	})

	t.Run("the source is one of jaeger and file", func(t *testing.T) {
		for _, env := range [][]string{{}, {"INPUT_FILE=fixtures/stargazers-links.ktrace", "INPUT_JAEGER=127.0.0.1:1"}} {
			e := newActionEnv(t)
			out, code := e.run(t, "check.sh", append([]string{bin}, env...)...)
			if code != 2 || !strings.Contains(out, "::error") {
				t.Errorf("%v: exit %d\n%s", env, code, out)
			}
		}
	})

	t.Run("an unreachable Jaeger is a backend error and the token is never shown", func(t *testing.T) {
		e := newActionEnv(t)
		port := freePort(t)
		out, code := e.run(t, "check.sh", bin, fmt.Sprintf("INPUT_JAEGER=127.0.0.1:%d", port),
			"INPUT_JAEGER_TOKEN=s3cr3t-t0ken", "INPUT_ARGS=--timeout 1s --wait 2s")
		if code != 4 || e.outputs(t)["verdict"] != "backend-error" {
			t.Errorf("exit %d, outputs %v\n%s", code, e.outputs(t), out)
		}
		for _, f := range []string{e.output, e.summary} {
			b, _ := os.ReadFile(f)
			if strings.Contains(string(b), "s3cr3t") {
				t.Errorf("%s shows the token", f)
			}
		}
		if strings.Contains(out, "s3cr3t") {
			t.Errorf("the output shows the token:\n%s", out)
		}
	})
}

// action.yml is a composite action whose steps run the scripts tested
// above, and every input it passes them is declared.
func TestActionManifest(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Inputs map[string]struct {
			Description string `yaml:"description"`
		} `yaml:"inputs"`
		Runs struct {
			Using string `yaml:"using"`
			Steps []struct {
				Run  string            `yaml:"run"`
				Uses string            `yaml:"uses"`
				Env  map[string]string `yaml:"env"`
			} `yaml:"steps"`
		} `yaml:"runs"`
	}
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	if m.Runs.Using != "composite" {
		t.Errorf("runs.using %q", m.Runs.Using)
	}
	scripts := map[string]bool{}
	for _, s := range m.Runs.Steps {
		for _, name := range []string{"install.sh", "check.sh"} {
			if strings.Contains(s.Run, "/action/"+name) {
				scripts[name] = true
			}
		}
		for k, v := range s.Env {
			for _, ref := range strings.Split(v, "inputs.")[1:] {
				in := strings.TrimSpace(strings.TrimSuffix(strings.Fields(ref)[0], "}}"))
				if _, ok := m.Inputs[in]; !ok {
					t.Errorf("step env %s uses undeclared input %q", k, in)
				}
			}
		}
	}
	if !scripts["install.sh"] || !scripts["check.sh"] {
		t.Errorf("steps run %v, want install.sh and check.sh", scripts)
	}
	for name, in := range m.Inputs {
		if in.Description == "" {
			t.Errorf("input %s has no description", name)
		}
	}
}
