package examples_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/examples"
	"github.com/storeloop/storeloop/internal/procs"
	"github.com/storeloop/storeloop/internal/testpki"
)

// The seed's e-commerce example with auth and mutual TLS on: credentials
// from `storeloop auth init`, a storenode process enforcing them over TLS,
// a rulenode process on rulenode.creds, the writes and the CLI on
// client.creds. The results are the seed's 48/195/274, and the client role
// cannot forge an event on the way.
func TestSecureEcommerce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemons")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pki := testpki.New(t)
	dir := filepath.Join(t.TempDir(), "auth")
	cli := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, procs.Build(t, "storeloop"), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("storeloop %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	cli("auth", "init", "--rule-set", "ecommerce", dir)
	creds := func(r auth.Role) string { return filepath.Join(dir, r.CredsFile()) }
	tlsFlags := []string{"--tls-ca", pki.CA, "--tls-client-cert", pki.ClientCert, "--tls-client-key", pki.ClientKey}

	store := procs.StartStorenode(t, procs.StorenodeSpec(t, t.TempDir(), procs.FreeAddr(t),
		"--auth", dir, "--tls-cert", pki.ServerCert, "--tls-key", pki.ServerKey, "--tls-ca", pki.CA))
	if !strings.HasPrefix(store.URL, "tls://") {
		t.Fatalf("store node URL %s, want tls://", store.URL)
	}
	procs.StartRulenode(t, procs.RulenodeSpec(t, "rulenode", "ecommerce/rules.yaml", store.URL,
		append([]string{"--creds", creds(auth.RoleRuleNode)}, tlsFlags...)...))

	asClient := append([]string{"--nats", store.URL, "--creds", creds(auth.RoleClient)}, tlsFlags...)
	cli(append(asClient, "bucket", "define", "-f", "ecommerce/buckets.yaml")...)
	conn := auth.ConnConfig{Creds: creds(auth.RoleClient), CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}
	natsOpts, err := conn.NATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	forged := make(chan error, 1)
	cl, err := client.Connect(store.URL, client.WithNATSOptions(append(natsOpts,
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { forged <- err }))...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, step := range examples.EcommerceSteps() {
		if err := step.Do(ctx, cl); err != nil {
			t.Fatalf("%s: %v", step.What, err)
		}
	}
	// A forged "shipped" event: refused by the server, never state.
	if err := cl.Conn().Publish("bucket.orders.updated", []byte(`{"type":"updated","bucket":"orders","key":2}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-forged:
		if !strings.Contains(err.Error(), `Publish to "bucket.orders.updated"`) {
			t.Fatalf("async error %v, want the publish refused", err)
		}
	case <-ctx.Done():
		t.Fatal("forged publish not refused")
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
