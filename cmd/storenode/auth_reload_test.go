package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/internal/procs"
)

// A storenode process with --auth reloads the directory on SIGHUP: the
// credentials auth user --force replaced are refused from then on, the
// new ones accepted, without a restart.
func TestHangupReloadsAuth(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	if err := auth.Init(dir); err != nil {
		t.Fatal(err)
	}
	path, err := auth.AddUser(dir, auth.RoleClient, "app")
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
	st := procs.StartStorenode(t, procs.StorenodeSpec(t, t.TempDir(), procs.FreeAddr(t), "--auth", dir, "--log-level", "info"))
	connect := func(creds string) error {
		opts, err := auth.ConnConfig{Creds: creds}.NATSOptions()
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(st.URL, append(opts, nats.NoReconnect())...)
		if err == nil {
			nc.Close()
		}
		return err
	}
	if err := connect(old); err != nil {
		t.Fatalf("first credentials: %v", err)
	}
	if _, err := auth.AddUser(dir, auth.RoleClient, "app", auth.WithForce()); err != nil {
		t.Fatal(err)
	}
	st.Hangup()
	st.WaitLine(t, true, "auth directory reloaded", time.Minute)
	if err := connect(old); err == nil {
		t.Fatal("the replaced credentials still connect after SIGHUP")
	}
	if err := connect(path); err != nil {
		t.Fatalf("new credentials: %v", err)
	}
}
