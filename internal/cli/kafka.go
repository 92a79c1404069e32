package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/ktrace-dev/ktrace/analyze"
	"github.com/ktrace-dev/ktrace/graph"
	"github.com/ktrace-dev/ktrace/internal/engine"
	"github.com/ktrace-dev/ktrace/internal/tlsconf"
	"github.com/ktrace-dev/ktrace/stream"
)

// KafkaOptions say how to reach Kafka: `stream`'s flags, and the --kafka
// source's. The password is read from KTRACE_KAFKA_PASSWORD or a file,
// never from a flag (a command line is seen by every user of the
// machine), and is never printed.
type KafkaOptions struct {
	tlsFlags
	SASL, User, PasswordFile string
}

// kafkaFlags are the KafkaOptions' flags.
var kafkaFlags = append(tlsFlagNames("kafka"), "kafka-sasl", "kafka-user", "kafka-password-file")

func (o *KafkaOptions) addFlags(f *pflag.FlagSet) {
	o.tlsFlags.add(f, "kafka", "Kafka")
	f.StringVar(&o.SASL, "kafka-sasl", "", "Kafka: SASL `mechanism`, plain, scram-sha-256 or scram-sha-512 (with --kafka-user)")
	f.StringVar(&o.User, "kafka-user", "", "Kafka: SASL user `name`; the password is KTRACE_KAFKA_PASSWORD, or --kafka-password-file")
	f.StringVar(&o.PasswordFile, "kafka-password-file", "", "Kafka: read the SASL password from this `file` (its first line); never printed")
}

// saslMechanisms are the --kafka-sasl mechanisms, by name.
var saslMechanisms = map[string]func(user, pass string) sasl.Mechanism{
	"plain":         func(u, p string) sasl.Mechanism { return plain.Auth{User: u, Pass: p}.AsMechanism() },
	"scram-sha-256": func(u, p string) sasl.Mechanism { return scram.Auth{User: u, Pass: p}.AsSha256Mechanism() },
	"scram-sha-512": func(u, p string) sasl.Mechanism { return scram.Auth{User: u, Pass: p}.AsSha512Mechanism() },
}

// connect checks the flags and makes what reaches Kafka at brokers
// (host:port,...): usage errors for flags that do not go together, or
// files that do not read.
func (o *KafkaOptions) connect(ios *IOStreams, brokers string) (stream.Kafka, error) {
	k := stream.Kafka{Brokers: strings.Split(brokers, ",")}
	if err := o.tlsFlags.check("kafka"); err != nil {
		return k, err
	}
	mechanism, known := saslMechanisms[strings.ToLower(o.SASL)]
	switch {
	case o.SASL == "" && (o.User != "" || o.PasswordFile != ""):
		return k, usagef("--kafka-user and --kafka-password-file need --kafka-sasl")
	case o.SASL != "" && o.User == "":
		return k, usagef("--kafka-sasl needs --kafka-user")
	case o.SASL != "" && !known:
		return k, usagef("--kafka-sasl %q: want plain, scram-sha-256 or scram-sha-512", o.SASL)
	}
	if o.TLS {
		tc, err := tlsconf.Load("kafka", o.CA, o.Cert, o.Key, o.ServerName)
		if err != nil {
			return k, usagef("%v", err)
		}
		k.TLS = tc
	}
	if o.SASL == "" {
		return k, nil
	}
	pass, err := o.password(ios)
	if err != nil {
		return k, err
	}
	if !o.TLS && strings.EqualFold(o.SASL, "plain") {
		fmt.Fprintln(ios.ErrOut, "ktrace: warning: --kafka-sasl plain without --kafka-tls sends the password in the clear")
	}
	k.SASL = mechanism(o.User, pass)
	return k, nil
}

// password is the SASL password: the first line of --kafka-password-file,
// else KTRACE_KAFKA_PASSWORD.
func (o *KafkaOptions) password(ios *IOStreams) (string, error) {
	if o.PasswordFile != "" {
		p, err := stream.ReadPasswordFile(o.PasswordFile)
		if err != nil {
			return "", usagef("reading --kafka-password-file: %v", err)
		}
		return p, nil
	}
	if ios.Getenv != nil {
		if p := ios.Getenv("KTRACE_KAFKA_PASSWORD"); p != "" {
			return p, nil
		}
	}
	return "", usagef("--kafka-sasl needs a password: set KTRACE_KAFKA_PASSWORD, or give --kafka-password-file")
}

// aclHint adds to err, when Kafka refused an operation for want of an ACL,
// where the README lists the ACLs who needs.
func aclHint(err error, who string) error {
	for _, denied := range []error{kerr.TopicAuthorizationFailed, kerr.GroupAuthorizationFailed, kerr.TransactionalIDAuthorizationFailed,
		kerr.ClusterAuthorizationFailed} {
		if errors.Is(err, denied) {
			return fmt.Errorf("%w (the Kafka user lacks an ACL: the README's \"At scale\" lists those a %s needs)", err, who)
		}
	}
	return err
}

// readKafka merges the partial results a ktrace stream group published in
// the window: the graph and breaks of the traces it analysed (with the
// stream's skew tolerance).
func (o *SourceOptions) readKafka(ctx context.Context, ios *IOStreams) (*graph.Graph, analyze.Report, error) {
	start, end, _ := o.window()
	if o.Since == "" && o.Until == "" {
		start, end = time.Time{}, time.Time{} // everything published
	}
	p := newProgress(ios)
	part, err := stream.ReadResults(ctx, o.kafka, o.Group, start, end, func(n int) {
		p.update("reading the results of group %s: %d partials", o.Group, n)
	})
	p.clear()
	if errors.Is(err, stream.ErrNoResults) {
		fmt.Fprintf(ios.ErrOut, "ktrace: warning: %v\n", err)
		g, rep, err := engine.Run(ctx, engine.Slice(nil), engine.Options{})
		return g, rep, err
	}
	if err != nil {
		return nil, analyze.Report{}, withCode(ExitBackend, aclHint(err, "reader of results"))
	}
	g, rep := part.Finish()
	if g.Traces == 0 {
		fmt.Fprintln(ios.ErrOut, "ktrace: warning: no traces found")
	}
	return g, rep, nil
}
