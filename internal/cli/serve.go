package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/render"
)

// ServeOptions are `ktrace serve`'s inputs.
type ServeOptions struct {
	IO       *IOStreams
	Source   SourceOptions
	Listen   string
	Interval time.Duration
	UIURL    string
}

// NewCmdServe builds `ktrace serve`.
func NewCmdServe(ios *IOStreams, runF func(context.Context, *ServeOptions) error) *cobra.Command {
	opts := &ServeOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the interactive service map, re-read from the source every --interval",
		Long: `Serves the map of ` + "`graph -o html`" + ` at / on --listen (loopback by default),
re-reading the traces (Jaeger's last --lookback, or the files) every
--interval; an open page reloads itself when the graph changed. /data.json
is the map's data; /healthz answers 200 while the last read succeeded.`,
		Example: `  ktrace serve --jaeger 127.0.0.1:16685 --lookback 15m
  ktrace serve --fixture stargazers-lost --listen 127.0.0.1:8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Interval < time.Second {
				return usagef("--interval %s: want at least 1s", opts.Interval)
			}
			if _, _, err := net.SplitHostPort(opts.Listen); err != nil {
				return usagef("--listen %q: want host:port", opts.Listen)
			}
			if err := opts.Source.validate(ios); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return serveRun(cmd.Context(), opts)
		},
	}
	opts.Source.register(cmd)
	f := cmd.Flags()
	f.StringVar(&opts.Listen, "listen", "127.0.0.1:16690", "`host:port` to serve the map on")
	f.DurationVar(&opts.Interval, "interval", 30*time.Second, "how often to re-read the traces")
	f.StringVar(&opts.UIURL, "ui-url", "", "Jaeger UI base `URL` for example trace links")
	return cmd
}

// liveMap is the page and data served, replaced whole on each read.
type liveMap struct {
	mu      sync.Mutex
	page    []byte
	data    []byte
	readAt  time.Time
	lastErr error
}

func (m *liveMap) get() (page, data []byte, readAt time.Time, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.page, m.data, m.readAt, m.lastErr
}

func serveRun(ctx context.Context, opts *ServeOptions) error {
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return usagef("--listen %s: %v", opts.Listen, err)
	}
	defer ln.Close()
	live := &liveMap{}
	read := func() error {
		g, rep, err := opts.Source.analyzeSource(ctx, opts.IO, 10*time.Millisecond, 0)
		if err == nil {
			var sp analyze.SPOFReport
			if sp, err = analyze.SPOF(g, nil); err == nil {
				d := render.ToMap(g, rep, sp, opts.UIURL)
				d.Live = int(opts.Interval / time.Second)
				body, _ := json.Marshal(d)
				sum := sha256.Sum256(body)
				d.Version = hex.EncodeToString(sum[:8])
				var page bytes.Buffer
				if err = render.HTML(&page, d); err == nil {
					data, _ := json.Marshal(d)
					live.mu.Lock()
					live.page, live.data, live.readAt = page.Bytes(), data, time.Now()
					live.mu.Unlock()
				}
			}
		}
		live.mu.Lock()
		live.lastErr = err
		live.mu.Unlock()
		return err
	}
	if err := read(); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		page, _, _, _ := live.get()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	mux.HandleFunc("GET /data.json", func(w http.ResponseWriter, _ *http.Request) {
		_, data, _, _ := live.get()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(data)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _, readAt, err := live.get()
		w.Header().Set("Content-Type", "application/json")
		h := map[string]any{"status": "ok", "read_at": readAt.UTC().Format(time.RFC3339)}
		if err != nil {
			h["status"], h["reason"] = "not ready", render.Terminal(oneLine(err.Error()))
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(h)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		tick := time.NewTicker(opts.Interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				srv.Shutdown(sctx)
				return
			case <-tick.C:
				if err := read(); err != nil && ctx.Err() == nil {
					fmt.Fprintf(opts.IO.ErrOut, "ktrace: warning: reading the traces again: %s (serving the last map)\n", render.Terminal(oneLine(err.Error())))
				}
			}
		}
	}()
	fmt.Fprintf(opts.IO.Out, "serving the map at http://%s/ (re-read every %s; Ctrl-C stops)\n", ln.Addr(), opts.Interval)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
