package render

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/ktrace-dev/ktrace/graph"
)

// Break is one place the graph shows trace context being lost.
type Break struct {
	// Where is "inside" (a service's output lost the context of its input)
	// or "hop" (a consumer lost the context of the record's producer).
	Where    string   `json:"where"`
	Service  string   `json:"service"`
	From     []string `json:"from"` // input topics (inside) or producer services (hop)
	Topic    string   `json:"topic"`
	Group    string   `json:"group,omitempty"`
	Records  int      `json:"records"`
	Examples []string `json:"example_trace_ids"`
}

// Breaks lists the stitched edges of g, largest first.
func Breaks(g *graph.Graph) []Break {
	var out []Break
	for _, e := range g.Edges {
		if e.Relation != graph.RelStitched {
			continue
		}
		b := Break{Records: e.Count, Group: e.Group}
		from := map[string]bool{}
		switch e.Kind {
		case graph.EdgeProduce:
			b.Where, b.Service, b.Topic = "inside", e.From.Name, e.To.Name
			for _, s := range g.Stitches {
				if s.Kind == graph.StitchPassThrough && s.Producer.Service == b.Service && s.OutTopic == b.Topic {
					from[s.Topic] = true
					if len(b.Examples) < 3 {
						b.Examples = append(b.Examples, s.Producer.TraceID.String())
					}
				}
			}
		case graph.EdgeConsume:
			b.Where, b.Service, b.Topic = "hop", e.To.Name, e.From.Name
			for _, s := range g.Stitches {
				if s.Kind == graph.StitchHop && s.Consumer.Service == b.Service && s.Topic == b.Topic {
					from[s.Producer.Service] = true
					if len(b.Examples) < 3 {
						b.Examples = append(b.Examples, s.Consumer.TraceID.String())
					}
				}
			}
		default:
			continue
		}
		for f := range from {
			b.From = append(b.From, f)
		}
		sort.Strings(b.From)
		out = append(out, b)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Records > out[j].Records })
	return out
}

// BreakSummary writes one line per break, for people.
func BreakSummary(w io.Writer, g *graph.Graph) error {
	bs := Breaks(g)
	if len(bs) == 0 {
		_, err := fmt.Fprintln(w, "no breaks: every hop carries its trace context")
		return err
	}
	for _, b := range bs {
		var err error
		if b.Where == "inside" {
			_, err = fmt.Fprintf(w, "context lost inside %s: %s → %s (%d records start new traces), e.g. trace %s\n",
				b.Service, strings.Join(b.From, ", "), b.Topic, b.Records, first(b.Examples))
		} else {
			_, err = fmt.Fprintf(w, "context lost between %s → %s → %s (group %s, %d records), e.g. trace %s\n",
				strings.Join(b.From, ", "), b.Topic, b.Service, b.Group, b.Records, first(b.Examples))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func first(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return s[0]
}
