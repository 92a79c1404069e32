//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/ktrace-dev/ktrace/internal/testenv"
	"github.com/ktrace-dev/ktrace/stack"
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
		return runEnv(t, append(os.Environ(), "KTRACE_KAFKA_PASSWORD="+password), args...)
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

// TestStackOnSecuredKafka: `ktrace stack up --kafka-brokers` on a cluster
// that takes only mutual TLS (a client certificate its authority signed)
// with SASL SCRAM-SHA-512 logins, spans through Kafka keyed by trace ID
// (--spans-by-trace: the collector's partition_traces_by_id, the members'
// --partitioned-by-trace):
// the services, the Jaeger collector and ingester and two `ktrace stream`
// members all log in, with the password read from --kafka-password-file.
// The graph read with --kafka equals the ingester's, and the password is
// in no file under the state directory, no command line and no output.
// The Kafka flags without --kafka-brokers are a usage error; a wrong
// password is exit 4 in one line.
func TestStackOnSecuredKafka(t *testing.T) {
	pki := testenv.TestPKI(t)
	// YAML and the collector's ${...} must not read the password as they
	// read their own.
	const user, pass = "stack-user", `An0ther: "s3cret" #1 ${env:HOME} {x}`
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pki.Server}, MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.CA}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", user, pass))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close) // after the stack is down
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	passFile := filepath.Join(t.TempDir(), "kafka-password")
	if err := os.WriteFile(passFile, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secured := []string{"--kafka-tls", "--kafka-ca", pki.CAFile, "--kafka-cert", pki.ClientCert, "--kafka-key", pki.ClientKey,
		"--kafka-sasl", "scram-sha-512", "--kafka-user", user}
	var env []string // without the password
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KTRACE_KAFKA_PASSWORD=") {
			env = append(env, kv)
		}
	}
	run := func(args ...string) (stdout, stderr string, code int) { return runEnv(t, env, args...) }

	o := stackOptions(t, "lost")
	up := func(passwordFile string) (stdout, stderr string, code int) {
		args := append([]string{"stack", "up", "--state-dir", o.StateDir, "--kafka-brokers", brokers, "--spans-via-kafka", "--stream-replicas", "2", "--spans-by-trace",
			"--jaeger-grpc-port", fmt.Sprint(o.JaegerGRPCPort), "--jaeger-ui-port", fmt.Sprint(o.JaegerUIPort),
			"--otlp-port", fmt.Sprint(o.OTLPPort), "--api-port", fmt.Sprint(o.APIPort), "--kafka-password-file", passwordFile}, secured...)
		return run(args...)
	}

	wrongFile := filepath.Join(t.TempDir(), "wrong-password")
	os.WriteFile(wrongFile, []byte("not-"+pass), 0o600)
	out, stderr, code := up(wrongFile)
	if code != 4 || out != "" || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "SASL login") {
		t.Errorf("stack up with a wrong password: exit %d, stdout %q, stderr %q: want exit 4 and one line naming the login", code, out, stderr)
	}
	if _, _, code := run("stack", "up", "--state-dir", t.TempDir(), "--kafka-tls"); code != 2 {
		t.Errorf("--kafka-tls without --kafka-brokers: exit %d, want 2", code)
	}

	for attempt := 1; ; attempt++ {
		out, stderr, code = up(passFile)
		if code == 0 || attempt == 3 || !strings.Contains(stderr, "already in use") {
			break
		}
		t.Logf("a port was taken meanwhile; picking others")
		o = stackOptions(t, "lost")
	}
	if code != 0 {
		t.Fatalf("stack up: exit %d\n%s\n%s", code, out, stderr)
	}
	st, err := stack.Load(o.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Component(stack.Stream + "-1"); m == nil || !slices.Contains(m.Argv, "--partitioned-by-trace") {
		t.Errorf("the first member: %+v, want one reading spans keyed by trace", m)
	}
	downAtCleanup(t, o.StateDir)
	if !strings.Contains(out, strings.Join(secured, " ")) {
		t.Errorf("stack up does not say how to read the graph from this cluster:\n%s", out)
	}
	if _, err := stack.Traffic(context.Background(), o.StateDir, 0, 0); err != nil {
		t.Fatal(err)
	}
	waitAnswer(t, st.Endpoints.API)
	stableTraces(t, st.Endpoints.JaegerQuery)
	want, _ := runOut(t, "graph", "--jaeger", st.Endpoints.JaegerQuery, "-o", "json")
	var got string
	for deadline := time.Now().Add(90 * time.Second); got != want; time.Sleep(time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("the graph read with --kafka never became the ingester's:\n%s\nwant\n%s", head(got), head(want))
		}
		got, _, _ = run(append([]string{"graph", "--kafka", brokers, "--group", stack.StreamGroup, "-o", "json", "--kafka-password-file", passFile}, secured...)...)
	}
	if !strings.Contains(got, `"stargazers-join"`) {
		t.Errorf("the graph lacks the join:\n%s", head(got))
	}
	// Without its certificate a client is refused.
	noCert := append(append([]string{"graph", "--kafka", brokers, "--group", stack.StreamGroup, "--kafka-password-file", passFile}, secured[:3]...), secured[7:]...)
	if out, stderr, code := run(noCert...); code != 4 || out != "" || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "certificate") {
		t.Errorf("graph --kafka without a client certificate: exit %d, stdout %q, stderr %q: want exit 4 and one line naming the certificate", code, head(out), stderr)
	}

	// A member and the collector started again read the password file
	// again: this shell has no password in its environment.
	for _, name := range []string{stack.Stream + "-1", stack.JaegerCollector} {
		if _, stderr, code := run("stack", "restart", name, "--state-dir", o.StateDir); code != 0 {
			t.Errorf("stack restart %s: exit %d: %s", name, code, stderr)
		}
	}
	if st, err = stack.Load(o.StateDir); err != nil {
		t.Fatal(err)
	}

	// The password is nowhere the stack wrote, nor on a command line.
	filepath.WalkDir(o.StateDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(pass)) {
			t.Errorf("%s holds the password", path)
		}
		return nil
	})
	for _, c := range st.Components {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c.Pid))
		if err != nil || bytes.Contains(cmdline, []byte(pass)) {
			t.Errorf("%s: command line %q (%v)", c.Name, cmdline, err)
		}
	}
	if strings.Contains(out+stderr, pass) {
		t.Error("stack up's output holds the password")
	}
}

