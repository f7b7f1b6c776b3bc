package auth

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// revokeInServerConf revokes the user key user in the account JWT that
// dir's server.conf preloads, signed again with the operator key: every
// JWT of that user issued until now is refused by a server that loads the
// new server.conf (a restart, or a configuration reload).
func revokeInServerConf(dir string, operator nkeys.KeyPair, accPub, user string) error {
	path := filepath.Join(dir, ServerConfFile)
	m, err := parseConf(path)
	if err != nil {
		return err
	}
	opJWT, _ := m["operator"].(string)
	sysPub, _ := m["system_account"].(string)
	preload, _ := m["resolver_preload"].(map[string]any)
	accounts := make(map[string]string, len(preload))
	for k, v := range preload {
		if accounts[k], _ = v.(string); accounts[k] == "" {
			return fmt.Errorf("auth: %s: account %s has no JWT", path, k)
		}
	}
	if opJWT == "" || sysPub == "" || accounts[accPub] == "" {
		return fmt.Errorf("auth: %s: not written by storeloop auth init for this account", path)
	}
	ac, err := jwt.DecodeAccountClaims(accounts[accPub])
	if err != nil {
		return fmt.Errorf("auth: %s: account jwt: %w", path, err)
	}
	ac.Revoke(user)
	if accounts[accPub], err = ac.Encode(operator); err != nil {
		return fmt.Errorf("auth: account jwt: %w", err)
	}
	return writeFile(path, serverConf(opJWT, sysPub, accounts), 0o644)
}

// credsUserKey is the user public key of the credentials file at path.
func credsUserKey(path string) (string, error) {
	body, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	uc, err := userClaims(body)
	if err != nil {
		return "", fmt.Errorf("auth: %s: %w", path, err)
	}
	return uc.Subject, nil
}
