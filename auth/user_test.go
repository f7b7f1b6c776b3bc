package auth_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/storenode"
)

// Two named clients each get a reply inbox of their own: both call
// commands, neither may subscribe to the other's inbox nor to the shared
// client one.
func TestNamedUsersHaveTheirOwnInbox(t *testing.T) {
	s := startSecured(t, storenode.EmbeddedConfig{}, auth.ConnConfig{})
	ctx := ctxT(t)
	users := map[string]struct {
		role  auth.Role
		inbox string
	}{"a": {auth.RoleClient, "_INBOX_client_a"}, "b": {auth.RoleClient, "_INBOX_client_b"}, "r1": {auth.RoleRuleNode, "_INBOX_rulenode_r1"}}
	for name, u := range users {
		path, err := auth.AddUser(s.dir, u.role, name)
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(s.dir, string(u.role)+"_"+name+".creds"); path != want {
			t.Fatalf("creds at %s, want %s", path, want)
		}
		if r, err := auth.CredsRole(path); err != nil || r != u.role {
			t.Fatalf("%s: role %q, %v", path, r, err)
		}
	}
	if err := s.client(t, s.admin).Define(ctx, orders); err != nil {
		t.Fatal(err)
	}
	for name, u := range users {
		t.Run(name, func(t *testing.T) {
			errs := make(chan error, 16)
			nc := s.dial(t, auth.ConnConfig{Creds: filepath.Join(s.dir, auth.UserCredsFile(u.role, name))}, errs)
			if nc.Opts.InboxPrefix != u.inbox {
				t.Fatalf("inbox prefix %q, want %q", nc.Opts.InboxPrefix, u.inbox)
			}
			rec, err := s.client(t, nc).Bucket("orders").Insert(ctx, events.Record{"status": name})
			if err != nil || rec["status"] != name {
				t.Fatalf("insert as %s: %v, %v", name, rec, err)
			}
			for other, o := range users {
				if other == name {
					continue
				}
				for _, sub := range []string{o.inbox + ".>", o.inbox + ".x"} {
					if _, err := nc.SubscribeSync(sub); err != nil {
						t.Fatal(err)
					}
					wantViolation(t, errs, "subscription", sub)
				}
			}
			for _, sub := range []string{auth.InboxPrefix(u.role) + ".>", "_INBOX_" + string(u.role) + "_*.>"} {
				if _, err := nc.SubscribeSync(sub); err != nil {
					t.Fatal(err)
				}
				wantViolation(t, errs, "subscription", sub)
			}
		})
	}
}

// Only client and rule node users are issued by name, with a valid name,
// once (unless forced); a rotation revokes them with the roles' users.
func TestAddUserRefusals(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	if err := auth.Init(dir); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		role auth.Role
		name string
		want string
	}{
		{auth.RoleAdmin, "ops", "not a admin"},
		{auth.RoleStore, "s2", "not a store"},
		{auth.RoleClient, "a.b", "user name"},
		{auth.RoleClient, "", "user name"},
		{auth.RoleClient, "*", "user name"},
	} {
		if _, err := auth.AddUser(dir, tc.role, tc.name); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AddUser(%s, %q) = %v, want an error with %q", tc.role, tc.name, err, tc.want)
		}
	}
	path, err := auth.AddUser(dir, auth.RoleClient, "shop")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	if _, err := auth.AddUser(dir, auth.RoleClient, "shop"); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("second AddUser: %v, want refused", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("a refused AddUser changed the credentials")
	}
	if _, err := auth.AddUser(filepath.Join(t.TempDir(), "none"), auth.RoleClient, "shop"); err == nil {
		t.Fatal("AddUser into a directory without keys succeeded")
	}
}
