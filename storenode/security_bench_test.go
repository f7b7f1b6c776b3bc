package storenode_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/bench"
	"github.com/storeloop/storeloop/internal/testpki"
	"github.com/storeloop/storeloop/storenode"
)

// BenchmarkSecurity measures what the trust boundary costs per write:
// store inserts from 32 concurrent callers on one client connection, batch
// fsync, with the store node wired as the daemon wires it (in process to
// its embedded server): with nothing of the trust boundary (no event
// proofs: the baseline); with event proofs only (dev mode, the default);
// with the roles enforced too (JWT users, permission checks on every
// publish); and with the roles over mutual TLS (everything on). It reports
// the wall time and the process's CPU time per write.
func BenchmarkSecurity(b *testing.B) {
	pki := testpki.New(b)
	dir := filepath.Join(b.TempDir(), "auth")
	if err := auth.Init(dir); err != nil {
		b.Fatal(err)
	}
	mtls := auth.ConnConfig{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}
	for _, v := range []struct {
		name   string
		proofs bool
		auth   bool
		tls    bool
	}{{"none", false, false, false}, {"proofs", true, false, false}, {"proofs+auth", true, true, false}, {"proofs+auth+mtls", true, true, true}} {
		b.Run(v.name+"/callers=32", func(b *testing.B) {
			cfg := storenode.EmbeddedConfig{DataDir: b.TempDir(), Listen: "127.0.0.1:0"}
			var node, cl auth.ConnConfig
			if v.auth {
				as, err := auth.LoadServer(dir)
				if err != nil {
					b.Fatal(err)
				}
				cfg.Auth, cfg.AuthAccount = as.Options, as.Account
				node.Creds, cl.Creds = filepath.Join(dir, auth.RoleStore.CredsFile()), filepath.Join(dir, auth.RoleClient.CredsFile())
			}
			if v.tls {
				cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = pki.ServerCert, pki.ServerKey, pki.CA
				cl.CA, cl.Cert, cl.Key = mtls.CA, mtls.Cert, mtls.Key
			}
			var nodeOpts []storenode.Option
			if !v.proofs {
				nodeOpts = append(nodeOpts, storenode.WithoutProofs())
			}
			op := securityEnv(b, cfg, node, cl, nodeOpts...)
			b.ResetTimer()
			cpu := processCPU(b)
			if _, err := bench.Run(context.Background(), op, b.N, 32); err != nil {
				b.Fatal(err)
			}
			// CPU per write (server, node and client share this process):
			// the cost itself, less moved by other load than the wall clock.
			b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is the user and system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// securityEnv starts the server and node of cfg and returns an insert
// through a client connected with cl; all stop when b ends.
func securityEnv(b *testing.B, cfg storenode.EmbeddedConfig, nodeConn, cl auth.ConnConfig, nodeOpts ...storenode.Option) bench.Op {
	b.Helper()
	ctx := context.Background()
	srv, opts, err := storenode.StartEmbedded(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	natsOpts, err := nodeConn.NATSOptions()
	if err != nil {
		b.Fatal(err)
	}
	nc, err := nats.Connect("", append(natsOpts, nats.InProcessServer(srv))...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	opts = append(append(opts, nodeOpts...), storenode.WithLogger(slog.New(slog.DiscardHandler)))
	node, err := storenode.Start(ctx, nc, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { node.Stop(ctx) })
	if natsOpts, err = cl.NATSOptions(); err != nil {
		b.Fatal(err)
	}
	c, err := client.Connect(srv.ClientURL(), client.WithNATSOptions(natsOpts...))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	if err := c.Define(ctx, events.BucketDef{Bucket: "bench", Key: "id", Schema: map[string]events.FieldDef{
		"id": {Type: events.TypeNumber, Generated: events.GenAutoincrement}, "payload": {Type: events.TypeString}}}); err != nil {
		b.Fatal(err)
	}
	rec := events.Record{"payload": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	bucket := c.Bucket("bench")
	return func(ctx context.Context) error {
		_, err := bucket.Insert(ctx, rec)
		return err
	}
}
