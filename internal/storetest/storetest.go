// Package storetest runs a real store node on a real embedded NATS server
// for tests of the packages above the store (client, rulenode, cmd).
package storetest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/internal/natstest"
	"github.com/storeloop/storeloop/storenode"
)

// Store is a store node with its server, for one test.
type Store struct {
	Server *server.Server
	Node   *storenode.Node
	Conn   *nats.Conn // the node's connection
	Dir    string     // the server's JetStream store directory
	URL    string     // client URL of the server
}

// Start starts an embedded NATS server and a store node (group-commit fsync,
// as the daemon's default) and returns the server's client URL. Both stop
// when the test ends.
func Start(t testing.TB, opts ...storenode.Option) string {
	t.Helper()
	return StartStore(t, opts...).URL
}

// StartStore is Start returning the whole Store.
func StartStore(t testing.TB, opts ...storenode.Option) *Store {
	t.Helper()
	dir := t.TempDir()
	s := natstest.ServerAt(t, dir)
	st := &Store{Server: s, Dir: dir, URL: s.ClientURL()}
	st.Conn = natstest.Connect(t, s)
	st.Node = StartNode(t, st.Conn, append([]storenode.Option{storenode.WithEmbeddedSync(dir)}, opts...)...)
	return st
}

// StartNode starts a store node on nc, stopped when the test ends.
func StartNode(t testing.TB, nc *nats.Conn, opts ...storenode.Option) *storenode.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts = append([]storenode.Option{storenode.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	n, err := storenode.Start(ctx, nc, opts...)
	if err != nil {
		t.Fatalf("storetest: start store node: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Stop(ctx)
	})
	return n
}
