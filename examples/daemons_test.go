package examples_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/examples"
	"github.com/storeloop/storeloop/internal/procs"
)

// The examples on real daemons share their set-up: a storenode process
// (embedded NATS on a loopback port, data on disk), rulenode processes of
// the example's rule set, a client, the example's buckets defined.

// daemons is an example running on real processes.
type daemons struct {
	url       string
	store     *procs.Storenode
	storeSpec procs.Spec // the same spec again restarts the store on its data and address
	rules     string     // the rules file the rule nodes run
	nodeArgs  []string   // extra flags of the rule nodes started from now on
	nodes     []*procs.Rulenode
	sc        *examples.Scenario
	cl        *client.Client
}

// startDaemons starts a store node and n rule nodes (rulenode-0 …) of
// rules (the example's rules.yaml when empty), then loads the example,
// connects a client and defines the example's buckets. Everything stops
// when the test ends.
func startDaemons(ctx context.Context, t *testing.T, example, rules string, n int) *daemons {
	t.Helper()
	if rules == "" {
		rules = example + "/rules.yaml"
	}
	d := &daemons{storeSpec: procs.StorenodeSpec(t, t.TempDir(), procs.FreeAddr(t)), rules: rules}
	d.store = procs.StartStorenode(t, d.storeSpec)
	d.url = d.store.URL
	for range n {
		d.startRulenode(t)
	}
	sc, err := examples.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.Connect(d.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if err := sc.Define(ctx, cl); err != nil {
		t.Fatal(err)
	}
	d.sc, d.cl = sc, cl
	return d
}

// startRulenode starts one more rule node, named by its rank.
func (d *daemons) startRulenode(t *testing.T) *procs.Rulenode {
	t.Helper()
	n := procs.StartRulenode(t, procs.RulenodeSpec(t, fmt.Sprintf("rulenode-%d", len(d.nodes)), d.rules, d.url, d.nodeArgs...))
	d.nodes = append(d.nodes, n)
	return n
}

// killStore SIGKILLs the store node (and its embedded NATS server) and
// starts it again on the same data directory and address, where the
// clients and rule nodes reconnect.
func (d *daemons) killStore(t *testing.T) {
	t.Helper()
	d.store.Kill(t)
	d.store = procs.StartStorenode(t, d.storeSpec)
}

// connectAs connects a client to url as conn says (credentials, TLS),
// closed when the test ends.
func connectAs(t *testing.T, url string, conn auth.ConnConfig) *client.Client {
	t.Helper()
	natsOpts, err := conn.NATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.Connect(url, client.WithNATSOptions(natsOpts...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// runEcommerce runs the seed's e-commerce steps through cl and waits with
// the CLI (given the client's connection flags) until the rule set has
// settled.
func runEcommerce(ctx context.Context, t *testing.T, cl *client.Client, cli func(...string) string, asClient []string) {
	t.Helper()
	for _, step := range examples.EcommerceSteps() {
		if err := step.Do(ctx, cl); err != nil {
			t.Fatalf("%s: %v", step.What, err)
		}
	}
	cli(append(asClient, "settle", "--rule-set", "ecommerce")...)
}

// wantEcommerceResults reads the seed's stock and loyalty values back
// with the CLI and checks them.
func wantEcommerceResults(t *testing.T, cli func(...string) string, asClient []string) {
	t.Helper()
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
