package services

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"

	"github.com/ktrace-dev/ktrace/stack/stargazers"
)

// SourceName is github-source's service.name.
const SourceName = "github-source"

// SourceOptions configure github-source.
type SourceOptions struct {
	// Live pages the real GitHub API (needs Token) instead of the fixture.
	Live  bool
	Token string
	// APIBase is the GitHub API root; default https://api.github.com.
	APIBase string
}

// ReplayResult is POST /replay's answer.
type ReplayResult struct {
	Sent      int `json:"sent"`
	Remaining int `json:"remaining"`
}

func kotelOpt(k *kotel.Kotel) kgo.Opt { return kgo.WithHooks(k.Hooks()...) }

// RunSource runs github-source until ctx ends. It emits nothing by itself:
// POST /replay?events=N&rate=R on its health address sends the next N
// events of the timeline (all that remain when N is 0) at R events per
// second (0: as fast as Kafka takes them).
func RunSource(ctx context.Context, cfg Config, opts SourceOptions) error {
	logger := cfg.logger(SourceName)
	var events []stargazers.Starred
	if opts.Live {
		var err error
		if events, err = fetchLive(ctx, opts, logger.Printf); err != nil {
			return err
		}
	} else {
		f, err := stargazers.Load()
		if err != nil {
			return err
		}
		events = f.Events
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].StarredAt.Before(events[j].StarredAt) })

	tp, err := cfg.provider(ctx, SourceName)
	if err != nil {
		return err
	}
	defer shutdown(tp)
	k := kotel.NewKotel(kotel.WithTracer(kotel.NewTracer(kotel.TracerProvider(tp), kotel.TracerPropagator(W3C))))
	cl, err := kgo.NewClient(kafkaOpts(&cfg, SourceName, kotelOpt(k))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := pingKafka(ctx, cl, cfg.Kafka); err != nil {
		return err
	}
	logger.Printf("ready: %d events to replay", len(events))

	var (
		mu   sync.Mutex
		next int
		c    Counters
	)
	c.watchBroker(ctx, cl)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /replay", func(w http.ResponseWriter, r *http.Request) {
		n, err1 := strconv.Atoi(r.URL.Query().Get("events"))
		rate, err2 := strconv.ParseFloat(r.URL.Query().Get("rate"), 64)
		if err1 != nil || err2 != nil || n < 0 || rate < 0 {
			http.Error(w, "want events=N (0: all remaining) and rate=R events per second (0: unlimited)", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if n == 0 || n > len(events)-next {
			n = len(events) - next
		}
		sent := 0
		for ; sent < n; sent++ {
			if err := r.Context().Err(); err != nil {
				break
			}
			ev := events[next]
			val, err := stargazers.Encode(ev.Event())
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			rec := &kgo.Record{Topic: ev.Topic(), Key: []byte(strconv.FormatInt(ev.User.ID, 10)), Value: val,
				Timestamp: ev.StarredAt, Context: context.Background()}
			if err := cl.ProduceSync(r.Context(), rec).FirstErr(); err != nil {
				logger.Printf("produce to %s failed: %v", ev.Topic(), err)
				http.Error(w, fmt.Sprintf("produce to %s: %v", ev.Topic(), err), http.StatusBadGateway)
				return
			}
			next++
			c.Produced.Add(1)
			if rate > 0 {
				time.Sleep(time.Duration(float64(time.Second) / rate))
			}
		}
		logger.Printf("replayed %d events, %d remain", sent, len(events)-next)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(ReplayResult{Sent: sent, Remaining: len(events) - next})
	})
	return serveHTTP(ctx, cfg.Health, SourceName, &c, mux)
}
