package daemon

import (
	"flag"

	"github.com/storeloop/storeloop/auth"
)

// Conn holds the flags of a daemon's NATS connection: credentials and TLS.
type Conn struct {
	auth.ConnConfig
}

// The environment fallbacks of the connection flags, shared with the CLI.
const (
	EnvCreds      = "STORELOOP_CREDS"
	EnvTLSCA      = "STORELOOP_TLS_CA"
	EnvClientCert = "STORELOOP_TLS_CLIENT_CERT"
	EnvClientKey  = "STORELOOP_TLS_CLIENT_KEY"
)

// Register adds --creds, --tls-ca, --tls-client-cert and --tls-client-key
// to fs, with their environment fallbacks. caUsage describes --tls-ca (the
// store node gives it a second meaning).
func (c *Conn) Register(fs *flag.FlagSet, caUsage string) {
	fs.StringVar(&c.Creds, "creds", Env(EnvCreds, ""), "NATS credentials file of this process's role, from storeloop auth init (env "+EnvCreds+")")
	fs.StringVar(&c.CA, "tls-ca", Env(EnvTLSCA, ""), caUsage+" (env "+EnvTLSCA+")")
	fs.StringVar(&c.Cert, "tls-client-cert", Env(EnvClientCert, ""), ClientCertUsage+" (env "+EnvClientCert+")")
	fs.StringVar(&c.Key, "tls-client-key", Env(EnvClientKey, ""), ClientKeyUsage+" (env "+EnvClientKey+")")
}

// Usages of the client certificate flags, shared with the CLI.
const (
	ClientCertUsage = "client certificate, for a server that requires one"
	ClientKeyUsage  = "private key of --tls-client-cert"
)

// TrustCA is the usage of --tls-ca for a process that only connects.
const TrustCA = "PEM file of the CA that signed the NATS server's certificate"