// TestDemoOnSecuredKafka: `ktrace demo --spans-via-kafka` on a cluster
// that takes only TLS with SASL logins reads the graph its stream members
// published over TLS and SASL too, with the password from the environment.
func TestDemoOnSecuredKafka(t *testing.T) {
	caFile, serverCert := testenv.TestCA(t)
	const user, pass = "demo", "d3mo-pa55"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", user, pass))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	o := stackOptions(t, "")
	cmd := exec.Command(ktraceBin, "demo", "--state-dir", o.StateDir, "--kafka-brokers", strings.Join(cluster.ListenAddrs(), ","), "--spans-via-kafka",
		"--jaeger-grpc-port", fmt.Sprint(o.JaegerGRPCPort), "--jaeger-ui-port", fmt.Sprint(o.JaegerUIPort), "--otlp-port", fmt.Sprint(o.OTLPPort),
		"--api-port", fmt.Sprint(o.APIPort), "--kafka-tls", "--kafka-ca", caFile, "--kafka-sasl", "scram-sha-256", "--kafka-user", user)
	cmd.Env = append(os.Environ(), "KTRACE_KAFKA_PASSWORD="+pass)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("demo: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	for _, want := range []string{
		"stargazers-join\ttopic:stargazers-results\tproduce\tstitched\t",
		"stargazers-api holds the 24 logins that starred both repositories within 10 days, as expected",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "reading the graph ktrace stream published") || strings.Contains(stdout.String()+stderr.String(), pass) {
		t.Errorf("demo's stderr:\n%s", stderr.String())
	}
}

// runEnv runs ktrace in the environment env and returns its stdout, its
// stderr and its exit code.
func runEnv(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(ktraceBin, args...)
	cmd.Env = env
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

// memberACLs are the ACLs README's "At scale" lists for a member of group
// on the span topic, reading it, and readerACLs for a reader of its
// results (--kafka).
func memberACLs(topic, group string) []kfake.ACL {
	var acls []kfake.ACL
	add := func(r kmsg.ACLResourceType, name string, p kmsg.ACLResourcePatternType, ops ...kmsg.ACLOperation) {
		for _, op := range ops {
			acls = append(acls, kfake.ACL{Resource: r, Name: name, Pattern: p, Operation: op, Allow: true})
		}
	}
	lit, pre := kmsg.ACLResourcePatternTypeLiteral, kmsg.ACLResourcePatternTypePrefixed
	add(kmsg.ACLResourceTypeTopic, topic, lit, kmsg.ACLOperationRead, kmsg.ACLOperationDescribe)
	add(kmsg.ACLResourceTypeTopic, "ktrace."+group+".", pre, kmsg.ACLOperationCreate, kmsg.ACLOperationRead, kmsg.ACLOperationWrite,
		kmsg.ACLOperationDescribe, kmsg.ACLOperationAlter)
	add(kmsg.ACLResourceTypeGroup, group, lit, kmsg.ACLOperationRead)
	add(kmsg.ACLResourceTypeGroup, "ktrace."+group+".", pre, kmsg.ACLOperationRead)
	add(kmsg.ACLResourceTypeTransactionalId, "ktrace-stream-"+group+"-", pre, kmsg.ACLOperationWrite, kmsg.ACLOperationDescribe)
	return acls
}

func readerACLs(group string) []kfake.ACL {
	var acls []kfake.ACL
	for _, op := range []kmsg.ACLOperation{kmsg.ACLOperationRead, kmsg.ACLOperationDescribe} {
		acls = append(acls, kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "ktrace." + group + ".results",
			Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true})
	}
	return acls
}

