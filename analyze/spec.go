package analyze

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Relation is what a flow hop requires of trace context.
type Relation string

// Hop relations.
const (
	RelParent Relation = "parent"
	RelLink   Relation = "link"
	RelEither Relation = "either"
)

// Step is one element of a flow's path after its entry.
type Step struct {
	Topic, Service string
	Relation       Relation
	MaxLatency     time.Duration
	Line           int
}

// Flow is one flow of a spec: an entry service and the path records take.
type Flow struct {
	Name          string
	Entry         string
	EntryLine     int
	Path          []Step
	MinContinuity float64
	MinTraces     int
	Line          int
}

// Spec is a `ktrace check` specification.
type Spec struct {
	File  string
	Flows []Flow
}

// SpecError is a problem in a spec, with its file and line.
type SpecError struct {
	File string
	Line int
	Msg  string
}

func (e *SpecError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// ParseSpec parses a spec. Every error is a *SpecError naming the line and,
// where there is one, the fix.
func ParseSpec(file string, data []byte) (*Spec, error) {
	fail := func(line int, format string, args ...any) error {
		return &SpecError{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := err.Error()
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			return nil, fail(line, "invalid YAML: %s (check indentation and quoting)", m[2])
		}
		return nil, fail(0, "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil, fail(0, "empty spec: want a mapping with flows:")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fail(root.Line, "want a mapping with version: and flows:")
	}
	spec := &Spec{File: file}
	var flowsNode *yaml.Node
	err := eachField(root, file, "spec", []string{"version", "flows"}, func(k string, v *yaml.Node) error {
		switch k {
		case "version":
			if v.Value != "1" {
				return fail(v.Line, "version %q is not supported: want 1", v.Value)
			}
		case "flows":
			flowsNode = v
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if flowsNode == nil || flowsNode.Kind != yaml.SequenceNode || len(flowsNode.Content) == 0 {
		return nil, fail(root.Line, "no flows: add a flows: list with at least one flow")
	}
	names := map[string]bool{}
	for _, fn := range flowsNode.Content {
		f, err := parseFlow(file, fn)
		if err != nil {
			return nil, err
		}
		if names[f.Name] {
			return nil, fail(f.Line, "flow %q defined twice", f.Name)
		}
		names[f.Name] = true
		spec.Flows = append(spec.Flows, f)
	}
	return spec, nil
}

func eachField(n *yaml.Node, file, what string, allowed []string, fn func(string, *yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return &SpecError{File: file, Line: n.Line, Msg: fmt.Sprintf("%s: want a mapping", what)}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ok := false
		for _, a := range allowed {
			ok = ok || a == k.Value
		}
		if !ok {
			return &SpecError{File: file, Line: k.Line, Msg: fmt.Sprintf("unknown field %q in %s (want %s)", k.Value, what, strings.Join(allowed, ", "))}
		}
		if err := fn(k.Value, v); err != nil {
			return err
		}
	}
	return nil
}

func parseFlow(file string, n *yaml.Node) (Flow, error) {
	f := Flow{Line: n.Line, MinContinuity: 1, MinTraces: 1}
	fail := func(line int, format string, args ...any) error {
		return &SpecError{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	var pathNode *yaml.Node
	err := eachField(n, file, "flow", []string{"name", "entry", "path", "min_continuity", "min_traces"}, func(k string, v *yaml.Node) error {
		switch k {
		case "name":
			f.Name = v.Value
		case "entry":
			f.Entry, f.EntryLine = v.Value, v.Line
		case "path":
			pathNode = v
		case "min_continuity":
			x, err := strconv.ParseFloat(v.Value, 64)
			if err != nil || x < 0 || x > 1 {
				return fail(v.Line, "min_continuity %s: want a number from 0 to 1, such as 0.99", v.Value)
			}
			f.MinContinuity = x
		case "min_traces":
			x, err := strconv.Atoi(v.Value)
			if err != nil || x < 1 {
				return fail(v.Line, "min_traces %s: want a whole number of at least 1", v.Value)
			}
			f.MinTraces = x
		}
		return nil
	})
	if err != nil {
		return f, err
	}
	if f.Name == "" {
		return f, fail(n.Line, "flow without a name: add name:")
	}
	if f.Entry == "" {
		return f, fail(n.Line, "flow %q has no entry: add entry: <the service records start from>", f.Name)
	}
	if pathNode == nil || pathNode.Kind != yaml.SequenceNode || len(pathNode.Content) == 0 {
		return f, fail(n.Line, "flow %q has no path: list the topics and services after the entry", f.Name)
	}
	prevTopic := false
	for _, sn := range pathNode.Content {
		s := Step{Relation: RelEither, Line: sn.Line}
		err := eachField(sn, file, "path step", []string{"topic", "service", "relation", "max_latency"}, func(k string, v *yaml.Node) error {
			switch k {
			case "topic":
				s.Topic = v.Value
			case "service":
				s.Service = v.Value
			case "relation":
				switch Relation(v.Value) {
				case RelParent, RelLink, RelEither:
					s.Relation = Relation(v.Value)
				default:
					return fail(v.Line, "relation %q: want parent, link or either", v.Value)
				}
			case "max_latency":
				d, err := time.ParseDuration(v.Value)
				if err != nil || d <= 0 {
					return fail(v.Line, "max_latency %q: want a positive duration such as 500ms", v.Value)
				}
				s.MaxLatency = d
			}
			return nil
		})
		if err != nil {
			return f, err
		}
		if (s.Topic == "") == (s.Service == "") {
			return f, fail(sn.Line, "a path step names exactly one of topic: or service:")
		}
		if s.Topic != "" && prevTopic {
			return f, fail(sn.Line, "topic %q follows another topic: put the service that reads one and writes the other between them", s.Topic)
		}
		prevTopic = s.Topic != ""
		f.Path = append(f.Path, s)
	}
	return f, nil
}

// CheckNames verifies that every service (and, when topics is not nil,
// every topic) the spec names is known, suggesting the closest name.
func (s *Spec) CheckNames(services, topics []string) error {
	check := func(line int, kind, name string, known []string) error {
		for _, k := range known {
			if k == name {
				return nil
			}
		}
		msg := fmt.Sprintf("%s %q is not in the traces", kind, name)
		if best := closest(name, known); best != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", best)
		}
		return &SpecError{File: s.File, Line: line, Msg: msg}
	}
	for _, f := range s.Flows {
		if err := check(f.EntryLine, "service", f.Entry, services); err != nil {
			return err
		}
		for _, st := range f.Path {
			if st.Service != "" {
				if err := check(st.Line, "service", st.Service, services); err != nil {
					return err
				}
			} else if topics != nil {
				if err := check(st.Line, "topic", st.Topic, topics); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// closest returns the known name within edit distance 3 of name, if any.
func closest(name string, known []string) string {
	best, bestD := "", 4
	for _, k := range known {
		if d := editDistance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
