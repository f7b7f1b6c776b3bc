package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
)

// auth user --rules FILE issues a rule node user allowed the commands of
// the file's rules on their scoped subjects and the set's own dead
// letters, nothing wider; what the rules cannot say is refused.
func TestAuthUserRules(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	if _, stderr, code := cli(t, "", "", "auth", "init", dir); code != exitOK {
		t.Fatalf("init: exit %d stderr %q", code, stderr)
	}
	rules := "../../examples/ecommerce/rules.yaml"
	stdout, stderr, code := cli(t, "", "", "auth", "user", "shop", dir, "--role", "rulenode", "--rules", rules)
	path := filepath.Join(dir, "rulenode_shop.creds")
	if code != exitOK || stdout != "wrote "+path+" (reply inbox _INBOX_rulenode_shop)\n" {
		t.Fatalf("exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	body, err := os.ReadFile(path)
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
	pub := uc.Permissions.Pub.Allow
	for _, want := range []string{"store.update.inventory", "store.upsert.loyalty", "storeloop.dlq.ecommerce.>",
		"$JS.API.CONSUMER.MSG.NEXT.STORELOOP.ecommerce"} {
		if !slices.Contains(pub, want) {
			t.Errorf("publish allows %v, want %s among them", pub, want)
		}
	}
	for _, wide := range []string{"store.>", "storeloop.dlq.>", "$JS.API.CONSUMER.MSG.NEXT.STORELOOP.*"} {
		if slices.Contains(pub, wide) {
			t.Errorf("publish allows %s", wide)
		}
	}

	expr := filepath.Join(t.TempDir(), "fwd.yaml")
	if err := os.WriteFile(expr, []byte("name: fwd\nrules:\n  - id: fwd\n    on: [bucket.orders.inserted]\n    then:\n      - publish: { subject: \"${event.newRecord.to}\" }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := cli(t, "", "", "auth", "user", "fwd", dir, "--role", "rulenode", "--rules", expr); code != exitCommand ||
		!strings.Contains(stderr, "publish subject is an expression") {
		t.Fatalf("computed publish subject: exit %d stderr %q", code, stderr)
	}
	if _, _, code := cli(t, "", "", "auth", "user", "app", dir, "--rules", rules); code != exitUsage {
		t.Fatalf("--rules for a client: exit %d, want %d", code, exitUsage)
	}
	if _, err := os.Stat(filepath.Join(dir, "rulenode_fwd.creds")); !os.IsNotExist(err) {
		t.Fatalf("a refused user has credentials: %v", err)
	}
}
