package storenode_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/natstest"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/storenode"
)

// eventually polls cond every few milliseconds until it holds, failing the
// test after timeout.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("not within %s: %s", timeout, what)
		case <-tick.C:
		}
	}
}

// TestSecondWriter: an event appended behind the node's back by another
// store node (its proof valid, by another trusted key) makes it refuse
// every write and say why, while reads go on. (A foreign append, without
// a store's proof, is quarantined instead: TestForeignMessagesQuarantined.)
func TestSecondWriter(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef())
	var rec events.Record
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": 1.0}}, &rec)

	// Another store node on the same stream (its own key, trusted through
	// the stream's metadata, its own command prefix) writes.
	other := storetest.StartNode(t, natstest.Connect(t, st.Server), storenode.WithCommandPrefix("other"))
	otherMsg := nats.NewMsg(events.CommandSubject("other", events.CmdInsert))
	otherMsg.Data, _ = json.Marshal(events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "x", "total": 5.0}})
	if _, err := nc.RequestMsg(otherMsg, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	otherSeq := other.Status().LastSeq

	insert := events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "v", "total": 2.0}}
	wantCode(t, call(t, nc, events.CmdInsert, insert, nil), events.CodeUnavailable)
	var status events.StatusResult
	eventually(t, 10*time.Second, "status reports the other writer", func() bool {
		mustCall(t, nc, events.CmdStatus, struct{}{}, &status)
		return !status.Healthy && strings.Contains(status.Reason, "another store node")
	})
	if _, err := st.Node.Ready(); err == nil || !strings.Contains(err.Error(), "another store node") {
		t.Errorf("Ready() = %v", err)
	}

	writes := []struct {
		cmd string
		req any
	}{
		{events.CmdInsert, insert},
		{events.CmdUpdate, events.UpdateRequest{Bucket: "orders", Key: 1.0, Changes: events.Record{"status": "paid"}}},
		{events.CmdUpsert, events.UpsertRequest{Bucket: "orders", Key: 1.0, Increment: map[string]float64{"total": 1}}},
		{events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: 1.0}},
		{events.CmdTx, events.TxRequest{Ops: []events.TxOp{{Op: "delete", Bucket: "orders", Key: 1.0}}}},
		{events.CmdDefine, sessionsDef()},
	}
	for _, w := range writes {
		e := call(t, nc, w.cmd, w.req, nil)
		wantCode(t, e, events.CodeUnavailable)
		if !strings.Contains(e.Message, "another store node") {
			t.Errorf("%s refused with %q, want the reason", w.cmd, e.Message)
		}
	}
	wantNoNewEvents(t, nc, otherSeq)

	// Reads still work, and show only what is in the stream: never the
	// refused insert.
	if got := getRecord(t, nc, "orders", 1.0); got[events.FieldVersion] != 1.0 || got["userId"] != "u" {
		t.Errorf("get 1 = %v", got)
	}
	if got := getRecord(t, nc, "orders", 2.0); got["userId"] != "x" {
		t.Errorf("get 2 = %v, want the other node's record", got)
	}
	if got := getRecord(t, nc, "orders", 3.0); got != nil {
		t.Errorf("the refused insert is visible: %v", got)
	}
	var count int
	mustCall(t, nc, events.CmdCount, events.CountRequest{Bucket: "orders", Where: events.Where{"userId": "v"}}, &count)
	if count != 0 {
		t.Errorf("%d records of the refused insert", count)
	}
}
