//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/ktrace-dev/ktrace/internal/testenv"
)

// TestStreamSecured: a broker that takes only TLS connections
// authenticated with SASL SCRAM-SHA-256, as production clusters do. A
// `ktrace stream` member reaches it with --kafka-tls, --kafka-ca and
// --kafka-sasl (the password from KTRACE_KAFKA_PASSWORD), and graph
// --kafka with the same flags reads what it published: the recorded
// run's graph. A wrong password, no SASL, or a server certificate not
// trusted is exit 4 in one line naming the cause; the password is in no
// output and no log.
func TestStreamSecured(t *testing.T) {
	caFile, serverCert := testenv.TestCA(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}
	const user, pass = "ktrace", "s3cret-Pa55word"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "otlp_spans"), kfake.TLS(serverTLS),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", user, pass))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	secured := []string{"--kafka-tls", "--kafka-ca", caFile, "--kafka-sasl", "scram-sha-256", "--kafka-user", user}

	set := testenv.Fixture(t, "stargazers-lost")
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(caFile)
	pool.AppendCertsFromPEM(ca)
	producer, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	if err := producer.ProduceSync(context.Background(), spanRecords(t, "otlp_spans", set.Traces())...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var log bytes.Buffer
	member := exec.Command(ktraceBin, append([]string{"stream", "--kafka-brokers", brokers, "--topic", "otlp_spans", "--group", "g",
		"--trace-idle", "1s", "--window", "500ms"}, secured...)...)
	member.Env = append(os.Environ(), "KTRACE_KAFKA_PASSWORD="+pass)
	member.Stderr = &log
	if err := member.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- member.Wait() }()
	defer func() {
		member.Process.Signal(syscall.SIGTERM)
		if err := <-exited; err != nil {
			t.Errorf("the member stopped with %v", err)
		}
		if strings.Contains(log.String(), pass) {
			t.Error("the member's log holds the password")
		}
		t.Logf("the member:\n%s", log.String())
	}()

	ktrace := func(password string, args ...string) (stdout, stderr string, code int) {
		cmd := exec.Command(ktraceBin, args...)
		cmd.Env = append(os.Environ(), "KTRACE_KAFKA_PASSWORD="+password)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}
	want, _ := runOut(t, "graph", "--fixture", "stargazers-lost", "-o", "json")
	var got string
	for deadline := time.Now().Add(90 * time.Second); got != want; time.Sleep(time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("the graph read with --kafka over TLS and SASL never became the recorded run's:\n%s\nwant\n%s", head(got), head(want))
		}
		got, _, _ = ktrace(pass, append([]string{"graph", "--kafka", brokers, "--group", "g", "-o", "json"}, secured...)...)
	}

	for name, c := range map[string]struct {
		password string
		args     []string
		cause    string
	}{
		"a wrong password":          {"not-" + pass, secured, "SASL"},
		"no SASL":                   {pass, secured[:3], "SASL"},
		"a certificate not trusted": {pass, append([]string{"--kafka-tls"}, secured[3:]...), "certificate"},
	} {
		out, stderr, code := ktrace(c.password, append([]string{"graph", "--kafka", brokers, "--group", "g"}, c.args...)...)
		if code != 4 || out != "" || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.HasPrefix(stderr, "ktrace: ") ||
			!strings.Contains(stderr, c.cause) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q: want exit 4 and one line naming %q", name, code, head(out), stderr, c.cause)
		}
		if strings.Contains(stderr, pass) {
			t.Errorf("%s: stderr holds the password: %q", name, stderr)
		}
	}
	// A member given a wrong password stops, and says why.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wrong := exec.CommandContext(ctx, ktraceBin, append([]string{"stream", "--kafka-brokers", brokers, "--topic", "otlp_spans", "--group", "g2"}, secured...)...)
	wrong.Env = append(os.Environ(), "KTRACE_KAFKA_PASSWORD=not-"+pass)
	stderr, err := wrong.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 4 || !strings.Contains(string(stderr), "password") || strings.Contains(string(stderr), pass) {
		t.Errorf("a member with a wrong password: %v, %q: want exit 4 naming the password as a cause, not the password", err, stderr)
	}
}
