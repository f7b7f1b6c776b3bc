package rulenode_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/internal/procs"
)

// TestShadowEcommerce runs the e-commerce example's rule set, deployed, on
// a rulenode process through one order's life, then shadow-runs candidates
// with the storeloop binary: the same rules (exit 0), loyalty-on-ship
// changed to a point per 5 (exit 1, the one write lost and gained, printed
// with its values for both versions), and an invalid file (exit 2).
func TestShadowEcommerce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts daemons")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	store := procs.StartStorenode(t, procs.StorenodeSpec(t, t.TempDir(), "127.0.0.1:0"))
	rules := filepath.Join("..", "examples", "ecommerce", "rules.yaml")
	run := func(want int, args ...string) string {
		t.Helper()
		out, code := storeloopCLI(t, store.URL, args...)
		if code != want {
			t.Fatalf("storeloop %v: exit %d, want %d\n%s", args, code, want, out)
		}
		return out
	}
	run(0, "bucket", "define", "-f", filepath.Join("..", "examples", "ecommerce", "buckets.yaml"))
	run(0, "insert", "inventory", `{"sku":"LAPTOP-1","name":"Laptop","quantity":50}`)
	run(0, "rules", "deploy", rules)
	procs.StartRulenode(t, procs.Spec{Name: "rulenode", Bin: procs.Build(t, "rulenode"),
		Args: []string{"--ruleset", "ecommerce", "--nats", store.URL, "--health", "127.0.0.1:0", "--log-level", "info"}})
	run(0, "insert", "orders", `{"userId":"alice","sku":"LAPTOP-1","qty":2,"total":2598}`)
	run(0, "update", "orders", "1", `{"status":"confirmed"}`)
	run(0, "update", "orders", "1", `{"status":"shipped"}`)
	cl, err := client.Connect(store.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Settle(ctx, client.SettleRuleSets("ecommerce")); err != nil {
		t.Fatal(err)
	}

	seqs := regexp.MustCompile(`seq \d+`)
	same := seqs.ReplaceAllString(run(0, "rules", "shadow", rules), "seq N")
	for _, want := range []string{
		"shadow of rule set ecommerce: candidate vs version 1 (hash ",
		"\nseq N bucket.orders.updated key 1 (handled by version 1)\n" +
			"    current   deduct-inventory-on-confirm/0 update inventory key=\"LAPTOP-1\" increment={\"quantity\":-2}  [written: seq N]\n" +
			"    candidate deduct-inventory-on-confirm/0 update inventory key=\"LAPTOP-1\" increment={\"quantity\":-2}\n",
		"\nrules added: none; removed: none; changed: none\nwrites gained: 0, lost: 0; 0 of 2 events differ\n",
	} {
		if !strings.Contains(same, want) {
			t.Errorf("shadow of the deployed file: missing\n%s\nin\n%s", want, same)
		}
	}

	changed := filepath.Join(t.TempDir(), "rules.yaml")
	src, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(src), "int(event.newRecord.total / 10)", "int(event.newRecord.total / 5)", 1)
	if edited == string(src) {
		t.Fatal("the example's loyalty rule changed: update this test")
	}
	if err := os.WriteFile(changed, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	diff := seqs.ReplaceAllString(run(1, "rules", "shadow", changed, "--last", "1"), "seq N")
	want := "shadow of rule set ecommerce: candidate vs version 1 (hash XXX), 1 event\n" +
		"\nseq N bucket.orders.updated key 1 (handled by version 1)\n" +
		"  - current   loyalty-on-ship/0 upsert loyalty key=\"alice\" record={\"userId\":\"alice\"} increment={\"points\":259}  [written: seq N]\n" +
		"  + candidate loyalty-on-ship/0 upsert loyalty key=\"alice\" record={\"userId\":\"alice\"} increment={\"points\":519}\n" +
		"\nrules added: none; removed: none; changed: loyalty-on-ship\n" +
		"writes gained: 1, lost: 1; 1 of 1 events differ\n" +
		"error: the candidate's writes differ\n"
	diff = regexp.MustCompile(`hash [0-9a-f]{12}`).ReplaceAllString(diff, "hash XXX")
	if diff != want {
		t.Errorf("shadow of the changed file:\n%s\nwant:\n%s", diff, want)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: ecommerce\nrules: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(2, "rules", "shadow", bad)
}
