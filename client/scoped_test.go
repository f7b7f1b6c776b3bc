package client_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// A client WithScopedSubjects sends each command that names buckets on its
// bucket-scoped subject (a transaction's names all its buckets, sorted),
// the others on the plain one, and the store answers them all.
func TestScopedSubjects(t *testing.T) {
	url := storetest.Start(t)
	ctx := ctxT(t)
	spy, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(spy.Close)
	sub, err := spy.SubscribeSync("store.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	c, err := client.Connect(url, client.WithScopedSubjects())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)

	if err := c.Define(ctx, ordersDef); err != nil {
		t.Fatal(err)
	}
	if err := c.Define(ctx, loyaltyDef); err != nil {
		t.Fatal(err)
	}
	rec, err := c.Bucket("orders").Insert(ctx, events.Record{"userId": "alice", "total": 10.0})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.Bucket("orders").Count(ctx, nil); err != nil || n != 1 {
		t.Fatalf("count: %d, %v", n, err)
	}
	if _, err := c.Tx(ctx, events.TxRequest{Ops: []events.TxOp{
		{Op: "upsert", Bucket: "loyalty", Key: "alice", Record: events.Record{"userId": "alice"}},
		{Op: "update", Bucket: "orders", Key: rec["id"], Changes: events.Record{"status": "shipped"}},
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Buckets(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"store.define.orders", "store.define.loyalty", "store.insert.orders", "store.count.orders",
		"store.tx.loyalty.orders", "store.buckets"}
	for _, w := range want {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("want a request on %s: %v", w, err)
		}
		if m.Subject != w {
			t.Fatalf("request on %s, want %s", m.Subject, w)
		}
	}
}
