package events

// CmdWatch reads one page of a reactive query's snapshot (store.watch): the
// records of a bucket matching a where, like store.query, together with the
// stream sequence the page is consistent at. A watcher then reads the
// bucket's events after that sequence from the stream (see docs/protocol.md,
// "Reactive queries").
const CmdWatch = "watch"

// WatchRequest is a store.watch request: the fields of a QueryRequest.
type WatchRequest struct {
	Bucket string `json:"bucket"`
	Where  Where  `json:"where,omitempty"`
	Limit  int    `json:"limit,omitempty"`
	After  string `json:"after,omitempty"`
}

// WatchPage is the result of store.watch: a query page, Seq, the stream
// sequence of the last message the page reflects (events of the bucket after
// Seq are not in it), and Key, the bucket's key field.
type WatchPage struct {
	Seq        uint64   `json:"seq"`
	Key        string   `json:"key"`
	Records    []Record `json:"records"`
	NextCursor string   `json:"nextCursor,omitempty"`
}

// Types of a WatchChange.
const (
	WatchSnapshot = "snapshot" // a record of the result set when the watch began
	WatchReady    = "ready"    // the snapshot is complete; changes follow
	WatchAdded    = "added"    // a record entered the result set
	WatchChanged  = "changed"  // a record of the result set was updated and still matches
	WatchRemoved  = "removed"  // a record left the result set (deleted, or no longer matches)
)

// WatchChange is one line of a reactive query (`storeloop watch`). Seq is
// the stream sequence of the event that made the change; for snapshot and
// ready lines, the sequence the snapshot is consistent at. Record is the
// record after the change, or, when it was deleted, as it was.
type WatchChange struct {
	Type   string `json:"type"`
	Key    any    `json:"key,omitempty"`
	Record Record `json:"record,omitempty"`
	Seq    uint64 `json:"seq"`
}