// TestStreamLeastPrivilege: on a cluster that checks ACLs, a member
// logged in as a user with only the ACLs README lists for it, and a
// reader with only those for reading results, give the recorded run's
// graph; a reader with no ACL is refused in one line, exit 4.
func TestStreamLeastPrivilege(t *testing.T) {
	const group = "prod"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "otlp_spans"), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("SCRAM-SHA-256", "admin", "admin-pw"),
		kfake.User("SCRAM-SHA-256", "member", "member-pw", memberACLs("otlp_spans", group)...),
		kfake.User("SCRAM-SHA-256", "reader", "reader-pw", readerACLs(group)...),
		kfake.User("SCRAM-SHA-256", "nobody", "nobody-pw"),
		kfake.User("SCRAM-SHA-256", "no-txn", "no-txn-pw", slices.DeleteFunc(memberACLs("otlp_spans", group), func(a kfake.ACL) bool {
			return a.Resource == kmsg.ACLResourceTypeTransactionalId
		})...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close) // after the member stops: cleanups run last first
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	set := testenv.Fixture(t, "stargazers-lost")
	producer, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.SASL(scram.Auth{User: "admin", Pass: "admin-pw"}.AsSha256Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	if err := producer.ProduceSync(context.Background(), spanRecords(t, "otlp_spans", set.Traces())...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	login := func(user string) []string { return []string{"--kafka-sasl", "scram-sha-256", "--kafka-user", user} }
	startMember(t, append(os.Environ(), "KTRACE_KAFKA_PASSWORD=member-pw"), append([]string{"--kafka-brokers", brokers, "--topic", "otlp_spans",
		"--group", group, "--trace-idle", "1s", "--window", "500ms"}, login("member")...)...)
	want, _ := runOut(t, "graph", "--fixture", "stargazers-lost", "-o", "json")
	env := append(os.Environ(), "KTRACE_KAFKA_PASSWORD=reader-pw")
	var got, stderr string
	for deadline := time.Now().Add(90 * time.Second); got != want; time.Sleep(time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("the graph read with the reader's ACLs never became the recorded run's:\n%s\n%s\nwant\n%s", stderr, head(got), head(want))
		}
		got, stderr, _ = runEnv(t, env, append([]string{"graph", "--kafka", brokers, "--group", group, "-o", "json"}, login("reader")...)...)
	}
	out, stderr, code := runEnv(t, append(os.Environ(), "KTRACE_KAFKA_PASSWORD=nobody-pw"),
		append([]string{"graph", "--kafka", brokers, "--group", group}, login("nobody")...)...)
	if code != 4 || out != "" || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "lacks an ACL") {
		t.Errorf("a reader with no ACL: exit %d, stdout %q, stderr %q: want exit 4 and one line saying it lacks an ACL", code, head(out), stderr)
	}
	// A member that may not use its transactional IDs stops, and says why.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	denied := exec.CommandContext(ctx, ktraceBin, append([]string{"stream", "--kafka-brokers", brokers, "--topic", "otlp_spans", "--group", group,
		"--trace-idle", "1s", "--window", "500ms"}, login("no-txn")...)...)
	denied.Env = append(os.Environ(), "KTRACE_KAFKA_PASSWORD=no-txn-pw")
	var deniedErr bytes.Buffer
	denied.Stderr = &deniedErr
	err = denied.Run()
	lines := strings.Split(strings.TrimSpace(deniedErr.String()), "\n")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 4 || !strings.HasPrefix(lines[len(lines)-1], "ktrace: ") ||
		!strings.Contains(lines[len(lines)-1], "TRANSACTIONAL_ID_AUTHORIZATION_FAILED") || !strings.Contains(lines[len(lines)-1], "lacks an ACL") {
		t.Errorf("a member without its transactional IDs' ACLs: %v, its last line %q: want exit 4 saying it lacks an ACL", err, lines[len(lines)-1])
	}
}

// startMember starts `ktrace stream` with args in the environment env
// (nil: this process's), and stops it when the test ends, showing its log
// if the test failed.
func startMember(t *testing.T, env []string, args ...string) {
	t.Helper()
	var log testenv.Buffer
	member := exec.Command(ktraceBin, append([]string{"stream"}, args...)...)
	member.Env, member.Stderr = env, &log
	if err := member.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		member.Process.Signal(syscall.SIGTERM)
		member.Wait()
		if t.Failed() {
			t.Logf("the member:\n%s", log.String())
		}
	})
}
