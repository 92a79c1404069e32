package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ktrace-dev/ktrace/stack/jaeger"
	"github.com/ktrace-dev/ktrace/stack/services"
	"github.com/ktrace-dev/ktrace/stream"
)

// Component is one process of the stack.
type Component struct {
	Name string   `json:"name"`
	Argv []string `json:"argv"`
	Pid  int      `json:"pid"`
	// Start is the process's start time as the system reports it; with
	// Pid and Argv it proves the process is the one ktrace started.
	Start  string `json:"start"`
	Health string `json:"health"`
	Log    string `json:"log"`
	// KafkaPasswordFile, when set, holds the SASL password the component
	// logs in to Kafka with: its first line is put in the process's
	// environment (jaeger.PasswordEnv) at each start. Otherwise the
	// process inherits jaeger.PasswordEnv, if set.
	KafkaPasswordFile string `json:"kafka_password_file,omitempty"`
	// JaegerKafkaRole, for a Jaeger that logs in to Kafka with SASL, is
	// its role: its environment gets the password as its configuration
	// (jaeger.AuthEnv).
	JaegerKafkaRole string `json:"jaeger_kafka_role,omitempty"`
	// done is closed when the process this program started exits; nil
	// for a component another program started (read from state.json).
	done chan struct{}
	// logFrom is where this start's lines begin in the log (which keeps
	// earlier runs' lines): errors quote only this run's.
	logFrom int64
}

// Endpoints are where the stack can be reached.
type Endpoints struct {
	Kafka       string `json:"kafka"`
	JaegerQuery string `json:"jaeger_query,omitempty"`
	JaegerUI    string `json:"jaeger_ui,omitempty"`
	OTLP        string `json:"otlp"`
	API         string `json:"api"`
	SourceAdmin string `json:"source_admin"`
	// Map is the live service map (ktrace serve), when there is a Jaeger
	// to read.
	Map string `json:"map,omitempty"`
	// Streams are the ktrace stream members' metrics (--spans-via-kafka).
	Streams []string `json:"streams,omitempty"`
}

// State is state.json.
type State struct {
	Components  []Component `json:"components"`
	Endpoints   Endpoints   `json:"endpoints"`
	Propagation string      `json:"propagation"`
	Sample      float64     `json:"sample,omitempty"`      // the share of traces the services keep; 0: all
	TailSample  float64     `json:"tail_sample,omitempty"` // the share of traces Jaeger keeps; 0: all
	// KafkaArgs are the ktrace flags that reach an existing cluster with
	// TLS or SASL (never the password).
	KafkaArgs []string `json:"kafka_args,omitempty"`
	dir       string
}

// DefaultStateDir is $XDG_STATE_HOME/ktrace/stack, else ~/.local/state/ktrace/stack.
func DefaultStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "ktrace", "stack")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "state", "ktrace", "stack")
}

// Load reads the state of a stack; ErrNotRunning when there is none.
func Load(dir string) (*State, error) {
	if dir == "" {
		dir = DefaultStateDir()
	}
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if os.IsNotExist(err) {
		return nil, ErrNotRunning
	}
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "state.json"), err)
	}
	st.dir = dir
	return &st, nil
}

func (st *State) save() error {
	b, _ := json.MarshalIndent(st, "", "  ")
	tmp := filepath.Join(st.dir, "state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(st.dir, "state.json"))
}

// Component returns the named component, or nil.
func (st *State) Component(name string) *Component {
	for i := range st.Components {
		if st.Components[i].Name == name {
			return &st.Components[i]
		}
	}
	return nil
}

// Alive reports whether the component's process runs and is the one we
// started: its PID, start time and exact argv all match what was recorded
// when it was started (a PID reused by another program does not count).
func (c *Component) Alive() bool { return owns(c.Pid, c.Start, c.Argv) }

// Healthy asks the component's health endpoint.
func (c *Component) Healthy() bool {
	ok, _, _ := c.health()
	return ok
}

// health asks the component's health endpoint, and says why it is not
// healthy when it says so (a service reports "not ready" with a reason:
// Kafka unreachable, restoring state, no partitions), and what it says of
// itself when healthy (a ktrace stream member: its partitions).
func (c *Component) health() (ok bool, reason, detail string) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(c.Health)
	if err != nil {
		return false, "no answer at " + c.Health, ""
	}
	defer resp.Body.Close()
	var h struct {
		services.Health
		Detail string `json:"detail"`
	}
	decoded := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&h) == nil
	if resp.StatusCode == http.StatusOK {
		return true, "", h.Detail
	}
	if decoded && h.Reason != "" {
		return false, h.Reason, ""
	}
	return false, resp.Status, ""
}

