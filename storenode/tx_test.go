package storenode_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// wantTxEvents checks that msgs are exactly one transaction's events, in
// order, on the given subjects: one txId, the tx size, consecutive
// sequences, and one correlation.
func wantTxEvents(t testing.TB, msgs []streamMsg, subjects ...string) {
	t.Helper()
	if len(msgs) != len(subjects) {
		t.Fatalf("%d events, want %d (%v)", len(msgs), len(subjects), subjects)
	}
	first := msgs[0].Event.Meta
	for i, m := range msgs {
		meta := m.Event.Meta
		if m.Subject != subjects[i] || meta.TxID == "" || meta.TxID != first.TxID || meta.TxSize != len(subjects) ||
			m.Seq != msgs[0].Seq+uint64(i) || meta.CorrelationID != first.CorrelationID || meta.CommandID != first.CommandID {
			t.Errorf("tx event %d: seq %d %s meta %+v; first seq %d meta %+v", i, m.Seq, m.Subject, meta, msgs[0].Seq, first)
		}
	}
}

// TestTxReorder is the seed's reorder request: flag the inventory and create
// the request in one transaction, while other writers append around it.
func TestTxReorder(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, inventoryDef(), reorderRequestsDef())
	const skus = 20
	for i := range skus {
		mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "inventory", Record: events.Record{"sku": fmt.Sprint("S", i), "quantity": 5.0}}, nil)
	}
	base := lastSeq(t, nc)

	// Each sku's tx runs concurrently with an unrelated update of another one.
	var wg sync.WaitGroup
	results := make([]events.TxResult, skus)
	errs := make([]error, skus*2)
	for i := range skus {
		wg.Go(func() {
			sku := fmt.Sprint("S", i)
			errs[2*i] = try(nc, events.CmdTx, events.TxRequest{Ops: []events.TxOp{
				{Op: "update", Bucket: "inventory", Key: sku, Changes: events.Record{"reorder": true}},
				{Op: "insert", Bucket: "reorderRequests", Record: events.Record{"sku": sku, "quantity": 100.0}},
			}}, &results[i], events.HeaderCommandID, "reorder-"+sku)
		})
		wg.Go(func() {
			errs[2*i+1] = try(nc, events.CmdUpdate, events.UpdateRequest{Bucket: "inventory", Key: fmt.Sprint("S", (i+1)%skus), Increment: map[string]float64{"quantity": 1}}, nil)
		})
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			t.Fatal(e)
		}
	}

	ids := map[float64]bool{}
	for i, r := range results {
		if len(r.Results) != 2 {
			t.Fatalf("tx %d results %v", i, r.Results)
		}
		inv, req := r.Results[0].(map[string]any), r.Results[1].(map[string]any)
		sku := fmt.Sprint("S", i)
		if inv["sku"] != sku || inv["reorder"] != true || req["sku"] != sku || req["quantity"] != 100.0 {
			t.Errorf("tx %d results %v", i, r.Results)
		}
		ids[req["id"].(float64)] = true
		if got := getRecord(t, nc, "inventory", sku); got["reorder"] != true || got["quantity"] != 6.0 {
			t.Errorf("inventory %s = %v", sku, got)
		}
	}
	if len(ids) != skus {
		t.Errorf("reorder request ids %v are not distinct", ids)
	}

	byTx := map[string][]streamMsg{}
	var order []string
	for _, m := range streamAfter(t, nc, base) {
		if id := m.Event.Meta.TxID; id != "" {
			if byTx[id] == nil {
				order = append(order, id)
			}
			byTx[id] = append(byTx[id], m)
		}
	}
	if len(order) != skus {
		t.Fatalf("%d transactions in the stream, want %d", len(order), skus)
	}
	for _, id := range order {
		msgs := byTx[id]
		wantTxEvents(t, msgs, "bucket.inventory.updated", "bucket.reorderRequests.inserted")
		if c := msgs[0].Event.Meta; c.CorrelationID != c.EventID || !strings.HasPrefix(c.CommandID, "reorder-") {
			t.Errorf("tx meta %+v: want its first event's id as correlation and the command id", c)
		}
	}
}

