package examples_test

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/internal/procs"
	"github.com/storeloop/storeloop/internal/testpki"
)

// The seed's e-commerce example with auth and mutual TLS on: credentials
// from `storeloop auth init`, a storenode process enforcing them over TLS,
// a rulenode process on rulenode.creds, the writes and the CLI on
// client.creds. The results are the seed's 48/195/274; neither the client
// nor the rule node role can forge an event or delete, purge, seal or
// hijack the stream on the way.
func TestSecureEcommerce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemons")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pki := testpki.New(t)
	dir := filepath.Join(t.TempDir(), "auth")
	cli := storeloopCLI(ctx, t)
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
	runEcommerce(ctx, t, connectAs(t, store.URL, conn), cli, asClient)

	// What the issue did as a curious NATS user, now as the client and the
	// rule node roles: each publish is refused by the server.
	for _, r := range []auth.Role{auth.RoleClient, auth.RoleRuleNode} {
		conn.Creds = creds(r)
		refused(ctx, t, store.URL, conn,
			"bucket.orders.updated", // a forged event
			"$JS.API.STREAM.DELETE.STORELOOP",
			"$JS.API.STREAM.PURGE.STORELOOP",
			"$JS.API.STREAM.UPDATE.STORELOOP", // seal
			"$JS.API.STREAM.CREATE.HIJACK",    // a stream capturing store.>
			"$JS.API.CONSUMER.DELETE.STORELOOP.ecommerce")
	}
	conn.Creds = creds(auth.RoleAdmin)
	natsOpts, err := conn.NATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := nats.Connect(store.URL, natsOpts...)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "STORELOOP")
	if err != nil {
		t.Fatal(err)
	}
	// 3 definitions + 8 writes + 2 stock deductions + 2 loyalty upserts.
	if info := st.CachedInfo(); info.Config.Sealed || info.State.Msgs != 15 {
		t.Errorf("stream sealed %v with %d messages, want unsealed with 15", info.Config.Sealed, info.State.Msgs)
	}
	if _, err := js.Stream(ctx, "HIJACK"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("HIJACK stream: %v, want not found", err)
	}
	if _, err := js.Consumer(ctx, "STORELOOP", "ecommerce"); err != nil {
		t.Errorf("the rule set's consumer: %v", err)
	}

	wantEcommerceResults(t, cli, asClient)
}

// refused connects as conn and checks that each publish is refused with a
// permissions violation naming its subject.
func refused(ctx context.Context, t *testing.T, url string, conn auth.ConnConfig, subjects ...string) {
	t.Helper()
	errs := make(chan error, len(subjects))
	natsOpts, err := conn.NATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, append(natsOpts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		errs <- err
	}))...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, subj := range subjects {
		if err := nc.Publish(subj, []byte(`{"config":{"name":"HIJACK","subjects":["store.>"],"sealed":true}}`)); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), `Publish to "`+subj+`"`) {
				t.Fatalf("%s: %s: %v, want its publish refused", conn.Creds, subj, err)
			}
		case <-ctx.Done():
			t.Fatalf("%s: %s not refused", conn.Creds, subj)
		}
	}
}

// storeloopCLI returns a runner of the storeloop command (built once) that
// fails t on a non-zero exit and returns the combined output.
func storeloopCLI(ctx context.Context, t *testing.T) func(args ...string) string {
	bin := procs.Build(t, "storeloop")
	return func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("storeloop %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
}
