package cli

import "github.com/spf13/pflag"

// tlsFlags are a client's TLS flags: --NAME-tls, --NAME-ca, --NAME-cert,
// --NAME-key and --NAME-server-name (Jaeger's and Kafka's).
type tlsFlags struct {
	TLS                       bool
	CA, Cert, Key, ServerName string
}

// tlsFlagNames are the TLS flags' names for NAME.
func tlsFlagNames(name string) []string {
	return []string{name + "-tls", name + "-ca", name + "-cert", name + "-key", name + "-server-name"}
}

// add registers the flags for name; label names the server in their help.
func (t *tlsFlags) add(f *pflag.FlagSet, name, label string) {
	f.BoolVar(&t.TLS, name+"-tls", false, label+": use TLS")
	f.StringVar(&t.CA, name+"-ca", "", label+": CA certificate `file` (PEM) for TLS (default: the system's)")
	f.StringVar(&t.Cert, name+"-cert", "", label+": client certificate `file` (PEM) for mutual TLS")
	f.StringVar(&t.Key, name+"-key", "", label+": client key `file` (PEM) for mutual TLS")
	f.StringVar(&t.ServerName, name+"-server-name", "", label+": TLS server name override")
}

// check refuses the flags for name that do not go together.
func (t *tlsFlags) check(name string) error {
	if (t.Cert == "") != (t.Key == "") {
		return usagef("--%s-cert and --%s-key go together", name, name)
	}
	if !t.TLS && (t.CA != "" || t.Cert != "" || t.ServerName != "") {
		return usagef("--%s-ca, --%s-cert and --%s-server-name need --%s-tls", name, name, name, name)
	}
	return nil
}
