package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/conf"

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

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"-1": -1, "512": 512, "1KiB": 1 << 10, "512MiB": 512 << 20, "100GiB": 100 << 30, "2TiB": 2 << 40, "7B": 7} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
		if back, err := parseBytes(formatBytes(want)); err != nil || back != want {
			t.Errorf("formatBytes(%d) = %q does not parse back: %d, %v", want, formatBytes(want), back, err)
		}
	}
	for _, bad := range []string{"", "0", "-2", "1GB", "GiB", "1.5GiB", "9999999TiB"} {
		if _, err := parseBytes(bad); err == nil {
			t.Errorf("parseBytes(%q) accepted", bad)
		}
	}
}

// auth init signs the limits its flags give; a bad size is a usage error.
func TestAuthInitLimits(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	if _, stderr, code := cli(t, "", "", "auth", "init", "--max-disk", "1GB", dir); code != exitUsage || !strings.Contains(stderr, "--max-disk") {
		t.Fatalf("bad --max-disk: exit %d stderr %q", code, stderr)
	}
	if _, stderr, code := cli(t, "", "", "auth", "init", "--max-consumers", "7", "--max-disk", "2GiB", dir); code != exitOK {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
	as, err := auth.LoadServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := conf.ParseFile(filepath.Join(dir, auth.ServerConfFile))
	if err != nil {
		t.Fatal(err)
	}
	token, _ := m["resolver_preload"].(map[string]any)[as.Account].(string)
	ac, err := jwt.DecodeAccountClaims(token)
	if err != nil {
		t.Fatal(err)
	}
	if l := ac.Limits.JetStreamLimits; l.Consumer != 7 || l.DiskStorage != 2<<30 || l.Streams != auth.DefaultLimits.Streams {
		t.Fatalf("account JetStream limits %+v, want 7 consumers, 2GiB disk, default streams", l)
	}
}

func TestAuthUser(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	if _, stderr, code := cli(t, "", "", "auth", "init", dir); code != exitOK {
		t.Fatalf("init: exit %d stderr %q", code, stderr)
	}
	stdout, stderr, code := cli(t, "", "", "auth", "user", "shop", dir, "--role", "rulenode")
	want := filepath.Join(dir, "rulenode_shop.creds")
	if code != exitOK || stdout != "wrote "+want+" (reply inbox _INBOX_rulenode_shop)\n" {
		t.Fatalf("exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	if r, err := auth.CredsRole(want); err != nil || r != auth.RoleRuleNode {
		t.Fatalf("%s: role %q, %v", want, r, err)
	}
	if _, _, code := cli(t, "", "", "auth", "user", "ops", dir, "--role", "admin"); code != exitUsage {
		t.Fatalf("--role admin: exit %d, want %d", code, exitUsage)
	}
}

// auth user issues a user for the names auth init was given (prefix,
// stream, dead-letter stream, limits), recorded in the directory; a name
// given to auth user itself wins.
func TestAuthUserKeepsInitSettings(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	if _, stderr, code := cli(t, "", "", "auth", "init", dir, "--prefix", "shop", "--stream", "SHOP", "--dlq-stream", "SHOP_DLQ", "--max-subs", "50"); code != exitOK {
		t.Fatalf("init: exit %d stderr %q", code, stderr)
	}
	allowed := func(creds string) (*jwt.UserClaims, string) {
		t.Helper()
		body, err := os.ReadFile(filepath.Join(dir, creds))
		if err != nil {
			t.Fatal(err)
		}
		token, err := jwt.ParseDecoratedJWT(body)
		if err != nil {
			t.Fatal(err)
		}
		uc, err := jwt.DecodeUserClaims(token)
		if err != nil {
			t.Fatal(err)
		}
		return uc, strings.Join(uc.Permissions.Pub.Allow, " ")
	}
	if _, stderr, code := cli(t, "", "", "auth", "user", "app", dir); code != exitOK {
		t.Fatalf("user: exit %d stderr %q", code, stderr)
	}
	uc, pub := allowed("client_app.creds")
	if !strings.Contains(pub, "shop.>") || !strings.Contains(pub, "$JS.API.STREAM.INFO.SHOP") || strings.Contains(pub, "store.>") || uc.Limits.Subs != 50 {
		t.Fatalf("client_app may publish %s with %d subscriptions, want prefix shop, stream SHOP, 50", pub, uc.Limits.Subs)
	}
	if _, stderr, code := cli(t, "", "", "auth", "user", "r1", dir, "--role", "rulenode"); code != exitOK {
		t.Fatalf("user --role rulenode: exit %d stderr %q", code, stderr)
	}
	if _, pub := allowed("rulenode_r1.creds"); !strings.Contains(pub, "$JS.API.STREAM.INFO.SHOP_DLQ") || strings.Contains(pub, "STORELOOP_DLQ") {
		t.Fatalf("rulenode_r1 may publish %s, want the dead-letter stream SHOP_DLQ's", pub)
	}
	if _, stderr, code := cli(t, "", "", "auth", "user", "other", dir, "--prefix", "shop2"); code != exitOK {
		t.Fatalf("user --prefix: exit %d stderr %q", code, stderr)
	}
	if _, pub := allowed("client_other.creds"); !strings.Contains(pub, "shop2.>") || !strings.Contains(pub, "$JS.API.STREAM.INFO.SHOP") {
		t.Fatalf("client_other may publish %s, want prefix shop2 on stream SHOP", pub)
	}
}