// start spawns the component detached, logging to its log file, and reaps
// it when it exits while this process lives.
func (c *Component) start() error {
	logf, err := os.OpenFile(c.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	if fi, err := logf.Stat(); err == nil {
		c.logFrom = fi.Size()
	}
	cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
	if cmd.Env, err = c.environ(); err != nil {
		return fmt.Errorf("starting %s: %w", c.Name, err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	detach(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", c.Name, err)
	}
	c.Pid = cmd.Process.Pid
	// The start time is fixed when the process is created: read now, it
	// is the child's even before it has executed its program.
	c.Start, _, _ = processIdentity(c.Pid)
	done := make(chan struct{})
	c.done = done
	go func() {
		cmd.Wait()
		close(done)
	}()
	return nil
}

// environ is the component's environment: this process's, with the Kafka
// password where the component needs it given (nil: this process's as it
// is).
func (c *Component) environ() ([]string, error) {
	if c.KafkaPasswordFile == "" && c.JaegerKafkaRole == "" {
		return nil, nil
	}
	pass := os.Getenv(jaeger.PasswordEnv)
	if c.KafkaPasswordFile != "" {
		var err error
		if pass, err = stream.ReadPasswordFile(c.KafkaPasswordFile); err != nil {
			return nil, fmt.Errorf("reading the Kafka password: %w", err)
		}
	}
	if pass == "" {
		return nil, fmt.Errorf("no Kafka password: set %s (or give stack up --kafka-password-file)", jaeger.PasswordEnv)
	}
	env := append(os.Environ(), jaeger.PasswordEnv+"="+pass)
	if c.JaegerKafkaRole != "" {
		env = append(env, jaeger.AuthEnv+"="+jaeger.PasswordConfig(c.JaegerKafkaRole, pass))
	}
	return env, nil
}

// running is Alive, told for certain for a process this program started:
// whether it has not exited yet. Alive cannot tell a process that is still
// being executed (its command line reads empty for a moment, which is
// longer on a loaded machine) from another program's, and starting and
// stopping must not take one for the other.
func (c *Component) running() bool {
	if c.done == nil {
		return c.Alive()
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// stopWait is how long stop waits after SIGTERM before it kills;
// stopGrace, a little less, is the --stop-timeout a stream member is
// given, so that it has published before then.
const (
	stopWait  = 10 * time.Second
	stopGrace = 8 * time.Second
)

// stop sends SIGTERM (SIGKILL when kill is set), waits up to stopWait,
// then kills.
func (c *Component) stop(kill bool) {
	if !c.running() {
		return
	}
	if kill {
		_ = signalKill(c.Pid)
	} else {
		_ = signalTerm(c.Pid)
	}
	deadline := time.Now().Add(stopWait)
	for c.running() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if c.running() {
		_ = signalKill(c.Pid)
		for i := 0; i < 100 && c.running(); i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// logTail is the end of a log from offset from on, on one line.
func logTail(path string, from int64) string {
	b, _ := os.ReadFile(path)
	if from > 0 && from <= int64(len(b)) {
		b = b[from:]
	}
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

// waitHealthy polls the component until healthy, dead, or out of time.
func (c *Component) waitHealthy(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, why, _ := c.health()
		if ok {
			return nil
		}
		if !c.running() {
			return fmt.Errorf("%s exited during start-up: %s", c.Name, logTail(c.Log, c.logFrom))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not healthy after %s (%s): %s", c.Name, timeout, why, logTail(c.Log, c.logFrom))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (st *State) names() []string {
	var out []string
	for _, c := range st.Components {
		out = append(out, c.Name)
	}
	return out
}
