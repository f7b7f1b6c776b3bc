package auth

import (
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
)

// ConnConfig is how a storeloop process connects to a NATS server that
// enforces roles and TLS. The zero value connects without either.
type ConnConfig struct {
	Creds string // credentials file (<role>.creds)
	CA    string // PEM CA bundle to trust the server's certificate
	Cert  string // client certificate, when the server requires one (mutual TLS)
	Key   string // its private key
}

// Validate checks the files exist and belong together, so that a daemon
// fails at start rather than at its first reconnect.
func (c ConnConfig) Validate() error {
	_, err := c.check()
	return err
}

// check is Validate, returning the reply-inbox prefix of the credentials
// (read once): "" without credentials or for a user of another tool.
func (c ConnConfig) check() (inbox string, err error) {
	if (c.Cert == "") != (c.Key == "") {
		return "", errors.New("a client certificate needs both --tls-client-cert and --tls-client-key")
	}
	for _, f := range []string{c.Creds, c.CA, c.Cert, c.Key} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return "", err
		}
	}
	if c.Creds == "" {
		return "", nil
	}
	r, name, err := credsUser(c.Creds)
	if err != nil || r == "" {
		return "", err
	}
	return UserInbox(r, name), nil
}

// NATSOptions returns the nats.Options of c: the credentials, the inbox
// prefix of their user, the trusted CA and the client certificate.
func (c ConnConfig) NATSOptions() ([]nats.Option, error) {
	inbox, err := c.check()
	if err != nil {
		return nil, err
	}
	var opts []nats.Option
	if c.Creds != "" {
		opts = append(opts, nats.UserCredentials(c.Creds))
		if inbox != "" {
			opts = append(opts, nats.CustomInboxPrefix(inbox))
		}
	}
	if c.CA != "" {
		opts = append(opts, nats.RootCAs(c.CA))
	}
	if c.Cert != "" {
		opts = append(opts, nats.ClientCert(c.Cert, c.Key))
	}
	return opts, nil
}

// CredsRole returns the role of a credentials file Init or AddUser wrote
// (from the name of its user), or "" for a user of another name:
// credentials made by other tools work, with the default inbox prefix.
func CredsRole(path string) (Role, error) {
	r, _, err := credsUser(path)
	return r, err
}

// credsUser returns the role and user name (AddUser's; "" for the role's
// own user) of a credentials file.
func credsUser(path string) (Role, string, error) {
	body, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	uc, err := userClaims(body)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", path, err)
	}
	r, name, _ := parseUserName(uc.Name)
	return r, name, nil
}

func userClaims(creds []byte) (*jwt.UserClaims, error) {
	token, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return nil, fmt.Errorf("not a NATS credentials file: %w", err)
	}
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return nil, fmt.Errorf("not a NATS credentials file: %w", err)
	}
	return uc, nil
}
