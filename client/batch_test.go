package client_test

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
)

// TestBatch: each command its own result or *events.Error, in order; the
// same commands again (same ids) return the same results and apply nothing.
func TestBatch(t *testing.T) {
	c := newStore(t, ordersDef, loyaltyDef)
	ctx := ctxT(t)
	insertOrders(t, c, "alice")
	cmds := []events.BatchCommand{
		client.InsertCommand("orders", events.Record{"userId": "bob", "total": 5.0}),
		client.InsertCommand("orders", events.Record{"userId": "carol", "total": -1.0}),
		client.UpdateCommand("orders", 1, events.Record{"status": "paid"}, client.ExpectVersion(1)),
		client.UpsertCommand("loyalty", "alice", nil, client.Increment(map[string]float64{"points": 3})),
		client.DeleteCommand("orders", 7),
		client.TxCommand(events.TxRequest{Ops: []events.TxOp{{Op: "update", Bucket: "orders", Key: 1.0, ExpectVersion: ptr(int64(1))}}}),
	}
	for i := range cmds {
		cmds[i].CommandID = "b" + string(rune('0'+i))
	}
	results, err := c.Batch(ctx, cmds...)
	if err != nil {
		t.Fatal(err)
	}
	check := func(results []client.BatchResult) {
		t.Helper()
		if len(results) != len(cmds) {
			t.Fatalf("%d results for %d commands", len(results), len(cmds))
		}
		if rec, err := results[0].Record(); err != nil || rec["id"] != 2.0 {
			t.Fatalf("insert: %v, %v", rec, err)
		}
		var ve *events.Error
		if !errors.As(results[1].Err, &ve) || !errors.Is(results[1].Err, events.ErrValidation) || ve.Issues[0].Field != "total" {
			t.Fatalf("invalid insert: %v", results[1].Err)
		}
		if rec, err := results[2].Record(); err != nil || rec["status"] != "paid" || rec["_version"] != 2.0 {
			t.Fatalf("update: %v, %v", rec, err)
		}
		if rec, err := results[3].Record(); err != nil || rec["points"] != 3.0 {
			t.Fatalf("upsert: %v, %v", rec, err)
		}
		var del events.DeleteResult
		if err := results[4].Decode(&del); err != nil || del.Deleted {
			t.Fatalf("delete: %v, %v", del, err)
		}
		if !errors.Is(results[5].Err, events.ErrConflict) {
			t.Fatalf("tx: %v", results[5].Err)
		}
	}
	check(results)
	again, err := c.Batch(ctx, cmds...)
	if err != nil {
		t.Fatal(err)
	}
	check(again)
	orders, _ := c.Bucket("orders").Count(ctx, nil)
	points, _ := c.Bucket("loyalty").Get(ctx, "alice")
	if orders != 2 || points["points"] != 3.0 {
		t.Fatalf("after the batch twice: %d orders, loyalty %v", orders, points)
	}

	if _, err := c.Batch(ctx, make([]events.BatchCommand, events.MaxBatchCommands+1)...); !errors.Is(err, events.ErrTooLarge) {
		t.Fatalf("batch over the cap: %v", err)
	}
}

// TestBatchRetriesUnavailableCommands: the store answers the commands of a
// batch whose append failed unavailable; the client sends them again by
// their ids and they apply once.
func TestBatchRetriesUnavailableCommands(t *testing.T) {
	c := newStore(t, ordersDef, loyaltyDef)
	ctx := ctxT(t)
	js, err := jetstream.New(c.Conn())
	if err != nil {
		t.Fatal(err)
	}
	foreign := nats.NewMsg("bucket.orders.inserted")
	foreign.Data = []byte("foreign")
	if _, err := js.PublishMsg(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	results, err := c.Batch(ctx,
		client.InsertCommand("orders", events.Record{"userId": "u", "total": 1.0}),
		client.UpsertCommand("loyalty", "u", nil, client.Increment(map[string]float64{"points": 1})),
	)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		if r.Err != nil {
			t.Fatalf("command %d: %v", i, r.Err)
		}
	}
	status, err := c.Status(ctx)
	if err != nil || status.Quarantined == 0 {
		t.Fatalf("status %+v, %v: the foreign append did not make the first attempt fail", status, err)
	}
	orders, _ := c.Bucket("orders").Count(ctx, nil)
	points, _ := c.Bucket("loyalty").Get(ctx, "u")
	if orders != 1 || points["points"] != 1.0 {
		t.Fatalf("%d orders, loyalty %v: want each command applied once", orders, points)
	}
}
