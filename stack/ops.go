package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ktrace-dev/ktrace/stack/services"
)

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
	// Reason says why a running component is unhealthy; Detail what a
	// healthy one says of itself (a ktrace stream member: its partitions).
	Reason string `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
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
			if ok, why, detail := c.health(); ok {
				s.Status, s.Detail = "healthy", detail
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
