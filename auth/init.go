package auth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// Files of an auth directory besides the credentials.
const (
	ServerConfFile  = "server.conf"      // server side: include it in nats-server's config
	keysDir         = "keys"             // seeds that sign; never given to a process
	operatorKeyFile = "keys/operator.nk" // operator seed
	accountKeyFile  = "keys/account.nk"  // application account seed
	systemKeyFile   = "keys/system.nk"   // system account seed
)

// Names in the JWTs, for people reading them (nsc, nats server list).
const (
	operatorName = "storeloop"
	accountName  = "STORELOOP"
	systemName   = "SYS"
)

// Init writes an auth directory: one credentials file per role, server.conf
// and keys/. dir is created, or must be empty unless [WithForce].
func Init(dir string, opts ...Option) error {
	c, err := newConfig(opts)
	if err != nil {
		return err
	}
	if err := prepareDir(dir, c.force); err != nil {
		return err
	}
	operator, account, system, err := c.signers()
	if err != nil {
		return err
	}
	opPub, _ := operator.PublicKey()
	accPub, _ := account.PublicKey()
	sysPub, _ := system.PublicKey()

	// Users are issued first: the account JWT revokes the old directory's.
	files := map[string][]byte{}
	for _, p := range c.rules() {
		creds, err := issueUser(account, p, c.limits, "")
		if err != nil {
			return err
		}
		files[p.Role.CredsFile()] = creds
	}

	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = operatorName
	oc.SystemAccount = sysPub
	opJWT, err := oc.Encode(operator)
	if err != nil {
		return fmt.Errorf("auth: operator jwt: %w", err)
	}
	ac := jwt.NewAccountClaims(accPub)
	ac.Name = accountName
	// Without JetStream limits the account has no JetStream at all.
	ac.Limits.JetStreamLimits = c.limits.jetStream()
	if c.keysFrom != "" {
		if err := revokeUsers(ac, c.keysFrom); err != nil {
			return err
		}
	}
	accJWT, err := ac.Encode(operator)
	if err != nil {
		return fmt.Errorf("auth: account jwt: %w", err)
	}
	sc := jwt.NewAccountClaims(sysPub)
	sc.Name = systemName
	sysJWT, err := sc.Encode(operator)
	if err != nil {
		return fmt.Errorf("auth: system account jwt: %w", err)
	}
	if files[SettingsFile], err = c.settings(); err != nil {
		return fmt.Errorf("auth: settings: %w", err)
	}
	files[ServerConfFile] = serverConf(opJWT, sysPub, map[string]string{accPub: accJWT, sysPub: sysJWT})
	for name, kp := range map[string]nkeys.KeyPair{operatorKeyFile: operator, accountKeyFile: account, systemKeyFile: system} {
		seed, _ := kp.Seed()
		files[name] = append(seed, '\n')
	}
	// Each file whole (written aside, then renamed), and server.conf last:
	// a rotation in place that is killed half-way leaves the old
	// server.conf, which still admits the new users, never a server.conf
	// that revokes credentials not yet replaced.
	names := make([]string, 0, len(files))
	for name := range files {
		if name != ServerConfFile {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range append(names, ServerConfFile) {
		mode := os.FileMode(0o600)
		if name == ServerConfFile || name == SettingsFile {
			mode = 0o644 // public: may be copied next to a server's configuration
		}
		if err := writeFile(filepath.Join(dir, name), files[name], mode); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	return nil
}

// writeFile replaces path with body at once: a reader sees the old file or
// the new one, never part of it. The file aside is created afresh (a
// leftover one is removed, not written through: its mode or a symlink
// would expose the secret) and synced before the rename, so that a crash
// leaves the old file or the whole new one, in the order written.
func writeFile(path string, body []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	err = f.Chmod(mode) // exactly mode, whatever the umask
	if err == nil {
		_, err = f.Write(body)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// prepareDir creates dir and keys/, refusing to mix new credentials into a
// directory that has files, unless force.
func prepareDir(dir string, force bool) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("auth: %w", err)
	case len(entries) > 0 && !force:
		return fmt.Errorf("auth: %s is not empty: give a new directory, or --force to overwrite its credentials", dir)
	}
	if err := os.MkdirAll(filepath.Join(dir, keysDir), 0o700); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return os.Chmod(dir, 0o700)
}

// signers returns the operator, account and system keys: new ones, or
// those of c.keysFrom.
func (c *config) signers() (operator, account, system nkeys.KeyPair, err error) {
	if c.keysFrom == "" {
		if operator, err = nkeys.CreateOperator(); err == nil {
			if account, err = nkeys.CreateAccount(); err == nil {
				system, err = nkeys.CreateAccount()
			}
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("auth: keys: %w", err)
		}
		return operator, account, system, nil
	}
	read := func(name string, prefix nkeys.PrefixByte) (nkeys.KeyPair, error) {
		seed, err := os.ReadFile(filepath.Join(c.keysFrom, name))
		if err != nil {
			return nil, fmt.Errorf("auth: reuse keys: %w", err)
		}
		kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
		if err != nil {
			return nil, fmt.Errorf("auth: %s: %w", name, err)
		}
		pub, _ := kp.PublicKey()
		if !nkeys.IsValidPublicKey(pub) || nkeys.Prefix(pub) != prefix {
			return nil, fmt.Errorf("auth: %s: not the expected kind of key", name)
		}
		return kp, nil
	}
	if operator, err = read(operatorKeyFile, nkeys.PrefixByteOperator); err != nil {
		return nil, nil, nil, err
	}
	if account, err = read(accountKeyFile, nkeys.PrefixByteAccount); err != nil {
		return nil, nil, nil, err
	}
	if system, err = read(systemKeyFile, nkeys.PrefixByteAccount); err != nil {
		return nil, nil, nil, err
	}
	return operator, account, system, nil
}

// revokeUsers revokes, in ac, every user whose credentials are in dir, and
// keeps the revocations of dir's own account JWT: a rotation must not give
// back their rights to the users an earlier rotation revoked.
func revokeUsers(ac *jwt.AccountClaims, dir string) error {
	if err := keepRevocations(ac, dir); err != nil {
		return err
	}
	// The roles' users and the named ones (AddUser).
	files, err := filepath.Glob(filepath.Join(dir, "*.creds"))
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	for _, path := range files {
		body, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("auth: %w", err)
		}
		uc, err := userClaims(body)
		if err != nil {
			return fmt.Errorf("auth: %s: %w", path, err)
		}
		// Every JWT of this user issued up to now.
		ac.Revoke(uc.Subject)
	}
	return nil
}

// serverConf is the server-side configuration: trust the operator, know the
// accounts from memory. It carries public JWTs only.
func serverConf(operatorJWT, systemAccount string, accounts map[string]string) []byte {
	var b strings.Builder
	b.WriteString("# storeloop roles (storeloop auth init). No secrets: public JWTs only.\n")
	b.WriteString("# Use: storenode --auth DIR, or `include \"" + ServerConfFile + "\"` in a nats-server config.\n")
	fmt.Fprintf(&b, "operator: %s\n", operatorJWT)
	fmt.Fprintf(&b, "system_account: %s\n", systemAccount)
	b.WriteString("resolver: MEMORY\nresolver_preload: {\n")
	keys := make([]string, 0, len(accounts))
	for k := range accounts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s: %s\n", k, accounts[k])
	}
	b.WriteString("}\n")
	return []byte(b.String())
}

// keepRevocations copies into ac the revocations of the account JWT that
// dir's server.conf, if any, preloads for ac's account.
func keepRevocations(ac *jwt.AccountClaims, dir string) error {
	path := filepath.Join(dir, ServerConfFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	preload, err := preloads(path)
	if err != nil {
		return err
	}
	token, _ := preload[ac.Subject].(string)
	if token == "" {
		return nil // another account: its users are not ours
	}
	prev, err := jwt.DecodeAccountClaims(token)
	if err != nil {
		return fmt.Errorf("auth: %s: account jwt: %w", path, err)
	}
	for pub, at := range prev.Revocations {
		ac.RevokeAt(pub, time.Unix(at, 0))
	}
	return nil
}
