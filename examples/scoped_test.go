package examples_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/storeloop/storeloop/auth"
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
	cl := connectAs(t, store.URL, auth.ConnConfig{Creds: filepath.Join(dir, auth.RoleClient.CredsFile())})
	runEcommerce(ctx, t, cl, cli, asClient)
	wantEcommerceResults(t, cli, asClient)
}
