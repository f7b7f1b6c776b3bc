package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storeloop/storeloop/auth"
)

func TestAuthInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	stdout, stderr, code := cli(t, "", "", "auth", "init", dir)
	if code != exitOK || !strings.Contains(stdout, "storenode --auth "+dir) {
		t.Fatalf("exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	for _, r := range auth.Roles {
		if role, err := auth.CredsRole(filepath.Join(dir, r.CredsFile())); err != nil || role != r {
			t.Errorf("%s: %q, %v", r.CredsFile(), role, err)
		}
	}
	if _, stderr, code := cli(t, "", "", "auth", "init", dir); code != exitCommand || !strings.Contains(stderr, "not empty") {
		t.Fatalf("init into a used directory: exit %d stderr %q", code, stderr)
	}
	rotated := filepath.Join(t.TempDir(), "rotated")
	if _, stderr, code := cli(t, "", "", "auth", "init", "--keys-from", dir, rotated); code != exitOK {
		t.Fatalf("rotation: exit %d stderr %q", code, stderr)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "keys", "account.nk"))
	b, _ := os.ReadFile(filepath.Join(rotated, "keys", "account.nk"))
	if len(a) == 0 || string(a) != string(b) {
		t.Fatal("rotation changed the account key")
	}
}

func TestAuthRules(t *testing.T) {
	stdout, stderr, code := cli(t, "", "", "--prefix", "shop", "auth", "rules", "--rule-publish", "mail.>")
	if code != exitOK {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2+len(auth.Roles) || !strings.HasPrefix(lines[2], "| store | `bucket.>`") ||
		!strings.Contains(lines[3], "`shop.>`") || !strings.Contains(lines[3], "`mail.>`") {
		t.Fatalf("rules:\n%s", stdout)
	}
	if _, _, code := cli(t, "", "", "auth", "rules", "--rule-publish", "bucket.>"); code != exitUsage {
		t.Fatalf("reserved rule publish subject: exit %d, want %d", code, exitUsage)
	}
}

// A credentials file that is not one is a usage error, before any dial.
func TestCredsFlag(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.creds")
	if err := os.WriteFile(bad, []byte("not creds"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := cli(t, "nats://127.0.0.1:1", "", "--creds", bad, "buckets"); code != exitUsage ||
		!strings.Contains(stderr, "not a NATS credentials file") {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
	t.Setenv(envCreds, filepath.Join(t.TempDir(), "missing.creds"))
	if _, stderr, code := cli(t, "nats://127.0.0.1:1", "", "buckets"); code != exitUsage || !strings.Contains(stderr, "missing.creds") {
		t.Fatalf("$%s: exit %d stderr %q", envCreds, code, stderr)
	}
}
