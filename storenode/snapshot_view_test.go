package storenode_test

import (
	"fmt"
	"testing"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// TestSnapshotRestoresView: a view over fractional totals, written in an
// order unlike the key order decoding computes it in (inserts, then
// updates and deletes), passes the restore check (sums within rounding):
// the node starts from the snapshot and serves the view as it was,
// versions included.
func TestSnapshotRestoresView(t *testing.T) {
	st := storetest.StartStore(t)
	define(t, st.Conn, ordersDef(), statsView())
	for i := range 60 {
		mustCall(t, st.Conn, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": fmt.Sprint("u", i%4), "total": 0.1 * float64(i+1)}}, nil)
	}
	for i := 60; i >= 1; i -= 7 {
		mustCall(t, st.Conn, events.CmdUpdate, events.UpdateRequest{Bucket: "orders", Key: float64(i), Changes: events.Record{"total": 0.3 * float64(i)}}, nil)
	}
	for i := 2; i <= 60; i += 11 {
		mustCall(t, st.Conn, events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: float64(i)}, nil)
	}
	info := takeSnapshot(t, st)
	want := snapshot(t, st.Conn)
	restartNode(t, st)
	if got := st.Node.SnapshotSeq(); got != info.Seq {
		t.Fatalf("started from seq %d, want the snapshot's %d", got, info.Seq)
	}
	if got := snapshot(t, st.Conn); got != want {
		t.Fatalf("state after restart:\n%s\nwant\n%s", got, want)
	}
}
