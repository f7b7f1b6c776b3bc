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

// SnapshotInfo describes one snapshot: the reply of store.snapshot, an
// element of the reply of store.snapshots.
type SnapshotInfo struct {
	Name    string    `json:"name"`
	Seq     uint64    `json:"seq"`   // the stream sequence the state is at
	Bytes   uint64    `json:"bytes"` // the object's size
	Records int       `json:"records"`
	Taken   time.Time `json:"taken"`
	SHA256  string    `json:"sha256"` // of the body, hex
	// Valid reports that the object reads back whole, its checksum
	// matches and it belongs to this stream (store.snapshots only checks
	// it); Problem says what is wrong otherwise.
	Valid   bool   `json:"valid"`
	Problem string `json:"problem,omitempty"`
	// PauseMicros is how long the store node's loop stopped to capture
	// the state (store.snapshot only).
	PauseMicros int64 `json:"pauseMicros,omitempty"`
}
