package docs

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/render"
)

// The AsyncAPI 3.0 document of one service: a channel per topic it produces
// or consumes, a send or receive operation per channel, Kafka bindings, and
// what traces showed in x-ktrace extensions. Traces carry no payloads, so
// message payloads are placeholders that say so.

type aaDoc struct {
	AsyncAPI           string                 `yaml:"asyncapi"`
	Info               aaInfo                 `yaml:"info"`
	DefaultContentType string                 `yaml:"defaultContentType"`
	Channels           map[string]aaChannel   `yaml:"channels,omitempty"`
	Operations         map[string]aaOperation `yaml:"operations,omitempty"`
}

type aaInfo struct {
	Title       string         `yaml:"title"`
	Version     string         `yaml:"version"`
	Description string         `yaml:"description"`
	Observed    map[string]any `yaml:"x-ktrace-observed,omitempty"`
}

type aaChannel struct {
	Address  string               `yaml:"address"`
	Messages map[string]aaMessage `yaml:"messages"`
	Bindings map[string]any       `yaml:"bindings,omitempty"`
}

type aaMessage struct {
	Name    string         `yaml:"name"`
	Title   string         `yaml:"title"`
	Summary string         `yaml:"summary"`
	Payload map[string]any `yaml:"payload"`
}

type aaRef struct {
	Ref string `yaml:"$ref"`
}

type aaOperation struct {
	Action   string         `yaml:"action"`
	Channel  aaRef          `yaml:"channel"`
	Summary  string         `yaml:"summary"`
	Messages []aaRef        `yaml:"messages"`
	Bindings map[string]any `yaml:"bindings,omitempty"`
	Observed map[string]any `yaml:"x-ktrace-observed,omitempty"`
}

var idUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

func aaID(s string) string { return idUnsafe.ReplaceAllString(s, "_") }

// observed is what the traces showed of an edge: its relation, and with
// stats its counts and latencies.
func observed(e *graph.Edge, stats bool) map[string]any {
	if !stats {
		return map[string]any{"relation": e.Relation.String()}
	}
	return map[string]any{
		"records": e.Count, "errors": e.Errors, "relation": e.Relation.String(),
		"p50_ms": float64(e.P50.Microseconds()) / 1000, "p95_ms": float64(e.P95.Microseconds()) / 1000, "p99_ms": float64(e.P99.Microseconds()) / 1000,
	}
}

func stringSchema(values []string) map[string]any {
	return map[string]any{"type": "string", "enum": values}
}

