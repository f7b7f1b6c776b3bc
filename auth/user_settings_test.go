package auth_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/storenode"
)

// reload makes the running server enforce the auth directory as it is
// now on disk, as the store node does on SIGHUP.
func (s *secured) reload(t *testing.T) {
	t.Helper()
	as, err := auth.LoadServer(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.ecfg
	cfg.Auth, cfg.AuthAccount = as.Options, as.Account
	if err := storenode.ReloadEmbedded(s.srv, cfg); err != nil {
		t.Fatal(err)
	}
}

// A user issued after auth init has the permissions init wrote, for the
// names init was given (here a command prefix and stream of its own),
// without being told them again: the directory records them.
func TestAddUserKeepsInitSettings(t *testing.T) {
	s := startSecuredNode(t, storenode.EmbeddedConfig{}, auth.ConnConfig{},
		[]storenode.Option{storenode.WithCommandPrefix("shop"), storenode.WithStream("SHOP")},
		auth.WithCommandPrefix("shop"), auth.WithStream("SHOP"))
	ctx := ctxT(t)
	admin, err := client.New(s.admin, client.WithCommandPrefix("shop"), client.WithStream("SHOP"))
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Define(ctx, orders); err != nil {
		t.Fatal(err)
	}
	path, err := auth.AddUser(s.dir, auth.RoleClient, "app")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(s.dial(t, auth.ConnConfig{Creds: path}, nil), client.WithCommandPrefix("shop"), client.WithStream("SHOP"))
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := cl.Bucket("orders").Insert(ctx, events.Record{"status": "new"}); err != nil || rec["status"] != "new" {
		t.Fatalf("insert as the new user on prefix shop: %v, %v", rec, err)
	}
	path, err = auth.AddUser(s.dir, auth.RoleRuleNode, "r1")
	if err != nil {
		t.Fatal(err)
	}
	uc := userClaims(t, path)
	if !slices.Contains(uc.Permissions.Pub.Allow, "shop.>") || !slices.Contains(uc.Permissions.Pub.Allow, "$JS.API.STREAM.INFO.SHOP") ||
		slices.Contains(uc.Permissions.Pub.Allow, "store.>") {
		t.Fatalf("rule node user may publish %v, want shop.> and stream SHOP's", uc.Permissions.Pub.Allow)
	}
}

// auth user --force revokes the credentials it replaces: once the server
// reloads server.conf, the old ones are refused (and their connection
// closed), the new ones and every other user accepted.
func TestAddUserForceRevokes(t *testing.T) {
	s := startSecured(t, storenode.EmbeddedConfig{}, auth.ConnConfig{})
	ctx := ctxT(t)
	if err := s.client(t, s.admin).Define(ctx, orders); err != nil {
		t.Fatal(err)
	}
	path, err := auth.AddUser(s.dir, auth.RoleClient, "app")
	if err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(t.TempDir(), "old.creds")
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(old, body, 0o600); err != nil {
		t.Fatal(err)
	}
	oldConn := s.dial(t, auth.ConnConfig{Creds: old}, nil)
	if _, err := s.client(t, oldConn).Bucket("orders").Insert(ctx, events.Record{"status": "old"}); err != nil {
		t.Fatalf("insert with the first credentials: %v", err)
	}

	if _, err := auth.AddUser(s.dir, auth.RoleClient, "app", auth.WithForce()); err != nil {
		t.Fatal(err)
	}
	s.reload(t)

	opts, err := auth.ConnConfig{Creds: old}.NATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(s.srv.ClientURL(), append(opts, nats.NoReconnect())...); err == nil {
		nc.Close()
		t.Fatal("the replaced credentials still connect")
	}
	deadline := time.Now().Add(30 * time.Second)
	for oldConn.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("the replaced credentials' connection is still open")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}
	for _, creds := range []string{path, s.creds(auth.RoleClient)} {
		if _, err := s.client(t, s.dial(t, auth.ConnConfig{Creds: creds}, nil)).Bucket("orders").Insert(ctx, events.Record{"status": "new"}); err != nil {
			t.Fatalf("insert with %s: %v", creds, err)
		}
	}
}
