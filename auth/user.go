package auth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/storeloop/storeloop/events"
)

// A user's JWT name is its role, for the role's own user (<role>.creds),
// or <role>_<name> for a named one ([AddUser]); its reply-inbox prefix is
// _INBOX_ and that name, so every user subscribes below a prefix of its
// own and no user reads another's replies.

// UserInbox is the reply-inbox prefix of the user name of role r (""
// for the role's own user): _INBOX_<role> or _INBOX_<role>_<name>.
func UserInbox(r Role, name string) string { return "_INBOX_" + userName(r, name) }

func userName(r Role, name string) string {
	if name == "" {
		return string(r)
	}
	return string(r) + "_" + name
}

// UserCredsFile is the credentials file of the user name of role r in an
// auth directory: <role>.creds, or <role>_<name>.creds.
func UserCredsFile(r Role, name string) string { return userName(r, name) + ".creds" }

// parseUserName splits a JWT user name Init or AddUser wrote; ok is false
// for a name of another tool.
func parseUserName(s string) (r Role, name string, ok bool) {
	role, name, named := strings.Cut(s, "_")
	if !slices.Contains(Roles, Role(role)) || (named && !events.ValidBucketName(name)) {
		return "", "", false
	}
	return Role(role), name, true
}

// forUser is p for the user name of its role: subscribing below the user's
// own inbox instead of the role's.
func (p Permission) forUser(name string) Permission {
	own := InboxPrefix(p.Role) + ".>"
	p.Subscribe = slices.Clone(p.Subscribe)
	for i, s := range p.Subscribe {
		if s == own {
			p.Subscribe[i] = UserInbox(p.Role, name) + ".>"
		}
	}
	return p
}

// AddUser issues one more client or rule node user, name, in the auth
// directory dir (signed with dir's account key) and returns the path of its
// credentials file, <role>_<name>.creds. It has its role's permissions,
// except that it subscribes below its own inbox prefix: give every
// application its own user, so that none can read another's replies. The
// permissions are written anew for what [Init] was given, as dir's
// SettingsFile records it (command prefix, stream, rule sets, rule
// publish subjects, scope, limits), changed by opts; a directory without
// that file (written before it existed) needs opts to name them all.
//
// With [WithForce] an existing user is issued again and its old
// credentials are revoked in dir's server.conf: a server refuses them
// once it loads that file again (restart the store node, or reload
// nats-server).
func AddUser(dir string, r Role, name string, opts ...Option) (string, error) {
	if r != RoleClient && r != RoleRuleNode {
		return "", fmt.Errorf("auth: a named user is a %s or a %s, not a %s", RoleClient, RoleRuleNode, r)
	}
	if !events.ValidBucketName(name) {
		return "", fmt.Errorf("auth: user name %q: want letters, digits, '_' and '-' (at most 64)", name)
	}
	recorded, err := recordedOptions(dir)
	if err != nil {
		return "", err
	}
	c, err := newConfig(append(recorded, opts...))
	if err != nil {
		return "", err
	}
	c.keysFrom = dir
	operator, account, _, err := c.signers()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, UserCredsFile(r, name))
	var old string // the user key of the credentials replaced
	if _, err := os.Stat(path); err == nil && !c.force {
		return "", fmt.Errorf("auth: %s exists: --force to issue it again", path)
	} else if err == nil {
		if old, err = credsUserKey(path); err != nil {
			return "", fmt.Errorf("%w (cannot revoke it: remove the file to issue the user without revoking)", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("auth: %w", err)
	}
	var perm Permission
	for _, p := range c.rules() {
		if p.Role == r {
			perm = p.forUser(name)
		}
	}
	creds, err := issueUser(account, perm, c.limits, name)
	if err != nil {
		return "", err
	}
	// The old key is revoked before its file is replaced: whatever fails
	// after, the file still names the key to revoke, and running again
	// revokes it (again) and writes the new one. Never the new file with
	// the old key unrevoked.
	if old != "" {
		accPub, _ := account.PublicKey()
		if err := revokeInServerConf(dir, operator, accPub, old); err != nil {
			return "", err
		}
	}
	if err := writeFile(path, creds, 0o600); err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	return path, nil
}

// issueUser makes a new user of the account with p's permissions and
// returns its credentials file; name is "" for the role's own user.
func issueUser(account nkeys.KeyPair, p Permission, l Limits, name string) ([]byte, error) {
	user, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("auth: user key: %w", err)
	}
	pub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.Name = userName(p.Role, name)
	uc.Permissions.Pub.Allow.Add(p.Publish...)
	uc.Permissions.Pub.Deny.Add(p.Deny...)
	uc.Permissions.Sub.Allow.Add(p.Subscribe...)
	if limited(p.Role) {
		uc.Limits.Subs = l.Subscriptions
	}
	if p.Responses {
		uc.Permissions.Resp = &jwt.ResponsePermission{MaxMsgs: 1}
	}
	token, err := uc.Encode(account)
	if err != nil {
		return nil, fmt.Errorf("auth: %s jwt: %w", uc.Name, err)
	}
	seed, _ := user.Seed()
	return jwt.FormatUserConfig(token, seed)
}
