package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/storeloop/storeloop/auth"
)

func TestConnectionFlags(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	if err := auth.Init(dir); err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(dir, auth.RoleRuleNode.CredsFile())
	t.Setenv("STORELOOP_CREDS", creds)
	t.Setenv("STORELOOP_TLS_CA", creds) // any existing file: checked at start, parsed at connect
	f, err := parseFlags([]string{"--rules", "r.yaml"})
	if err != nil || f.conn.Creds != creds || f.conn.CA != creds {
		t.Fatalf("flags %+v, %v: want the credentials and CA from the environment", f, err)
	}
	_, err = parseFlags([]string{"--rules", "r.yaml", "--creds", filepath.Join(dir, "none.creds")})
	if err == nil || !strings.Contains(err.Error(), "none.creds") {
		t.Fatalf("missing credentials: %v", err)
	}
}