func asyncAPI(in Input, n *graph.Node) []byte {
	g := in.Graph
	doc := aaDoc{AsyncAPI: "3.0.0", DefaultContentType: "application/octet-stream",
		Info: aaInfo{Title: n.Name, Version: "observed",
			Description: fmt.Sprintf("Kafka interface of %s as ktrace observed it in traces. Channels and operations come from producer and consumer spans; payload schemas are placeholders, since traces carry none.", n.Name)},
		Channels: map[string]aaChannel{}, Operations: map[string]aaOperation{}}
	if in.Stats {
		doc.Info.Observed = map[string]any{"traces": g.Traces, "instances": len(n.Instances), "spans": n.Spans, "errors": n.Errors}
	}
	channel := func(topic *graph.Node) string {
		id := aaID(topic.Name)
		if _, ok := doc.Channels[id]; !ok {
			ch := aaChannel{Address: topic.Name, Messages: map[string]aaMessage{
				"record": {Name: "record", Title: topic.Name + " record",
					Summary: "A record on " + topic.Name + ".",
					Payload: map[string]any{"description": "Placeholder: traces carry no payload schema. Describe the record of " + topic.Name + " here."}},
			}}
			kafka := map[string]any{"topic": topic.Name, "bindingVersion": "0.5.0"}
			if len(topic.Partitions) > 0 {
				kafka["partitions"] = len(topic.Partitions)
			}
			ch.Bindings = map[string]any{"kafka": kafka}
			doc.Channels[id] = ch
		}
		return id
	}
	for _, e := range g.Edges {
		var topic *graph.Node
		var action, opID, group string
		switch {
		case e.From == n && e.Kind == graph.EdgeProduce:
			topic, action, opID = e.To, "send", "send_"+aaID(e.To.Name)
		case e.To == n && e.Kind == graph.EdgeConsume:
			topic, action, group = e.From, "receive", e.Group
			opID = "receive_" + aaID(e.From.Name)
			if group != "" {
				opID += "_" + aaID(group)
			}
		default:
			continue
		}
		id := channel(topic)
		op, ok := doc.Operations[opID]
		if !ok {
			op = aaOperation{Action: action, Channel: aaRef{"#/channels/" + id},
				Messages: []aaRef{{"#/channels/" + id + "/messages/record"}}, Observed: map[string]any{}}
			if action == "send" {
				op.Summary = n.Name + " writes to " + topic.Name + "."
			} else {
				op.Summary = n.Name + " reads " + topic.Name + "."
			}
		}
		kafka := map[string]any{"bindingVersion": "0.5.0"}
		if group != "" {
			kafka["groupId"] = stringSchema([]string{group})
		}
		if len(e.ClientIDs) > 0 {
			kafka["clientId"] = stringSchema(e.ClientIDs)
		}
		op.Bindings = map[string]any{"kafka": kafka}
		op.Observed[e.Relation.String()] = observed(e, in.Stats)
		doc.Operations[opID] = op
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Generated by ktrace docs from traces. Payload schemas are placeholders: fill them in.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	enc.Encode(doc)
	return b.Bytes()
}

// catalog writes Backstage entities: a Component per service, an API (type
// asyncapi) per topic, providesApis/consumesApis from produce/consume
// edges, dependsOn from calls. Owner and lifecycle come from the mapping
// file, else placeholders that say how to set them.
func catalog(in Input) []byte {
	g := in.Graph
	var b strings.Builder
	b.WriteString("# Generated by ktrace docs from traces.\n# Owners and lifecycles: ktrace docs --owners owners.yaml, where owners.yaml is\n#   default: {owner: my-team, lifecycle: production}\n#   services: {some-service: {owner: other-team}}\n")
	apiName := func(topic string) string { return "topic-" + strings.ToLower(aaID(topic)) }
	entity := func(v any) {
		b.WriteString("---\n")
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		enc.Encode(v)
	}
	type meta struct {
		Name        string            `yaml:"name"`
		Title       string            `yaml:"title,omitempty"`
		Description string            `yaml:"description"`
		Annotations map[string]string `yaml:"annotations,omitempty"`
	}
	type compSpec struct {
		Type         string   `yaml:"type"`
		Lifecycle    string   `yaml:"lifecycle"`
		Owner        string   `yaml:"owner"`
		ProvidesApis []string `yaml:"providesApis,omitempty"`
		ConsumesApis []string `yaml:"consumesApis,omitempty"`
		DependsOn    []string `yaml:"dependsOn,omitempty"`
	}
	type apiSpec struct {
		Type       string            `yaml:"type"`
		Lifecycle  string            `yaml:"lifecycle"`
		Owner      string            `yaml:"owner"`
		Definition map[string]string `yaml:"definition"`
	}
	type ent struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   meta   `yaml:"metadata"`
		Spec       any    `yaml:"spec"`
	}
	producerOf := map[string]string{}
	for _, n := range g.Nodes {
		if n.Kind != graph.KindService {
			continue
		}
		owner, life, set := in.Owners.of(n.Name)
		s := compSpec{Type: "service", Lifecycle: life, Owner: owner}
		for _, e := range g.Edges {
			switch {
			case e.From == n && e.Kind == graph.EdgeProduce:
				s.ProvidesApis = appendUniq(s.ProvidesApis, apiName(e.To.Name))
				if _, ok := producerOf[e.To.Name]; !ok {
					producerOf[e.To.Name] = n.Name
				}
			case e.To == n && e.Kind == graph.EdgeConsume:
				s.ConsumesApis = appendUniq(s.ConsumesApis, apiName(e.From.Name))
			case e.From == n && e.Kind == graph.EdgeCall && e.To.Kind == graph.KindService:
				s.DependsOn = appendUniq(s.DependsOn, "component:"+e.To.Name)
			}
		}
		desc := "Seen in traces."
		if in.Stats {
			desc = fmt.Sprintf("Seen in traces: %s, %s.", render.N(len(n.Instances), "instance"), render.N(n.Spans, "span"))
		}
		m := meta{Name: n.Name, Description: desc,
			Annotations: map[string]string{"ktrace.dev/asyncapi": "asyncapi/" + in.file(n) + ".yaml"}}
		if !set {
			m.Annotations["ktrace.dev/owner-placeholder"] = "set owner and lifecycle with ktrace docs --owners FILE"
		}
		entity(ent{APIVersion: "backstage.io/v1alpha1", Kind: "Component", Metadata: m, Spec: s})
	}
	for _, n := range g.Nodes {
		if n.Kind != graph.KindTopic {
			continue
		}
		prod := producerOf[n.Name]
		owner, life, _ := in.Owners.of(prod)
		def := map[string]string{"$text": "./asyncapi/" + in.serviceFile(prod) + ".yaml"}
		if prod == "" {
			def = map[string]string{"$text": "./asyncapi/" + in.serviceFile(firstConsumer(g, n)) + ".yaml"}
		}
		entity(ent{APIVersion: "backstage.io/v1alpha1", Kind: "API",
			Metadata: meta{Name: apiName(n.Name), Title: n.Name, Description: "Kafka topic " + n.Name + "."},
			Spec:     apiSpec{Type: "asyncapi", Lifecycle: life, Owner: owner, Definition: def}})
	}
	return []byte(b.String())
}

func firstConsumer(g *graph.Graph, topic *graph.Node) string {
	for _, e := range g.Edges {
		if e.From == topic && e.Kind == graph.EdgeConsume {
			return e.To.Name
		}
	}
	return ""
}
