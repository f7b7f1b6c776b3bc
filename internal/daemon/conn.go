package daemon

import (
	"flag"

	"github.com/storeloop/storeloop/auth"
)

// Conn holds the flags of a daemon's NATS connection: credentials and TLS.
type Conn struct {
	auth.ConnConfig
}

// Register adds --creds, --tls-ca, --tls-client-cert and --tls-client-key
// to fs, with their environment fallbacks. caUsage describes --tls-ca (the
// store node gives it a second meaning).
func (c *Conn) Register(fs *flag.FlagSet, caUsage string) {
	fs.StringVar(&c.Creds, "creds", Env("STORELOOP_CREDS", ""), "NATS credentials file of this process's role, from storeloop auth init (env STORELOOP_CREDS)")
	fs.StringVar(&c.CA, "tls-ca", Env("STORELOOP_TLS_CA", ""), caUsage+" (env STORELOOP_TLS_CA)")
	fs.StringVar(&c.Cert, "tls-client-cert", Env("STORELOOP_TLS_CLIENT_CERT", ""), "client certificate, for a server that requires one (env STORELOOP_TLS_CLIENT_CERT)")
	fs.StringVar(&c.Key, "tls-client-key", Env("STORELOOP_TLS_CLIENT_KEY", ""), "private key of --tls-client-cert (env STORELOOP_TLS_CLIENT_KEY)")
}

// TrustCA is the usage of --tls-ca for a process that only connects.
const TrustCA = "PEM file of the CA that signed the NATS server's certificate"
