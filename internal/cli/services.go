package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ktrace-dev/ktrace/render"
)

// ServicesOptions are `ktrace services`' inputs.
type ServicesOptions struct {
	IO     *IOStreams
	Source SourceOptions
	Output string
}

// ServiceJSON is one line of `ktrace services -o json`.
type ServiceJSON struct {
	Name       string   `json:"name"`
	Operations []string `json:"operations"`
	// Spans is set when reading files (Jaeger does not count them cheaply).
	Spans int `json:"spans,omitempty"`
}

// NewCmdServices builds `ktrace services`.
func NewCmdServices(ios *IOStreams, runF func(context.Context, *ServicesOptions) error) *cobra.Command {
	opts := &ServicesOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "services",
		Short: "List the services and their operations",
		Example: `  ktrace services --jaeger 127.0.0.1:16685
  ktrace services --file traces.json -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(opts.Output, []string{"text", "json"}); err != nil {
				return err
			}
			if err := opts.Source.validate(ios); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return servicesRun(cmd.Context(), opts)
		},
	}
	opts.Source.register(cmd)
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "text", "output format: text or json")
	return cmd
}

func servicesRun(ctx context.Context, opts *ServicesOptions) error {
	var list []ServiceJSON
	if opts.Source.Jaeger != "" && len(opts.Source.Files) == 0 && len(opts.Source.Fixtures) == 0 {
		c, err := opts.Source.dialJaeger()
		if err != nil {
			return err
		}
		defer c.Close()
		names, err := c.Services(ctx)
		if err != nil {
			return err
		}
		for _, n := range names {
			ops, err := c.Operations(ctx, n)
			if err != nil {
				return err
			}
			s := ServiceJSON{Name: n, Operations: []string{}}
			for _, o := range ops {
				s.Operations = append(s.Operations, o.Name)
			}
			list = append(list, s)
		}
	} else {
		set, err := opts.Source.load(ctx, opts.IO)
		if err != nil {
			return err
		}
		byName := map[string]*ServiceJSON{}
		ops := map[string]map[string]bool{}
		for _, t := range set.Traces() {
			for i := range t.Spans {
				s := &t.Spans[i]
				e := byName[s.Service()]
				if e == nil {
					e = &ServiceJSON{Name: s.Service()}
					byName[s.Service()] = e
					ops[s.Service()] = map[string]bool{}
				}
				e.Spans++
				ops[s.Service()][s.Operation] = true
			}
		}
		for name, e := range byName {
			e.Operations = []string{}
			for o := range ops[name] {
				e.Operations = append(e.Operations, o)
			}
			sort.Strings(e.Operations)
			list = append(list, *e)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	}
	if opts.Output == "json" {
		if list == nil {
			list = []ServiceJSON{}
		}
		return render.JSON(opts.IO.Out, list)
	}
	var b strings.Builder
	for _, s := range list {
		b.WriteString(render.TSV(s.Name))
		b.WriteByte('\t')
		b.WriteString(render.N(len(s.Operations), "operation"))
		if s.Spans > 0 {
			b.WriteString("\t" + render.N(s.Spans, "span"))
		}
		b.WriteByte('\n')
	}
	_, err := fmt.Fprint(opts.IO.Out, b.String())
	return err
}
