package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/storeloop/storeloop/auth"
)

func TestSecurityFlags(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	if err := auth.Init(dir); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, auth.RoleStore.CredsFile())
	admin := filepath.Join(dir, auth.RoleAdmin.CredsFile())
	cases := []struct {
		name      string
		env       map[string]string
		args      []string
		wantCreds string
		wantErr   string
	}{
		{name: "auth dir gives the store's credentials", args: []string{"--auth", dir}, wantCreds: store},
		{name: "from the environment", env: map[string]string{"STORELOOP_AUTH": dir}, wantCreds: store},
		{name: "explicit creds win", args: []string{"--auth", dir, "--creds", admin}, wantCreds: admin},
		{name: "missing credentials", args: []string{"--creds", filepath.Join(dir, "nope.creds")}, wantErr: "nope.creds"},
		{name: "server TLS is the embedded server's", args: []string{"--nats", "nats://x", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, wantErr: "external server"},
		{name: "client cert needs its key", args: []string{"--nats", "nats://x", "--tls-client-cert", store}, wantErr: "both"},
		{name: "an external server needs the proof key's place", args: []string{"--nats", "nats://x"}, wantErr: "--proof-key"},
		{name: "an external server with a data directory", args: []string{"--nats", "nats://x", "--data", dir}},
		{name: "an external server with a proof key", args: []string{"--nats", "nats://x", "--proof-key", filepath.Join(dir, "proof.nk")}},
		{name: "a client certificate is for an external server", args: []string{"--tls-client-cert", store, "--tls-client-key", store}, wantErr: "external server"},
		{name: "malformed insecure", env: map[string]string{"STORELOOP_INSECURE": "maybe"}, wantErr: "STORELOOP_INSECURE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			f, err := parseFlags(tc.args)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case f.conn.Creds != tc.wantCreds:
				t.Fatalf("creds = %q, want %q", f.conn.Creds, tc.wantCreds)
			}
		})
	}
}

// Without --auth the store node will not listen beyond loopback, and says why.
func TestOpenListenNeedsAuth(t *testing.T) {
	err := run([]string{"--data", t.TempDir(), "--listen", "0.0.0.0:0", "--log-level", "error"})
	if err == nil || !strings.Contains(err.Error(), "without --auth") || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("err = %v, want a refusal naming --auth and --insecure", err)
	}
}
