package auth

import (
	"fmt"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/conf"
	"github.com/nats-io/nats-server/v2/server"
)

// Server is what a NATS server needs to enforce the roles of an auth
// directory.
type Server struct {
	// Options is server.conf loaded: trusted operator, system account and
	// the preloaded memory resolver. Set listen, JetStream and TLS on it.
	Options *server.Options
	// Account is the application account's public key: JetStream keeps its
	// streams under <store dir>/jetstream/<Account>.
	Account string
}

// LoadServer reads dir/server.conf.
func LoadServer(dir string) (*Server, error) {
	path := filepath.Join(dir, ServerConfFile)
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	preload, err := preloads(path)
	if err != nil {
		return nil, err
	}
	s := &Server{Options: opts}
	for acc := range preload {
		if acc != opts.SystemAccount {
			if s.Account != "" {
				return nil, fmt.Errorf("auth: %s: more than one application account", path)
			}
			s.Account = acc
		}
	}
	if s.Account == "" || len(opts.TrustedOperators) == 0 {
		return nil, fmt.Errorf("auth: %s: not written by storeloop auth init (no operator or account)", path)
	}
	return s, nil
}

// preloads are the account JWTs a server.conf preloads, by public key.
func preloads(path string) (map[string]any, error) {
	m, err := parseConf(path)
	if err != nil {
		return nil, err
	}
	preload, _ := m["resolver_preload"].(map[string]any)
	return preload, nil
}

func parseConf(path string) (map[string]any, error) {
	m, err := conf.ParseFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return m, nil
}
