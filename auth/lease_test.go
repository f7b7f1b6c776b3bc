package auth_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/storenode"
)

// TestStoreRoleLeads: two store nodes with the store role's credentials
// share a stream through the lease: the first leads, the second follows,
// takes over when the first stops, and no right is missing on the way.
func TestStoreRoleLeads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	if err := auth.Init(dir); err != nil {
		t.Fatal(err)
	}
	as, err := auth.LoadServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, _, err := storenode.StartEmbedded(storenode.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0",
		Auth: as.Options, AuthAccount: as.Account})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	s := &secured{dir: dir, srv: srv}
	ctx := ctxT(t)
	start := func() (*storenode.Node, chan error) {
		nc, errs := s.as(t, auth.RoleStore)
		n, err := storenode.Start(ctx, nc, storenode.WithLease(time.Second), storenode.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			n.Stop(ctx)
		})
		return n, errs
	}
	first, errsFirst := start()
	second, errsSecond := start()
	if first.NodeStatus().Role != events.RoleLeader || second.NodeStatus().Role != events.RoleStandby {
		t.Fatalf("roles %s, %s; want leader, standby", first.NodeStatus().Role, second.NodeStatus().Role)
	}
	cnc, _ := s.as(t, auth.RoleClient)
	cl, err := client.New(cnc, client.WithFailoverWait(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Define(ctx, orders); err != nil {
		t.Fatal(err)
	}
	if nodes, err := cl.Nodes(ctx); err != nil || len(nodes) != 2 {
		t.Fatalf("nodes = %+v, %v; want both", nodes, err)
	}
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Bucket("orders").Insert(ctx, events.Record{"status": "new"}); err != nil {
		t.Fatalf("insert after the failover: %v", err)
	}
	if second.NodeStatus().Role != events.RoleLeader {
		t.Fatalf("second node is %s, want leader", second.NodeStatus().Role)
	}
	for _, errs := range []chan error{errsFirst, errsSecond} {
		select {
		case err := <-errs:
			t.Fatalf("store node: %v", err)
		default:
		}
	}
}
