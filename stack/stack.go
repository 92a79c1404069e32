package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ktrace-dev/ktrace/stack/jaeger"
	"github.com/ktrace-dev/ktrace/stack/services"
)

// Component names, in start order.
const (
	Broker  = "kafka"
	Jaeger  = "jaeger"
	Source  = services.SourceName
	Flatten = services.FlattenName
	Join    = services.JoinName
	API     = services.APIName
	// Map is `ktrace serve` on the stack's Jaeger: the live service map.
	Map = "map"
)

// Services are the stack's own services.
var Services = []string{Source, Flatten, Join, API}

// Options configure Up.
type Options struct {
	// Exe is the ktrace executable that runs components; default os.Executable().
	Exe string
	// StateDir holds state.json and logs; default DefaultStateDir().
	StateDir string
	// KafkaPort is the embedded broker's port (default 9092); KafkaBrokers
	// uses an existing cluster instead.
	KafkaPort    int
	KafkaBrokers []string
	// JaegerBin is the Jaeger v2 binary; found or built when empty.
	JaegerBin string
	// Persist keeps traces in Badger under the state directory.
	Persist bool
	// JaegerEndpoint (query gRPC host:port) and OTLPEndpoint use an existing
	// Jaeger or collector instead of starting one.
	JaegerEndpoint, OTLPEndpoint string
	// Ports of the Jaeger the stack starts, and of the API.
	JaegerGRPCPort, JaegerUIPort, OTLPPort, APIPort int
	// Propagation is the join's mode: lost, links or parent.
	Propagation string
	// Live makes github-source page the real GitHub API (GITHUB_TOKEN).
	Live bool
	// Replicas runs several instances of a consumer service in one consumer
	// group, each its own process and service.instance.id (stargazers-flatten
	// and stargazers-join only).
	Replicas map[string]int
	// Progress receives progress lines; nil discards them.
	Progress io.Writer
	// Timeout bounds waiting for health; default 60s.
	Timeout time.Duration
}

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
}

// State is state.json.
type State struct {
	Components  []Component `json:"components"`
	Endpoints   Endpoints   `json:"endpoints"`
	Propagation string      `json:"propagation"`
	dir         string
}

// Errors Up and the other operations return.
var (
	ErrRunning    = errors.New("the stack is already running (ktrace stack down stops it)")
	ErrNotRunning = errors.New("the stack is not running (ktrace stack up starts it)")
)

// PortInUseError names a port something else holds.
type PortInUseError struct {
	Port int
	What string
	Flag string
}

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("port %d (%s) is already in use; free it or choose another with %s", e.Port, e.What, e.Flag)
}

// KafkaUnreachableError is returned when no broker of an existing cluster
// (--kafka-brokers) answers.
type KafkaUnreachableError struct {
	Brokers string
	Err     error
}

func (e *KafkaUnreachableError) Error() string {
	return fmt.Sprintf("cannot reach Kafka at %s: %v", e.Brokers, e.Err)
}

func (e *KafkaUnreachableError) Unwrap() error { return e.Err }

// DefaultStateDir is $XDG_STATE_HOME/ktrace/stack, else ~/.local/state/ktrace/stack.
func DefaultStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "ktrace", "stack")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "state", "ktrace", "stack")
}

func (o *Options) defaults() error {
	if o.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.Exe = exe
	}
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir()
	}
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&o.KafkaPort, 9092)
	def(&o.JaegerGRPCPort, 16685)
	def(&o.JaegerUIPort, 16686)
	def(&o.OTLPPort, 4317)
	def(&o.APIPort, 3100)
	if o.Propagation == "" {
		o.Propagation = services.PropagationLost
	}
	switch o.Propagation {
	case services.PropagationLost, services.PropagationLinks, services.PropagationParent:
	default:
		return fmt.Errorf("--propagation %q: want lost, links or parent", o.Propagation)
	}
	for name, n := range o.Replicas {
		if name != Flatten && name != Join {
			return fmt.Errorf("--replicas %s=%d: only %s and %s run as several instances", name, n, Flatten, Join)
		}
		if n < 1 || n > services.Partitions {
			// A member beyond the topics' partitions would hold none: idle,
			// and never ready.
			return fmt.Errorf("--replicas %s=%d: want 1 to %d (the topics' partitions)", name, n, services.Partitions)
		}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	return nil
}