// TestTxArchive is the seed's exercise: archive every order of a user,
// delete them and the user's session, in one transaction guarded by the
// query it was built from.
func TestTxArchive(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef(), archivedOrdersDef(), sessionsDef())
	for _, r := range []events.Record{{"userId": "alice", "total": 100.0}, {"userId": "bob", "total": 5.0}, {"userId": "alice", "total": 250.0}} {
		mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: r}, nil)
	}
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "sessions", Record: events.Record{"userId": "alice", "token": "tok_abc123"}}, nil)
	base := lastSeq(t, nc)

	where := events.Where{"userId": "alice"}
	orders := queryAll(t, nc, "orders", where, 0)
	req := events.TxRequest{QueryReads: []events.TxQueryRead{{Bucket: "orders", Where: where}}}
	var subjects []string
	for _, o := range orders {
		req.QueryReads[0].Records = append(req.QueryReads[0].Records, events.TxRead{Bucket: "orders", Key: o["id"], Version: 1})
		req.Ops = append(req.Ops,
			events.TxOp{Op: "insert", Bucket: "archivedOrders", Record: events.Record{"userId": o["userId"], "total": o["total"]}},
			events.TxOp{Op: "delete", Bucket: "orders", Key: o["id"], ExpectVersion: ptr(int64(1))})
		subjects = append(subjects, "bucket.archivedOrders.inserted", "bucket.orders.deleted")
	}
	req.Ops = append(req.Ops, events.TxOp{Op: "delete", Bucket: "sessions", Key: "alice"})
	subjects = append(subjects, "bucket.sessions.deleted")
	var res events.TxResult
	mustCall(t, nc, events.CmdTx, req, &res)
	if len(res.Results) != 5 || res.Results[1].(map[string]any)["deleted"] != true {
		t.Fatalf("results %v", res.Results)
	}

	if n := len(queryAll(t, nc, "orders", where, 0)); n != 0 {
		t.Errorf("%d active orders of alice, want 0", n)
	}
	archived := queryAll(t, nc, "archivedOrders", where, 0)
	if len(archived) != 2 || archived[0]["total"] != 100.0 || archived[1]["total"] != 250.0 || archived[0]["archivedAt"] == nil {
		t.Errorf("archived %v", archived)
	}
	if s := getRecord(t, nc, "sessions", "alice"); s != nil {
		t.Errorf("session still there: %v", s)
	}
	if o := getRecord(t, nc, "orders", 2.0); o["userId"] != "bob" {
		t.Errorf("bob's order: %v", o)
	}
	wantTxEvents(t, streamAfter(t, nc, base), subjects...)
}

// TestTxRollback: when an op fails, the error names it, and neither the
// state nor the stream shows any op of the transaction.
func TestTxRollback(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, inventoryDef(), reorderRequestsDef(), usersDef())
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "inventory", Record: events.Record{"sku": "A", "quantity": 5.0}}, nil)
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "reorderRequests", Record: events.Record{"sku": "A", "quantity": 1.0}}, nil)

	flag := events.TxOp{Op: "update", Bucket: "inventory", Key: "A", Changes: events.Record{"reorder": true}}
	request := events.TxOp{Op: "insert", Bucket: "reorderRequests", Record: events.Record{"sku": "A", "quantity": 100.0}}
	cases := []struct {
		name string
		ops  []events.TxOp
		code events.Code
	}{
		{"schema", []events.TxOp{flag, request, {Op: "insert", Bucket: "reorderRequests", Record: events.Record{"sku": "B"}}}, events.CodeValidation},
		{"unique against an earlier op", []events.TxOp{
			{Op: "insert", Bucket: "users", Record: events.Record{"name": "A", "email": "a@example.com"}},
			flag,
			{Op: "insert", Bucket: "users", Record: events.Record{"name": "B", "email": "a@example.com"}},
		}, events.CodeUnique},
		{"missing key", []events.TxOp{request, flag, {Op: "update", Bucket: "inventory", Key: "Z", Changes: events.Record{"reorder": true}}}, events.CodeNotFound},
		{"stale expectVersion", []events.TxOp{request, flag, {Op: "delete", Bucket: "inventory", Key: "A", ExpectVersion: ptr(int64(1))}}, events.CodeConflict},
		{"unknown op", []events.TxOp{flag, request, {Op: "replace", Bucket: "inventory", Key: "A"}}, events.CodeBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, seq := snapshot(t, nc), lastSeq(t, nc)
			e := call(t, nc, events.CmdTx, events.TxRequest{Ops: tc.ops}, nil)
			wantCode(t, e, tc.code)
			if e.Op == nil || *e.Op != 2 || !strings.Contains(e.Message, "op 2") {
				t.Errorf("error %+v does not name op 2", e)
			}
			wantNoNewEvents(t, nc, seq)
			if after := snapshot(t, nc); after != before {
				t.Errorf("state changed:\n%s\nwas\n%s", after, before)
			}
		})
	}
}

