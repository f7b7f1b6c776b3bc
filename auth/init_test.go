package auth_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/storenode"
)

func TestInitWritesADirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	if err := auth.Init(dir); err != nil {
		t.Fatal(err)
	}
	for _, r := range auth.Roles {
		path := filepath.Join(dir, r.CredsFile())
		if got, err := auth.CredsRole(path); err != nil || got != r {
			t.Errorf("%s: role %q, %v", path, got, err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", path, fi.Mode(), err)
		}
	}
	conf, err := os.ReadFile(filepath.Join(dir, auth.ServerConfFile))
	if err != nil {
		t.Fatal(err)
	}
	// Seeds start with S (SO operator, SA account, SU user): none in the
	// server's file.
	for _, seed := range []string{"SO", "SA", "SU"} {
		if strings.Contains(string(conf), " "+seed) || strings.Contains(string(conf), "\n"+seed) {
			t.Errorf("server.conf holds a seed:\n%s", conf)
		}
	}
	if _, err := auth.LoadServer(dir); err != nil {
		t.Fatal(err)
	}

	if err := auth.Init(dir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("second Init into %s: %v, want refused", dir, err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, auth.RoleClient.CredsFile()))
	if err := auth.Init(dir, auth.WithForce()); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, auth.RoleClient.CredsFile())); string(after) == string(before) {
		t.Fatal("--force kept the old credentials")
	}
}

func TestRulesOptions(t *testing.T) {
	rules, err := auth.Rules(auth.WithCommandPrefix("shop"), auth.WithStream("SHOP"), auth.WithRulePublish("mail.>"))
	if err != nil {
		t.Fatal(err)
	}
	rn := rules[1]
	if rn.Role != auth.RoleRuleNode || !strings.Contains(strings.Join(rn.Publish, " "), "shop.> ") ||
		!strings.Contains(strings.Join(rn.Publish, " "), "$JS.ACK.SHOP.*.>") || rn.Publish[len(rn.Publish)-1] != "mail.>" {
		t.Fatalf("rulenode publish = %v", rn.Publish)
	}
	for _, bad := range []string{"bucket.x", "store.insert", "storeloop.dlq.x", "$JS.API.>", ">", "_INBOX_client.x"} {
		if _, err := auth.Rules(auth.WithRulePublish(bad)); err == nil {
			t.Errorf("rule publish %q accepted", bad)
		}
	}
	if _, err := auth.Rules(auth.WithStream("A.B")); err == nil {
		t.Error("stream A.B accepted")
	}
}

// Rotation: a new directory from the old one's keys keeps the account, so
// the same data; the old users are refused, the new ones work.
func TestRotateKeepsDataAndRevokesOldUsers(t *testing.T) {
	data := t.TempDir()
	old, rotated := filepath.Join(t.TempDir(), "old"), filepath.Join(t.TempDir(), "new")
	if err := auth.Init(old); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	run(t, old, data, func(url string) {
		cl := dialClient(t, url, filepath.Join(old, auth.RoleClient.CredsFile()))
		defer cl.Close()
		if err := cl.Define(ctx, orders); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Bucket("orders").Insert(ctx, events.Record{"status": "kept"}); err != nil {
			t.Fatal(err)
		}
	})
	named, err := auth.AddUser(old, auth.RoleClient, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.Init(rotated, auth.WithKeysFrom(old)); err != nil {
		t.Fatal(err)
	}
	run(t, rotated, data, func(url string) {
		for _, creds := range []string{filepath.Join(old, auth.RoleClient.CredsFile()), named} {
			opts, err := auth.ConnConfig{Creds: creds}.NATSOptions()
			if err != nil {
				t.Fatal(err)
			}
			if nc, err := nats.Connect(url, append(opts, nats.NoReconnect())...); !errors.Is(err, nats.ErrAuthorization) {
				if nc != nil {
					nc.Close()
				}
				t.Fatalf("old credentials %s: %v, want an authorization violation", creds, err)
			}
		}
		cl := dialClient(t, url, filepath.Join(rotated, auth.RoleClient.CredsFile()))
		defer cl.Close()
		if got, err := cl.Bucket("orders").Get(ctx, 1); err != nil || got["status"] != "kept" {
			t.Fatalf("order 1 after rotation = %v, %v", got, err)
		}
	})
}

// A second rotation keeps the first one's revocations: the oldest users
// stay locked out.
func TestRotateTwiceKeepsEarlierRevocations(t *testing.T) {
	first, second, third := filepath.Join(t.TempDir(), "1"), filepath.Join(t.TempDir(), "2"), filepath.Join(t.TempDir(), "3")
	if err := auth.Init(first); err != nil {
		t.Fatal(err)
	}
	if err := auth.Init(second, auth.WithKeysFrom(first)); err != nil {
		t.Fatal(err)
	}
	if err := auth.Init(third, auth.WithKeysFrom(second)); err != nil {
		t.Fatal(err)
	}
	run(t, third, t.TempDir(), func(url string) {
		for _, dir := range []string{first, second} {
			opts, err := auth.ConnConfig{Creds: filepath.Join(dir, auth.RoleClient.CredsFile())}.NATSOptions()
			if err != nil {
				t.Fatal(err)
			}
			if nc, err := nats.Connect(url, append(opts, nats.NoReconnect())...); !errors.Is(err, nats.ErrAuthorization) {
				if nc != nil {
					nc.Close()
				}
				t.Fatalf("credentials of %s: %v, want an authorization violation", filepath.Base(dir), err)
			}
		}
	})
}

// run runs fn against a store node enforcing authDir on data.
func run(t *testing.T, authDir, data string, fn func(url string)) {
	t.Helper()
	as, err := auth.LoadServer(authDir)
	if err != nil {
		t.Fatal(err)
	}
	srv, nodeOpts, err := storenode.StartEmbedded(storenode.EmbeddedConfig{DataDir: data, Listen: "127.0.0.1:0", Auth: as.Options, AuthAccount: as.Account})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	opts, err := auth.ConnConfig{Creds: filepath.Join(authDir, auth.RoleStore.CredsFile())}.NATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect("", append(opts, nats.InProcessServer(srv))...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, err := storenode.Start(ctx, nc, append(nodeOpts, storenode.WithLogger(slog.New(slog.DiscardHandler)))...)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Stop(ctx)
	fn(srv.ClientURL())
}

func dialClient(t *testing.T, url, creds string) *client.Client {
	t.Helper()
	opts, err := auth.ConnConfig{Creds: creds}.NATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.Connect(url, client.WithNATSOptions(opts...))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}
