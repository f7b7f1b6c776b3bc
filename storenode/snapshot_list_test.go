package storenode_test

import (
	"testing"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// TestSnapshotListingOneAtATime: while a store.snapshots listing runs,
// another (by header or verifying) is refused with unavailable and reads
// nothing; once it ends, the next one lists.
func TestSnapshotListingOneAtATime(t *testing.T) {
	st := storetest.StartStore(t)
	define(t, st.Conn, ordersDef(), usersDef(), loyaltyDef(), inventoryDef(), reorderRequestsDef())
	snapWorkload(t, st, "a", 5)
	taken := takeSnapshot(t, st)
	release := st.Node.HoldSnapshotListing()
	for _, req := range []events.SnapshotsRequest{{}, {Verify: true}} {
		var list []events.SnapshotInfo
		if e := call(t, st.Conn, events.CmdSnapshots, req, &list); e == nil || e.Code != events.CodeUnavailable {
			t.Fatalf("store.snapshots %+v during another: %v, %+v; want unavailable", req, e, list)
		}
	}
	release()
	var list []events.SnapshotInfo
	mustCall(t, st.Conn, events.CmdSnapshots, events.SnapshotsRequest{}, &list)
	if len(list) != 1 || list[0].Name != taken.Name || list[0].Seq != taken.Seq || list[0].Bytes != taken.Bytes ||
		list[0].SHA256 != taken.SHA256 || !list[0].Valid || list[0].Verified {
		t.Fatalf("snapshots %+v, want %s valid by its header, not verified", list, taken.Name)
	}
}

// TestSnapshotListingBadRequest: an unknown field in store.snapshots is
// bad_request.
func TestSnapshotListingBadRequest(t *testing.T) {
	st := storetest.StartStore(t)
	if e := call(t, st.Conn, events.CmdSnapshots, map[string]any{"verfiy": true}, nil); e == nil || e.Code != events.CodeBadRequest {
		t.Fatalf("store.snapshots with an unknown field: %v, want bad_request", e)
	}
}
