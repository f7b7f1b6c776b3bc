package storenode_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// TestRestartReplays: a restarted node rebuilds from the stream exactly the
// state the first one served, and generated keys continue past every key
// ever used.
func TestRestartReplays(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef(), usersDef(), loyaltyDef(), inventoryDef(), reorderRequestsDef())
	var userIDs []any
	for i := range 300 {
		mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": fmt.Sprint("u", i%7), "total": float64(i)}}, nil)
		mustCall(t, nc, events.CmdUpsert, events.UpsertRequest{Bucket: "loyalty", Key: fmt.Sprint("u", i%7), Increment: map[string]float64{"points": float64(i)}}, nil)
		switch i % 10 {
		case 0:
			var u events.Record
			mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "users", Record: events.Record{"name": fmt.Sprint("n", i), "email": fmt.Sprintf("n%d@example.com", i)}}, &u)
			userIDs = append(userIDs, u["id"])
		case 3:
			mustCall(t, nc, events.CmdUpdate, events.UpdateRequest{Bucket: "orders", Key: float64(i), Changes: events.Record{"status": "shipped", "sku": nil}}, nil)
		case 5:
			mustCall(t, nc, events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: float64(i - 1)}, nil)
		case 7:
			sku := fmt.Sprint("S", i)
			mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "inventory", Record: events.Record{"sku": sku, "quantity": 3.0}}, nil)
			mustCall(t, nc, events.CmdTx, events.TxRequest{Ops: []events.TxOp{
				{Op: "update", Bucket: "inventory", Key: sku, Changes: events.Record{"reorder": true}},
				{Op: "insert", Bucket: "reorderRequests", Record: events.Record{"sku": sku, "quantity": 100.0}},
			}}, nil)
		}
	}
	// The highest order goes: its id must still not come back.
	mustCall(t, nc, events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: 300.0}, nil)
	mustCall(t, nc, events.CmdDelete, events.DeleteRequest{Bucket: "users", Key: userIDs[0]}, nil)

	want := snapshot(t, nc)
	wantUser := getRecord(t, nc, "users", userIDs[1])
	for round := range 2 {
		restartNode(t, st)
		if got := snapshot(t, nc); got != want {
			t.Fatalf("round %d: state after restart:\n%s\nwant\n%s", round, got, want)
		}
		if got := getRecord(t, nc, "users", userIDs[1]); !reflect.DeepEqual(got, wantUser) {
			t.Errorf("round %d: get = %v, want %v", round, got, wantUser)
		}
		if got := getRecord(t, nc, "users", userIDs[0]); got != nil {
			t.Errorf("round %d: deleted user is back: %v", round, got)
		}
	}

	// Autoincrement continues after the highest id ever stored; unique
	// indexes are rebuilt too.
	var next events.Record
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": 1.0}}, &next)
	if next["id"] != 301.0 {
		t.Errorf("next order id %v, want 301", next["id"])
	}
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "reorderRequests", Record: events.Record{"sku": "x", "quantity": 1.0}}, &next)
	if next["id"] != 31.0 {
		t.Errorf("next reorder request id %v, want 31", next["id"])
	}
	e := call(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "users", Record: events.Record{"name": "x", "email": "n10@example.com"}}, nil)
	wantCode(t, e, events.CodeUnique)
	// The definitions came back: a different one is still refused.
	changed := ordersDef()
	changed.Indexes = nil
	wantCode(t, call(t, nc, events.CmdDefine, changed, nil), events.CodeBucketExists)
}
