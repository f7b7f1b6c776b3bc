package events

import "time"

// Snapshot commands (extension, admin only when NATS enforces roles): take
// a snapshot of the store node's state now, list the snapshots kept.
const (
	CmdSnapshot  = "snapshot"
	CmdSnapshots = "snapshots"
)

// SnapshotBucket is the JetStream object store holding the snapshots of
// stream.
func SnapshotBucket(stream string) string { return "storeloop_snapshots_" + stream }

// SnapshotsRequest is the request of store.snapshots: the listing reads
// each snapshot's header only unless Verify asks for every object to be
// read whole and its checksum checked (up to the node's snapshot size cap
// each: seconds for large states).
type SnapshotsRequest struct {
	Verify bool `json:"verify,omitempty"`
}

// SnapshotInfo describes one snapshot: the reply of store.snapshot, an
// element of the reply of store.snapshots.
type SnapshotInfo struct {
	Name    string    `json:"name"`
	Seq     uint64    `json:"seq"`   // the stream sequence the state is at
	Bytes   uint64    `json:"bytes"` // the object's size
	Records int       `json:"records"`
	Taken   time.Time `json:"taken"`
	SHA256  string    `json:"sha256"` // of the body, hex
	// Valid reports that nothing checked was found wrong: the header
	// parses, a trusted key signed it, it belongs to this stream and the
	// object's size is the one it states; Problem says what is wrong
	// otherwise. Verified reports that the body was read back whole and
	// its checksum matched too: store.snapshot checks it, store.snapshots
	// only when asked to (SnapshotsRequest.Verify).
	Valid    bool   `json:"valid"`
	Verified bool   `json:"verified"`
	Problem  string `json:"problem,omitempty"`
	// PauseMicros is how long the store node's loop stopped to capture
	// the state (store.snapshot only).
	PauseMicros int64 `json:"pauseMicros,omitempty"`
}
