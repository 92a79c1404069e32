package jaeger

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestConfigBindsLoopback(t *testing.T) {
	o := Options{Dir: "/tmp/x"}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	cfg := o.Config()
	for _, want := range []string{`"127.0.0.1:`, "max_traces: 100000", "jaeger_storage_exporter", "enable_tracing: false"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q", want)
		}
	}
	if strings.Contains(cfg, "0.0.0.0") || strings.Contains(cfg, "badger") {
		t.Error("config binds all interfaces or uses badger by default")
	}
	o.Persist = true
	if cfg := o.Config(); !strings.Contains(cfg, "badger:") || !strings.Contains(cfg, "/tmp/x/badger/keys") {
		t.Errorf("persist config:\n%s", cfg)
	}
}

func TestFindBinary(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "jaeger")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	if got, err := FindBinary(exe); err != nil || got != exe {
		t.Errorf("explicit: %q %v", got, err)
	}
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, []byte("x"), 0o644)
	if _, err := FindBinary(plain); err == nil {
		t.Error("non-executable accepted")
	}
	t.Setenv("KTRACE_JAEGER_BIN", "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("PATH", t.TempDir())
	if _, err := FindBinary(""); !errors.Is(err, ErrNoBinary) {
		t.Errorf("no binary anywhere: %v", err)
	}
}

// A binary that exits at once is reported with its log, and nothing is left running.
func TestStartFailureQuotesLog(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "fake-jaeger")
	os.WriteFile(exe, []byte("#!/bin/sh\necho 'cannot bind: address already in use' >&2\nexit 1\n"), 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Start(ctx, Options{Bin: exe, Dir: filepath.Join(dir, "run")})
	if err == nil || !strings.Contains(err.Error(), "exited during start-up") || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("error %v", err)
	}
}

func TestStartRealJaeger(t *testing.T) {
	bin, err := FindBinary("")
	if err != nil {
		t.Fatalf("%v (scripts/install-jaeger builds it)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := Start(ctx, Options{Bin: bin, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	p.Stop()
	if err := processAlive(pid); err == nil {
		t.Errorf("jaeger %d still running after Stop", pid)
	}
}

// FreePort picks ports below every system's ephemeral range, free to
// listen on, and not always the same one.
func TestFreePort(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if p < 20000 || p >= 32000 {
			t.Fatalf("port %d is outside 20000–32000", p)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		l.Close()
		seen[p] = true
	}
	if len(seen) < 2 {
		t.Fatalf("20 picks gave %d distinct ports", len(seen))
	}
}

// A collector and an ingester that reach Kafka with TLS and SASL: the
// settings land in the kafka exporter's and receiver's blocks, with no
// password (it comes from the environment), and a "$" the user gave
// cannot start a ${...} reference. The password's configuration keeps
// any password a string, as it was.
func TestConfigKafkaAuth(t *testing.T) {
	auth := KafkaAuth{TLS: true, CA: "/etc/ca.pem", ServerName: "kafka.internal", SASL: "scram-sha-512", User: "u$er"}
	for _, role := range []string{RoleCollector, RoleIngester} {
		o := Options{Dir: "/tmp/x", Role: role, KafkaBrokers: []string{"k1:9093"}, SpanTopic: "otlp_spans", KafkaAuth: auth}
		if err := o.defaults(); err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Receivers, Exporters map[string]struct {
				Brokers []string
				TLS     map[string]any
				Auth    struct{ SASL map[string]string }
			}
		}
		if err := yaml.Unmarshal([]byte(o.Config()), &cfg); err != nil {
			t.Fatalf("%s: %v\n%s", role, err, o.Config())
		}
		k, ok := cfg.Exporters["kafka"]
		if role == RoleIngester {
			k, ok = cfg.Receivers["kafka"]
		}
		want := map[string]string{"mechanism": "SCRAM-SHA-512", "username": "u$$er"}
		if !ok || k.Brokers[0] != "k1:9093" || k.TLS["ca_file"] != "/etc/ca.pem" || k.TLS["server_name_override"] != "kafka.internal" ||
			k.TLS["insecure"] != false || fmt.Sprint(k.Auth.SASL) != fmt.Sprint(want) {
			t.Errorf("%s: kafka settings %+v\n%s", role, k, o.Config())
		}
	}
	o := Options{Dir: "/tmp/x", Role: RoleCollector, KafkaBrokers: []string{"k1:9092"}, SpanTopic: "otlp_spans"}
	if cfg := o.Config(); strings.Contains(cfg, "tls:") || strings.Contains(cfg, "auth:") {
		t.Errorf("no TLS or SASL asked for, yet:\n%s", cfg)
	}
	for _, pass := range []string{"a: b", "#x", "{x}", "123", "null", `"q" ${env:HOME} $$`, "ü\t\x00"} {
		for role, kind := range map[string]string{RoleCollector: "exporters", RoleIngester: "receivers"} {
			var cfg map[string]map[string]struct {
				Auth struct{ SASL struct{ Password string } }
			}
			if err := yaml.Unmarshal([]byte(PasswordConfig(role, pass)), &cfg); err != nil {
				t.Fatalf("%q: %v", pass, err)
			}
			// The collector reads "$$" as "$".
			if got := strings.ReplaceAll(cfg[kind]["kafka"].Auth.SASL.Password, "$$", "$"); got != pass {
				t.Errorf("%s: password %q read as %q", role, pass, got)
			}
		}
	}
}

// A collector keying spans by trace ID says so to its kafka exporter.
func TestConfigSpansByTrace(t *testing.T) {
	o := Options{Dir: "/tmp/x", Role: RoleCollector, KafkaBrokers: []string{"k1:9092"}, SpanTopic: "otlp_spans", SpansByTrace: true}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Exporters struct {
			Kafka struct {
				Brokers             []string
				PartitionTracesByID bool `yaml:"partition_traces_by_id"`
			}
		}
	}
	if err := yaml.Unmarshal([]byte(o.Config()), &cfg); err != nil || !cfg.Exporters.Kafka.PartitionTracesByID || len(cfg.Exporters.Kafka.Brokers) != 1 {
		t.Errorf("%+v, %v:\n%s", cfg, err, o.Config())
	}
	o.SpansByTrace = false
	if strings.Contains(o.Config(), "partition_traces_by_id") {
		t.Errorf("keyed by trace although not asked:\n%s", o.Config())
	}
}
