package auth_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/storenode"
)

// secured is an embedded server enforcing the roles of a fresh auth
// directory, with a store node connected as the store role.
type secured struct {
	srv   *server.Server
	ecfg  storenode.EmbeddedConfig // what srv was started with
	dir   string                   // the auth directory
	conn  auth.ConnConfig          // TLS of the clients
	admin *nats.Conn
	js    jetstream.JetStream // admin's
}

func startSecured(t *testing.T, ecfg storenode.EmbeddedConfig, conn auth.ConnConfig, opts ...auth.Option) *secured {
	t.Helper()
	return startSecuredNode(t, ecfg, conn, nil, opts...)
}

// startSecuredNode is startSecured with options of the store node.
func startSecuredNode(t *testing.T, ecfg storenode.EmbeddedConfig, conn auth.ConnConfig, nodeOpts []storenode.Option, opts ...auth.Option) *secured {
	t.Helper()
	s := &secured{dir: filepath.Join(t.TempDir(), "auth"), conn: conn}
	if err := auth.Init(s.dir, opts...); err != nil {
		t.Fatal(err)
	}
	as, err := auth.LoadServer(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	ecfg.DataDir, ecfg.Listen, ecfg.Auth, ecfg.AuthAccount = t.TempDir(), "127.0.0.1:0", as.Options, as.Account
	srv, embeddedOpts, err := storenode.StartEmbedded(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	s.srv, s.ecfg = srv, ecfg
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })

	// As the daemon does: in process, authenticated as the store role.
	storeOpts, err := auth.ConnConfig{Creds: s.creds(auth.RoleStore)}.NATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect("", append(storeOpts, nats.InProcessServer(srv))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, err := storenode.Start(ctx, nc, append(append(embeddedOpts, nodeOpts...), storenode.WithLogger(slog.New(slog.DiscardHandler)))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		node.Stop(ctx)
	})
	conn.Creds = s.creds(auth.RoleAdmin)
	s.admin = s.dial(t, conn, nil)
	if s.js, err = jetstream.New(s.admin); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *secured) creds(r auth.Role) string { return filepath.Join(s.dir, r.CredsFile()) }

// dial connects over TCP with cc; asynchronous errors (permission violations) go
// to errs when it is not nil.
func (s *secured) dial(t *testing.T, cc auth.ConnConfig, errs chan<- error) *nats.Conn {
	t.Helper()
	opts, err := cc.NATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	if errs != nil {
		opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	}
	nc, err := nats.Connect(s.srv.ClientURL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// as connects as role and returns the connection with its asynchronous
// errors.
func (s *secured) as(t *testing.T, r auth.Role) (*nats.Conn, chan error) {
	t.Helper()
	errs := make(chan error, 16)
	cc := s.conn
	cc.Creds = s.creds(r)
	return s.dial(t, cc, errs), errs
}

func (s *secured) client(t *testing.T, nc *nats.Conn) *client.Client {
	t.Helper()
	cl, err := client.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

var orders = events.BucketDef{Bucket: "orders", Key: "id", Schema: map[string]events.FieldDef{
	"id": {Type: "number", Generated: "autoincrement"}, "status": {Type: "string"}}}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantViolation waits for the permission violation on subject among errs.
func wantViolation(t *testing.T, errs <-chan error, kind, subject string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case err := <-errs:
			if errors.Is(err, nats.ErrPermissionViolation) &&
				strings.Contains(strings.ToLower(err.Error()), "for "+kind+" to") && strings.Contains(err.Error(), `"`+subject+`"`) {
				return
			}
			t.Logf("other async error: %v", err)
		case <-timeout:
			t.Fatalf("no permissions violation for %s %q", kind, subject)
		}
	}
}
