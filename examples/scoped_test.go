package examples_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/examples"
	"github.com/storeloop/storeloop/internal/procs"
)

// The e-commerce example with its rule node on credentials derived from
// its rules (`storeloop auth user --rules`), processes throughout: the
// rulenode process sends its writes on bucket-scoped subjects
// (--scoped-subjects) and the seed's stock and loyalty values come out.
func TestScopedEcommerce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemons")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "auth")
	cli := storeloopCLI(ctx, t)
	cli("auth", "init", "--rule-set", "ecommerce", dir)
	cli("auth", "user", "shop", dir, "--role", "rulenode", "--rules", "ecommerce/rules.yaml")

	store := procs.StartStorenode(t, procs.StorenodeSpec(t, t.TempDir(), procs.FreeAddr(t), "--auth", dir))
	procs.StartRulenode(t, procs.RulenodeSpec(t, "rulenode", "ecommerce/rules.yaml", store.URL,
		"--creds", filepath.Join(dir, auth.UserCredsFile(auth.RoleRuleNode, "shop")), "--scoped-subjects"))

	asClient := []string{"--nats", store.URL, "--creds", filepath.Join(dir, auth.RoleClient.CredsFile())}
	cli(append(asClient, "bucket", "define", "-f", "ecommerce/buckets.yaml")...)
	natsOpts, err := auth.ConnConfig{Creds: filepath.Join(dir, auth.RoleClient.CredsFile())}.NATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.Connect(store.URL, client.WithNATSOptions(natsOpts...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, step := range examples.EcommerceSteps() {
		if err := step.Do(ctx, cl); err != nil {
			t.Fatalf("%s: %v", step.What, err)
		}
	}
	cli(append(asClient, "settle", "--rule-set", "ecommerce")...)
	for _, c := range []struct {
		bucket, key, field string
		want               float64
	}{
		{"inventory", "LAPTOP-1", "quantity", examples.EcommerceLaptopStock},
		{"inventory", "MOUSE-1", "quantity", examples.EcommerceMouseStock},
		{"loyalty", "alice", "points", examples.EcommerceAlicePoints},
	} {
		var rec map[string]any
		out := cli(append(asClient, "get", c.bucket, c.key)...)
		if err := json.Unmarshal([]byte(out), &rec); err != nil || rec[c.field] != c.want {
			t.Errorf("%s %s = %s (%v), want %s %v", c.bucket, c.key, out, err, c.field, c.want)
		}
	}
}
