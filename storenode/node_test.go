package storenode_test

import (
	"testing"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

func TestInsertUpdateDeleteEvents(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	mustCall(t, nc, events.CmdDefine, ordersDef(), nil)
	base := lastSeq(t, nc)

	var rec events.Record
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "alice", "total": 250.0}}, &rec)
	if rec["id"] != 1.0 || rec["status"] != "pending" || rec[events.FieldVersion] != 1.0 {
		t.Fatalf("inserted record = %v", rec)
	}
	var upd events.Record
	mustCall(t, nc, events.CmdUpdate, events.UpdateRequest{Bucket: "orders", Key: 1.0, Changes: events.Record{"status": "shipped"}}, &upd)
	if upd["status"] != "shipped" || upd[events.FieldVersion] != 2.0 {
		t.Fatalf("updated record = %v", upd)
	}
	// A no-op update returns the record and appends nothing.
	mustCall(t, nc, events.CmdUpdate, events.UpdateRequest{Bucket: "orders", Key: 1.0, Changes: events.Record{"status": "shipped"}}, &upd)
	if upd[events.FieldVersion] != 2.0 {
		t.Fatalf("no-op update changed the version: %v", upd)
	}
	var del events.DeleteResult
	mustCall(t, nc, events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: 1.0}, &del)
	if !del.Deleted {
		t.Fatal("delete of an existing key returned deleted=false")
	}
	mustCall(t, nc, events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: 1.0}, &del)
	if del.Deleted {
		t.Fatal("delete of a missing key returned deleted=true")
	}

	msgs := streamAfter(t, nc, base)
	want := []string{"bucket.orders.inserted", "bucket.orders.updated", "bucket.orders.deleted"}
	if len(msgs) != len(want) {
		t.Fatalf("stream has %d new events, want %d: %+v", len(msgs), len(want), msgs)
	}
	for i, m := range msgs {
		if m.Subject != want[i] {
			t.Errorf("event %d subject = %s, want %s", i, m.Subject, want[i])
		}
		if m.Event.Meta.EventID == "" || m.Event.Meta.Time == 0 || m.Event.Meta.CorrelationID == "" || m.Header.Get(events.HeaderEventID) != m.Event.Meta.EventID {
			t.Errorf("event %d meta incomplete: %+v", i, m.Event.Meta)
		}
	}
	if o, n := msgs[1].Event.OldRecord, msgs[1].Event.NewRecord; o["status"] != "pending" || n["status"] != "shipped" {
		t.Errorf("updated event old/new = %v / %v", o, n)
	}
}
