package storenode_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// scopedCall sends req on a bucket-scoped subject and returns the reply's
// error.
func scopedCall(t *testing.T, nc *nats.Conn, subject, cmd string, req, out any) *events.Error {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	reply, err := nc.Request(subject, body, 10*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	return decodeReply(t, cmd, reply.Data, out)
}

// The store serves store.<op>.<bucket> and store.tx.<buckets...> beside
// store.<op>, with the same bodies; a subject that does not name exactly
// the request's buckets (sorted, each once) is bad_request and appends
// nothing.
func TestScopedSubjects(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef(), loyaltyDef())

	var rec events.Record
	if e := scopedCall(t, nc, "store.insert.orders", events.CmdInsert,
		events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "alice", "total": 10.0}}, &rec); e != nil {
		t.Fatal(e)
	}
	var got events.Record
	if e := scopedCall(t, nc, "store.get.orders", events.CmdGet, events.GetRequest{Bucket: "orders", Key: rec["id"]}, &got); e != nil || got["userId"] != "alice" {
		t.Fatalf("scoped get: %v, %v", got, e)
	}
	tx := events.TxRequest{Ops: []events.TxOp{
		{Op: "update", Bucket: "orders", Key: rec["id"], Changes: events.Record{"status": "shipped"}},
		{Op: "upsert", Bucket: "loyalty", Key: "alice", Record: events.Record{"userId": "alice"}, Increment: map[string]float64{"points": 10}},
	}, Reads: []events.TxRead{{Bucket: "orders", Key: rec["id"], Version: 1}}}
	if got := events.ScopedSubject("store", events.CmdTx, tx.Buckets()...); got != "store.tx.loyalty.orders" {
		t.Fatalf("tx subject %s", got)
	}

	seq := lastSeq(t, nc)
	for _, tc := range []struct {
		subject, cmd string
		req          any
	}{
		{"store.insert.loyalty", events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "bob", "total": 1.0}}},
		{"store.upsert.orders", events.CmdUpsert, events.UpsertRequest{Bucket: "loyalty", Key: "bob", Record: events.Record{"userId": "bob"}}},
		{"store.tx.orders", events.CmdTx, tx},
		{"store.tx.orders.loyalty", events.CmdTx, tx},
		{"store.tx.loyalty.orders.orders", events.CmdTx, tx},
		{"store.tx.loyalty.orders.users", events.CmdTx, tx},
	} {
		e := scopedCall(t, nc, tc.subject, tc.cmd, tc.req, nil)
		wantCode(t, e, events.CodeBadRequest)
	}
	wantNoNewEvents(t, nc, seq)

	var res events.TxResult
	if e := scopedCall(t, nc, "store.tx.loyalty.orders", events.CmdTx, tx, &res); e != nil || len(res.Results) != 2 {
		t.Fatalf("scoped tx: %v, %v", res, e)
	}
	if r := getRecord(t, nc, "loyalty", "alice"); r["points"] != 10.0 {
		t.Fatalf("loyalty after the scoped tx: %v", r)
	}
	if msgs := streamAfter(t, nc, seq); len(msgs) != 2 || msgs[0].Subject != "bucket.orders.updated" || msgs[1].Subject != "bucket.loyalty.inserted" {
		t.Fatalf("the scoped tx appended %d events, want orders updated and loyalty inserted", len(msgs))
	}
}
