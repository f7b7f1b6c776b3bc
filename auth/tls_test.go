package auth_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/testpki"
	"github.com/storeloop/storeloop/storenode"
)

// With --tls-cert/--tls-key/--tls-ca the embedded server speaks only TLS
// and requires a client certificate of the CA, on top of the roles; the
// store node's own in-process connection needs neither.
func TestMutualTLS(t *testing.T) {
	pki := testpki.New(t)
	s := startSecured(t, storenode.EmbeddedConfig{TLSCert: pki.ServerCert, TLSKey: pki.ServerKey, TLSCA: pki.CA},
		auth.ConnConfig{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey})
	creds := s.creds(auth.RoleClient)
	ctx := ctxT(t)

	good := auth.ConnConfig{Creds: creds, CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}
	cl := s.client(t, s.dial(t, good, nil))
	if err := cl.Define(ctx, orders); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Bucket("orders").Insert(ctx, events.Record{"status": "new"}); err != nil {
		t.Fatal(err)
	}

	authz := func(err error) bool { return errors.Is(err, nats.ErrAuthorization) }
	tlsErr := func(text string) func(error) bool {
		return func(err error) bool { return strings.Contains(err.Error(), text) }
	}
	refused := map[string]struct {
		cc   auth.ConnConfig
		want func(error) bool
	}{
		"no CA":                        {auth.ConnConfig{Creds: creds}, tlsErr("x509")},
		"server not trusted":           {auth.ConnConfig{Creds: creds, CA: pki.OtherCA, Cert: pki.ClientCert, Key: pki.ClientKey}, tlsErr("unknown authority")},
		"no client certificate":        {auth.ConnConfig{Creds: creds, CA: pki.CA}, tlsErr("tls")},
		"no credentials":               {auth.ConnConfig{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}, authz},
		"credentials of another setup": {auth.ConnConfig{Creds: otherCreds(t), CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}, authz},
	}
	for name, tc := range refused {
		t.Run(name, func(t *testing.T) {
			opts, err := tc.cc.NATSOptions()
			if err != nil {
				t.Fatal(err)
			}
			nc, err := nats.Connect(s.srv.ClientURL(), append(opts, nats.NoReconnect())...)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !tc.want(err) {
				t.Fatalf("refused with %v", err)
			}
		})
	}
}

// TLS without auth: the dev-mode server on loopback, encrypted.
func TestTLSWithoutAuth(t *testing.T) {
	pki := testpki.New(t)
	srv, _, err := storenode.StartEmbedded(storenode.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0",
		TLSCert: pki.ServerCert, TLSKey: pki.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if nc, err := nats.Connect(srv.ClientURL(), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("plain connection accepted")
	}
	opts, err := auth.ConnConfig{CA: pki.CA}.NATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if !nc.TLSRequired() {
		t.Fatal("connection is not TLS")
	}
}

// otherCreds are client credentials of an unrelated auth directory.
func otherCreds(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "other")
	if err := auth.Init(dir); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, auth.RoleClient.CredsFile())
}