func portFree(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

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
	ok, _ := c.health()
	return ok
}

// health asks the component's health endpoint, and says why it is not
// healthy when it says so (a service reports "not ready" with a reason:
// Kafka unreachable, restoring state, no partitions).
func (c *Component) health() (bool, string) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(c.Health)
	if err != nil {
		return false, "no answer at " + c.Health
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return true, ""
	}
	var h services.Health
	if json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&h) == nil && h.Reason != "" {
		return false, h.Reason
	}
	return false, resp.Status
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

// stop sends SIGTERM (SIGKILL when kill is set), waits up to 10s, then kills.
func (c *Component) stop(kill bool) {
	if !c.running() {
		return
	}
	if kill {
		_ = signalKill(c.Pid)
	} else {
		_ = signalTerm(c.Pid)
	}
	deadline := time.Now().Add(10 * time.Second)
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
		ok, why := c.health()
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

// Up starts the stack and waits until every component is healthy. On any
// failure it stops what it started and returns an error naming the cause.
func Up(ctx context.Context, o Options) (st *State, err error) {
	if err := Supported(); err != nil {
		return nil, err
	}
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if old, lerr := Load(o.StateDir); lerr == nil {
		for i := range old.Components {
			if old.Components[i].Alive() {
				return nil, ErrRunning
			}
		}
		fmt.Fprintln(o.Progress, "removing stale state of a stack that is no longer running")
		os.Remove(filepath.Join(o.StateDir, "state.json"))
	}
	if err := os.MkdirAll(filepath.Join(o.StateDir, "logs"), 0o755); err != nil {
		return nil, err
	}
	embedded := len(o.KafkaBrokers) == 0
	ownJaeger := o.JaegerEndpoint == "" && o.OTLPEndpoint == ""
	type port struct {
		n          int
		what, flag string
	}
	ports := []port{{o.APIPort, "stargazers-api", "--api-port"}}
	if embedded {
		ports = append(ports, port{o.KafkaPort, "kafka", "--kafka-port"})
	}
	if ownJaeger {
		ports = append(ports, port{o.JaegerGRPCPort, "jaeger query gRPC", "--jaeger-grpc-port"},
			port{o.JaegerUIPort, "jaeger UI", "--jaeger-ui-port"}, port{o.OTLPPort, "jaeger OTLP", "--otlp-port"})
	}
	for _, p := range ports {
		if !portFree(p.n) {
			return nil, &PortInUseError{Port: p.n, What: p.what, Flag: p.flag}
		}
	}
	var jbin string
	if ownJaeger {
		if jbin, err = jaeger.FindBinary(o.JaegerBin); err != nil {
			if o.JaegerBin != "" || !errors.Is(err, jaeger.ErrNoBinary) {
				return nil, err
			}
			if jbin, err = jaeger.Build(ctx, o.Progress); err != nil {
				return nil, err
			}
		}
	}

	st = &State{dir: o.StateDir, Propagation: o.Propagation}
	defer func() {
		if err != nil {
			for i := len(st.Components) - 1; i >= 0; i-- {
				st.Components[i].stop(false)
			}
			os.Remove(filepath.Join(o.StateDir, "state.json"))
		}
	}()
	logPath := func(name string) string { return filepath.Join(o.StateDir, "logs", name+".log") }
	launch := func(c Component) error {
		c.Log = logPath(c.Name)
		fmt.Fprintf(o.Progress, "starting %s...\n", c.Name)
		if err := c.start(); err != nil {
			return err
		}
		st.Components = append(st.Components, c)
		if err := st.save(); err != nil {
			return err
		}
		return st.Components[len(st.Components)-1].waitHealthy(ctx, o.Timeout)
	}
	healthURL := func(port int) string { return "http://" + addr(port) + "/healthz" }

	brokers := o.KafkaBrokers
	if embedded {
		hp, err := jaeger.FreePort()
		if err != nil {
			return st, err
		}
		brokers = []string{addr(o.KafkaPort)}
		if err := launch(Component{Name: Broker, Health: healthURL(hp),
			Argv: []string{o.Exe, "stack", "serve", Broker, "--port", strconv.Itoa(o.KafkaPort), "--health", addr(hp)}}); err != nil {
			return st, err
		}
	} else if err := ensureTopics(ctx, brokers); err != nil {
		return st, err
	}
	st.Endpoints.Kafka = strings.Join(brokers, ",")

	otlp := o.OTLPEndpoint
	st.Endpoints.JaegerQuery = o.JaegerEndpoint
	if ownJaeger {
		jo := jaeger.Options{Bin: jbin, Dir: filepath.Join(o.StateDir, "jaeger"), Persist: o.Persist,
			OTLPGRPCPort: o.OTLPPort, QueryGRPCPort: o.JaegerGRPCPort, UIPort: o.JaegerUIPort}
		argv, err := jo.Prepare()
		if err != nil {
			return st, err
		}
		if err := launch(Component{Name: Jaeger, Argv: argv, Health: jo.HealthURL()}); err != nil {
			return st, err
		}
		otlp = jo.OTLPAddr()
		st.Endpoints.JaegerQuery = jo.QueryAddr()
		st.Endpoints.JaegerUI = jo.UIURL()
	} else if otlp == "" {
		otlp = jaegerOTLPGuess(o.JaegerEndpoint)
	}
	st.Endpoints.OTLP = otlp

	for _, name := range Services {
		for r := 1; r <= max(1, o.Replicas[name]); r++ {
			c, err := serviceComponent(&o, st, name, r, brokers, otlp)
			if err != nil {
				return st, err
			}
			if err := launch(c); err != nil {
				return st, err
			}
		}
	}
	if st.Endpoints.JaegerQuery != "" {
		port, err := jaeger.FreePort()
		if err != nil {
			return st, err
		}
		listen := addr(port)
		if err := launch(Component{Name: Map, Health: "http://" + listen + "/healthz",
			Argv: []string{o.Exe, "serve", "--jaeger", st.Endpoints.JaegerQuery, "--lookback", "1h", "--interval", "10s", "--listen", listen}}); err != nil {
			return st, err
		}
		st.Endpoints.Map = "http://" + listen + "/"
	}
	return st, st.save()
}

// serviceComponent describes replica r of a service.
func serviceComponent(o *Options, st *State, name string, r int, brokers []string, otlp string) (Component, error) {
	hp := o.APIPort
	if name != API {
		var err error
		if hp, err = jaeger.FreePort(); err != nil {
			return Component{}, err
		}
	}
	component := name
	if r > 1 {
		component = fmt.Sprintf("%s-%d", name, r)
	}
	argv := []string{o.Exe, "stack", "serve", name, "--brokers", strings.Join(brokers, ","), "--otlp", otlp,
		"--health", addr(hp), "--instance", fmt.Sprintf("%s-%d", name, r)}
	switch name {
	case Join:
		argv = append(argv, "--propagation", o.Propagation)
	case Source:
		if o.Live {
			argv = append(argv, "--live")
		}
		st.Endpoints.SourceAdmin = "http://" + addr(hp)
	case API:
		st.Endpoints.API = "http://" + addr(hp) + "/stargazers"
	}
	return Component{Name: component, Argv: argv, Health: "http://" + addr(hp) + "/healthz"}, nil
}

// jaegerOTLPGuess assumes an existing Jaeger takes OTLP on 4317 of the
// query endpoint's host.
func jaegerOTLPGuess(query string) string {
	host, _, err := net.SplitHostPort(query)
	if err != nil {
		host = query
	}
	return net.JoinHostPort(host, "4317")
}

// ensureTopics checks an existing cluster answers and creates the stack's
// topics on it when missing.
func ensureTopics(ctx context.Context, brokers []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return fmt.Errorf("--kafka-brokers %s: %w", strings.Join(brokers, ","), err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		return &KafkaUnreachableError{Brokers: strings.Join(brokers, ","), Err: err}
	}
	res, err := kadm.NewClient(cl).CreateTopics(pctx, services.Partitions, -1, nil, services.StackTopics...)
	if err != nil {
		return fmt.Errorf("creating topics on %s: %w", strings.Join(brokers, ","), err)
	}
	for _, r := range res.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// Down stops every component, newest first, and removes the state file.
func Down(dir string, progress io.Writer) error {
	st, err := Load(dir)
	if err != nil {
		return err
	}
	if progress == nil {
		progress = io.Discard
	}
	for i := len(st.Components) - 1; i >= 0; i-- {
		c := &st.Components[i]
		if c.Alive() {
			fmt.Fprintf(progress, "stopping %s (pid %d)...\n", c.Name, c.Pid)
			c.stop(false)
		} else if c.Pid > 0 && processExists(c.Pid) {
			fmt.Fprintf(progress, "not stopping pid %d: it is not the %s that ktrace started (its start time or command line differ)\n", c.Pid, c.Name)
		}
	}
	return os.Remove(filepath.Join(st.dir, "state.json"))
}

// ComponentStatus is one line of Status.
type ComponentStatus struct {
	Name   string `json:"name"`
	Pid    int    `json:"pid"`
	Status string `json:"status"` // healthy, unhealthy, stopped
	// Reason says why a running component is unhealthy.
	Reason string `json:"reason,omitempty"`
	Health string `json:"health"`
}

// Status reports each component's health.
func Status(dir string) (*State, []ComponentStatus, error) {
	st, err := Load(dir)
	if err != nil {
		return nil, nil, err
	}
	var out []ComponentStatus
	for i := range st.Components {
		c := &st.Components[i]
		s := ComponentStatus{Name: c.Name, Pid: c.Pid, Health: c.Health, Status: "stopped"}
		if c.Alive() {
			s.Status = "unhealthy"
			if ok, why := c.health(); ok {
				s.Status = "healthy"
			} else {
				s.Reason = why
			}
		}
		out = append(out, s)
	}
	return st, out, nil
}

// Restart stops one component (with SIGKILL when kill is set) and starts
// it again with the same command line, waiting until it is healthy.
func Restart(ctx context.Context, dir, name string, kill bool, timeout time.Duration) error {
	st, err := Load(dir)
	if err != nil {
		return err
	}
	c := st.Component(name)
	if c == nil {
		return fmt.Errorf("no component %q in the stack (have %s)", name, strings.Join(st.names(), ", "))
	}
	c.stop(kill)
	if err := c.start(); err != nil {
		return err
	}
	if err := st.save(); err != nil {
		return err
	}
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	return c.waitHealthy(ctx, timeout)
}

func (st *State) names() []string {
	var out []string
	for _, c := range st.Components {
		out = append(out, c.Name)
	}
	return out
}

// Traffic asks github-source to replay the next events (0: all that
// remain) at rate events per second (0: unlimited).
func Traffic(ctx context.Context, dir string, events int, rate float64) (services.ReplayResult, error) {
	var res services.ReplayResult
	st, err := Load(dir)
	if err != nil {
		return res, err
	}
	u := st.Endpoints.SourceAdmin + "/replay?events=" + strconv.Itoa(events) + "&rate=" + url.QueryEscape(strconv.FormatFloat(rate, 'g', -1, 64))
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return res, fmt.Errorf("github-source at %s: %w", st.Endpoints.SourceAdmin, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return res, fmt.Errorf("github-source: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return res, json.Unmarshal(body, &res)
}

// Logs copies the log of one component (all when name is empty, each line
// prefixed with its component) to w.
func Logs(dir, name string, w io.Writer) error {
	st, err := Load(dir)
	if err != nil {
		return err
	}
	if name != "" && st.Component(name) == nil {
		return fmt.Errorf("no component %q in the stack (have %s)", name, strings.Join(st.names(), ", "))
	}
	for _, c := range st.Components {
		if name != "" && c.Name != name {
			continue
		}
		b, err := os.ReadFile(c.Log)
		if err != nil {
			return err
		}
		if name != "" {
			w.Write(b)
			continue
		}
		for _, line := range strings.SplitAfter(string(b), "\n") {
			if line != "" {
				fmt.Fprintf(w, "%-18s | %s", c.Name, line)
			}
		}
	}
	return nil
}
