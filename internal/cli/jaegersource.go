package cli

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ktrace-dev/ktrace/render"
	"github.com/ktrace-dev/ktrace/source"
	"github.com/ktrace-dev/ktrace/source/jaeger"
	"github.com/ktrace-dev/ktrace/trace"
)

// The --jaeger source: reaching Jaeger, and searching it.

// jaegerClient is what the commands ask of Jaeger: jaeger.Client, or a
// test's fake through SourceOptions.dial.
type jaegerClient interface {
	Find(ctx context.Context, q jaeger.Query, set *trace.Set, progress func(jaeger.Stats)) (jaeger.Stats, error)
	Traces(ctx context.Context, q jaeger.Query, progress func(jaeger.Stats), st *jaeger.Stats) source.Traces
	Services(ctx context.Context) ([]string, error)
	Operations(ctx context.Context, service string) ([]jaeger.Operation, error)
	Close() error
}

// dialJaeger connects to the --jaeger server.
func (o *SourceOptions) dialJaeger() (jaegerClient, error) {
	if o.dial != nil {
		return o.dial(o.jaegerConfig())
	}
	return jaeger.Dial(o.jaegerConfig())
}

// jaegerAddr gives an address without a port Jaeger's query gRPC port,
// 16685, rather than let gRPC dial 443.
func jaegerAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	switch {
	case err == nil && port != "":
		return addr, nil
	case err == nil: // "host:"
		addr = host
	}
	host = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
	if host == "" || strings.ContainsAny(host, "/ \t") {
		return "", usagef("--jaeger %q: want host:port (Jaeger's query gRPC port is 16685)", addr)
	}
	return net.JoinHostPort(host, "16685"), nil
}

// JaegerConn says how to reach Jaeger: TLS, and a bearer token.
type JaegerConn struct {
	tlsFlags
	Token string
}

// jaegerConnFlags are JaegerConn's flags.
var jaegerConnFlags = append(tlsFlagNames("jaeger"), "jaeger-token")

func (c *JaegerConn) addFlags(f *pflag.FlagSet) {
	c.tlsFlags.add(f, "jaeger", "Jaeger")
	f.StringVar(&c.Token, "jaeger-token", "", "Jaeger: bearer token (or set KTRACE_JAEGER_TOKEN); never printed")
}

// check refuses flags that do not go together, and takes the token from
// KTRACE_JAEGER_TOKEN when no flag gave it.
func (c *JaegerConn) check(ios *IOStreams) error {
	if err := c.tlsFlags.check("jaeger"); err != nil {
		return err
	}
	if c.Token == "" && ios.Getenv != nil {
		c.Token = ios.Getenv("KTRACE_JAEGER_TOKEN")
	}
	return nil
}

func (o *SourceOptions) jaegerConfig() jaeger.Config {
	return jaeger.Config{Addr: o.Jaeger, Timeout: o.Timeout, MaxRecvBytes: o.MaxRecvMiB << 20, TLS: o.TLS,
		CAFile: o.CA, CertFile: o.Cert, KeyFile: o.Key, ServerName: o.ServerName, Token: o.Token}
}

// jaegerTraces yields each trace Jaeger has for the flags as it arrives,
// keeping none.
func (o *SourceOptions) jaegerTraces(ctx context.Context, ios *IOStreams) source.Traces {
	return func(yield func(*trace.Trace, error) bool) {
		stopped := false
		err := o.searchJaeger(ctx, ios, func(c jaegerClient, q jaeger.Query, progress func(jaeger.Stats)) (jaeger.Stats, error) {
			var st jaeger.Stats
			for t, err := range c.Traces(ctx, q, progress, &st) {
				if err != nil {
					return st, err
				}
				if !yield(t, nil) {
					stopped = true
					break
				}
			}
			return st, nil
		})
		if err != nil && !stopped {
			yield(nil, err)
		}
	}
}

// searchJaeger runs a search for the flags, with progress and warnings on
// stderr.
func (o *SourceOptions) searchJaeger(ctx context.Context, ios *IOStreams, search func(jaegerClient, jaeger.Query, func(jaeger.Stats)) (jaeger.Stats, error)) error {
	c, err := o.dialJaeger()
	if err != nil {
		return err
	}
	defer c.Close()
	start, end, _ := o.window()
	q := jaeger.Query{Services: o.Services, ByService: o.ByService, Operation: o.Operation, Start: start, End: end,
		PageSize: o.PageSize, Limit: o.Limit, Concurrency: o.Parallel}
	if len(o.Tags) > 0 {
		q.Tags = map[string]string{}
		for _, t := range o.Tags {
			k, v, _ := strings.Cut(t, "=")
			q.Tags[k] = v
		}
	}
	p := newProgress(ios)
	st, err := search(c, q, func(s jaeger.Stats) {
		p.update("fetching from %s: %d traces, %d spans, %d calls", o.Jaeger, s.Traces, s.Spans, s.Calls)
	})
	if err != nil {
		p.clear()
		return err
	}
	how := "all services at once"
	if st.PerService {
		how = "service by service"
	}
	p.done("fetched %s (%s) from %s in %s, %s", render.N(st.Traces, "trace"), render.N(st.Spans, "span"), o.Jaeger, render.N(st.Calls, "call"), how)
	if st.Truncated > 0 {
		fmt.Fprintf(ios.ErrOut, "ktrace: warning: %d time windows still returned a full page at the narrowest split; results may be truncated (raise --page-size)\n", st.Truncated)
	}
	if st.LimitReached {
		fmt.Fprintf(ios.ErrOut, "ktrace: warning: stopped at --limit %d traces; more match\n", o.Limit)
	}
	return nil
}
