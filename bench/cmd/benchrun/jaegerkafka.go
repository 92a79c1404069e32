package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	sj "github.com/ktrace-dev/ktrace/stack/jaeger"
)

// jaegerSpanmetrics runs the Jaeger v2 binary as a kafka receiver feeding
// the spanmetrics connector (metrics out to a Prometheus endpoint, no
// trace storage), writes the records once it is ready, and waits until its
// receiver has accepted every span.
func jaegerSpanmetrics(ctx context.Context, work string, cluster *kfake.Cluster, brokers []string, name string, recs []*kgo.Record, spans int) procStat {
	topic := "spans-jaeger-" + name
	check(cluster.CreateTopic(topic, 6, nil))
	j := startJaegerSpanmetrics(ctx, work, brokers, topic)
	defer j.stop()
	before, start := statOf(j.pid), time.Now()
	produceRecords(ctx, brokers, topic, recs)
	j.await(spans, start)
	d := statOf(j.pid).sub(before)
	fmt.Fprintf(os.Stderr, "Jaeger kafka → spanmetrics: %s CPU for %d spans (%s)\n", d.cpu(), spans, d)
	return d
}

// jaegerProc is a Jaeger v2 process reading a topic with its kafka
// receiver into the spanmetrics connector.
type jaegerProc struct {
	pid       int
	telemetry string // its own metrics' address
	stop      func()
}

// startJaegerSpanmetrics starts Jaeger reading topic, in a consumer group
// named as the topic, and waits until it is ready and its group settled.
func startJaegerSpanmetrics(ctx context.Context, work string, brokers []string, topic string) jaegerProc {
	bin, err := sj.FindBinary("")
	check(err)
	health, telemetry, metrics := freeAddr(), freeAddr(), freeAddr()
	th, tp, _ := strings.Cut(telemetry, ":")
	config := fmt.Sprintf(`service:
  extensions: [healthcheckv2]
  pipelines:
    traces:
      receivers: [kafka]
      exporters: [spanmetrics]
    metrics:
      receivers: [spanmetrics]
      exporters: [prometheus]
  telemetry:
    metrics:
      level: normal
      readers:
        - pull:
            exporter:
              prometheus:
                host: %q
                port: %s
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: %q
receivers:
  kafka:
    brokers: [%q]
    group_id: %s
    initial_offset: earliest
    traces:
      topic: %q
      encoding: otlp_proto
connectors:
  spanmetrics: {}
exporters:
  prometheus:
    endpoint: %q
`, th, tp, health, brokers[0], topic, topic, metrics)
	path := filepath.Join(work, topic+".yaml")
	check(os.WriteFile(path, []byte(config), 0o600))
	log, err := os.Create(filepath.Join(work, topic+".log"))
	check(err)
	cmd := exec.Command(bin, "--config", path)
	cmd.Stdout, cmd.Stderr = log, log
	check(cmd.Start())
	stop := started(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait(); log.Close() })
	waitHTTP(ctx, "http://"+health+"/status")
	time.Sleep(2 * time.Second) // the group settled
	return jaegerProc{pid: cmd.Process.Pid, telemetry: telemetry, stop: stop}
}

// await waits until Jaeger's receiver has accepted spans spans.
func (j jaegerProc) await(spans int, start time.Time) {
	for accepted(j.telemetry) < spans {
		if time.Since(start) > 10*time.Minute {
			check(fmt.Errorf("jaeger: %d of %d spans accepted after 10 minutes", accepted(j.telemetry), spans))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// accepted is the spans Jaeger's receivers have accepted, from its own
// telemetry.
func accepted(telemetry string) int {
	resp, err := http.Get("http://" + telemetry + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	n := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "otelcol_receiver_accepted_spans") {
			if f := strings.Fields(line); len(f) >= 2 {
				v, _ := strconv.ParseFloat(f[len(f)-1], 64)
				n += v
			}
		}
	}
	return int(n)
}