// TestTxReads: a transaction built on reads commits only if what it read is
// still current.
func TestTxReads(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef(), inventoryDef())
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "inventory", Record: events.Record{"sku": "A", "quantity": 5.0}}, nil)
	for _, total := range []float64{10, 20} {
		mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": total}}, nil)
	}
	where := events.Where{"userId": "u"}
	seen := []events.TxRead{{Key: 1.0, Version: 1}, {Key: 2.0, Version: 1}}
	write := []events.TxOp{{Op: "update", Bucket: "inventory", Key: "A", Increment: map[string]float64{"quantity": -1}}}

	cases := []struct {
		name   string
		before func(t *testing.T) // a concurrent writer's change
		req    events.TxRequest
		code   events.Code // "" for success
	}{
		{"current reads commit", nil, events.TxRequest{Ops: write, Reads: []events.TxRead{{Bucket: "inventory", Key: "A", Version: 1}, {Bucket: "orders", Key: 9.0, Version: 0}}}, ""},
		{"stale read", nil, events.TxRequest{Ops: write, Reads: []events.TxRead{{Bucket: "inventory", Key: "A", Version: 1}}}, events.CodeConflict},
		{"absent read now present", nil, events.TxRequest{Ops: write, Reads: []events.TxRead{{Bucket: "orders", Key: 1.0, Version: 0}}}, events.CodeConflict},
		{"unchanged query commits", nil, events.TxRequest{Ops: write, QueryReads: []events.TxQueryRead{{Bucket: "orders", Where: where, Records: seen}}}, ""},
		{"query gained a record", func(t *testing.T) {
			mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": 30.0}}, nil)
		}, events.TxRequest{Ops: write, QueryReads: []events.TxQueryRead{{Bucket: "orders", Where: where, Records: seen}}}, events.CodeConflict},
		{"query record changed", func(t *testing.T) {
			mustCall(t, nc, events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: 3.0}, nil)
			mustCall(t, nc, events.CmdUpdate, events.UpdateRequest{Bucket: "orders", Key: 2.0, Changes: events.Record{"status": "paid"}}, nil)
		}, events.TxRequest{Ops: write, QueryReads: []events.TxQueryRead{{Bucket: "orders", Where: where, Records: seen}}}, events.CodeConflict},
		{"query as read after deletes commits", func(t *testing.T) {
			mustCall(t, nc, events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: 2.0}, nil)
		}, events.TxRequest{Ops: write, QueryReads: []events.TxQueryRead{{Bucket: "orders", Where: where, Records: seen[:1]}}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before(t)
			}
			before, seq := snapshot(t, nc), lastSeq(t, nc)
			qty := getRecord(t, nc, "inventory", "A")["quantity"].(float64)
			e := call(t, nc, events.CmdTx, tc.req, nil)
			if tc.code == "" {
				if e != nil {
					t.Fatal(e)
				}
				if got := getRecord(t, nc, "inventory", "A")["quantity"]; got != qty-1 {
					t.Errorf("quantity %v after the tx, want %v", got, qty-1)
				}
				return
			}
			wantCode(t, e, tc.code)
			wantNoNewEvents(t, nc, seq)
			if after := snapshot(t, nc); after != before {
				t.Errorf("state changed:\n%s\nwas\n%s", after, before)
			}
		})
	}
}
