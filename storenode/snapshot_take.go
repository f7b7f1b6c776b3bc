package storenode

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
)

// Taking a snapshot stops the loop only for short steps: the capture
// of the state at the sequence of the last message staged is copied a
// slice of records at a time (projections.Capture), the loop serving
// commands between the slices, and the dedupe table's live entries are
// copied at its start. Encoding, checksum and upload run off the loop
// while writes go on, once that sequence is acknowledged (a capture may
// include a flight still in the air; if that flight fails, the anchor
// check refuses the snapshot).

// snapshotter is the node's snapshot taking.
type snapshotter struct {
	captures chan captureStep // to the loop: the next step of a capture
	mu       sync.Mutex       // one snapshot at a time
	seq      atomic.Uint64    // of the newest snapshot taken or loaded
	at       atomic.Int64     // when it was taken, unix nanoseconds
}

// captureStep asks the loop for a step of a capture: begin one (view
// nil), copy the next slice of view's records, or abort it.
type captureStep struct {
	view  *nodeView
	abort bool
	reply chan *nodeView // the view, done once complete; nil when none can begin
}

// captureSlice is how many records a step of a capture copies: it bounds
// the loop's pause for a capture (about a millisecond).
const captureSlice = 16384

// snapshotTimeout bounds one snapshot: capture, encoding and upload.
const snapshotTimeout = 5 * time.Minute

// SnapshotSeq is the stream sequence of the newest snapshot this node
// took or started from (0: none); safe from any goroutine.
func (n *Node) SnapshotSeq() uint64 { return n.snap.seq.Load() }

// captureStep runs on the loop. A capture begins at the state as of the
// last message staged, or does not while that is not true (a failed
// batch awaits its rebuild).
func (n *Node) captureStep(st captureStep) *nodeView {
	start := time.Now()
	v := st.view
	switch {
	case st.abort:
		v.capture.Abort()
		return v
	case v == nil:
		if n.failure() != nil || n.stale.Load() {
			return nil
		}
		n.healthMu.Lock()
		q, lq := n.quarantined, n.lastQuarantinedSeq
		n.healthMu.Unlock()
		v = &nodeView{capture: n.state.BeginCapture(n.cfg.snapshots.captureSlice()), prev: n.prev, dedupe: n.dedupe.records(), quarantined: q, lastQuarSeq: lq, proofSince: n.proofSince}
	}
	v.done = v.capture.Step()
	v.pause = max(v.pause, time.Since(start))
	return v
}

// captureState captures the state, a step at a time on the loop.
func (n *Node) captureState(ctx context.Context) (*nodeView, error) {
	var v *nodeView
	for v == nil || !v.done {
		st := captureStep{view: v, reply: make(chan *nodeView, 1)}
		select {
		case n.snap.captures <- st:
		case <-n.done:
			return nil, events.Errorf(events.CodeUnavailable, "store node is stopping")
		case <-ctx.Done():
			if v != nil { // the buckets stop noting changes for it
				select {
				case n.snap.captures <- captureStep{view: v, abort: true, reply: st.reply}:
				case <-n.done:
				}
			}
			return nil, ctx.Err()
		}
		if v = <-st.reply; v == nil {
			return nil, events.Errorf(events.CodeUnavailable, "the state is being rebuilt after a failed append: retry")
		}
		if between := n.cfg.snapshots.between; between != nil && !v.done {
			between()
		}
	}
	v.state = v.capture.View()
	return v, nil
}

// Snapshot takes a snapshot of the state now and stores it, keeping the
// newest WithSnapshotKeep; it returns what was stored (the newest one
// again when nothing was appended since).
func (n *Node) Snapshot(ctx context.Context) (events.SnapshotInfo, error) {
	n.snap.mu.Lock()
	defer n.snap.mu.Unlock()
	v, err := n.captureState(ctx)
	if err != nil {
		return events.SnapshotInfo{}, err
	}
	if v.state.LastSeq == 0 {
		return events.SnapshotInfo{}, events.Errorf(events.CodeUnavailable, "the stream is empty: nothing to snapshot")
	}
	if err := n.awaitCommitted(ctx, v.state.LastSeq); err != nil {
		return events.SnapshotInfo{}, err
	}
	src, err := n.openReplay(ctx)
	if err != nil {
		return events.SnapshotInfo{}, err
	}
	defer src.close()
	store, err := n.snapshotStore(ctx, src.js, true)
	if err != nil {
		return events.SnapshotInfo{}, fmt.Errorf("storenode: snapshot store: %w", err)
	}
	name := snapshotName(v.state.LastSeq)
	if v.state.LastSeq == n.snap.seq.Load() {
		if info := n.snapshotInfo(ctx, store, name, src.created); info.Valid {
			return info, nil
		}
	}
	obj, h, err := v.encode(n.cfg.stream, src.created, n.now(), n.signer)
	if err != nil {
		return events.SnapshotInfo{}, fmt.Errorf("storenode: snapshot: %w", err)
	}
	if max := n.cfg.snapshots.maxObject(); int64(len(obj)) > max {
		return events.SnapshotInfo{}, events.Errorf(events.CodeTooLarge, "the snapshot at seq %d is %d bytes, past the cap of %d a start would read: not taken", h.Seq, len(obj), max)
	}
	if err := n.anchor(ctx, src.stream, h, v.proofSince); err != nil {
		return events.SnapshotInfo{}, events.Errorf(events.CodeUnavailable, "the state at seq %d is not anchored in the stream (%v): a snapshot is taken after the next write", h.Seq, err)
	}
	oi, err := store.PutBytes(ctx, name, obj)
	if err != nil {
		return events.SnapshotInfo{}, fmt.Errorf("storenode: snapshot %s: %w", name, err)
	}
	n.snap.seq.Store(h.Seq)
	n.snap.at.Store(h.Taken.UnixNano())
	n.pruneSnapshots(ctx, store)
	n.log.Info("snapshot taken", "name", name, "seq", h.Seq, "records", h.Records, "bytes", oi.Size, "pause", v.pause, "changedMeanwhile", v.capture.Changed())
	return events.SnapshotInfo{Name: name, Seq: h.Seq, Bytes: oi.Size, Records: h.Records, Taken: h.Taken,
		SHA256: h.SHA256, Valid: true, Verified: true, PauseMicros: v.pause.Microseconds()}, nil
}

// awaitCommitted waits until seq is acknowledged (and synced).
func (n *Node) awaitCommitted(ctx context.Context, seq uint64) error {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for n.lastSeq.Load() < seq {
		if n.failure() != nil {
			return events.Errorf(events.CodeUnavailable, "an append failed before seq %d was acknowledged: retry", seq)
		}
		select {
		case <-t.C:
		case <-n.done:
			return events.Errorf(events.CodeUnavailable, "store node is stopping")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// pruneSnapshots deletes all but the newest kept snapshots.
func (n *Node) pruneSnapshots(ctx context.Context, store jetstream.ObjectStore) {
	names, err := snapshotNames(ctx, store)
	if err != nil {
		n.log.Warn("old snapshots not pruned", "err", err)
		return
	}
	for _, name := range names[min(len(names), n.cfg.snapshots.kept()):] {
		if err := store.Delete(ctx, name); err != nil {
			n.log.Warn("old snapshot not deleted", "name", name, "err", err)
		}
	}
}

// keepSnapshots takes the periodic snapshots until the node stops.
func (n *Node) keepSnapshots() {
	// The interval runs from the start when no snapshot was loaded.
	n.snap.at.CompareAndSwap(0, n.now().UnixNano())
	check := time.Second
	if iv := n.cfg.snapshots.interval; iv > 0 && iv < check {
		check = iv
	}
	t := time.NewTicker(check)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-n.done:
			return
		}
		if !n.snapshotDue() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), snapshotTimeout)
		if _, err := n.Snapshot(ctx); err != nil {
			n.log.Warn("periodic snapshot not taken", "err", err)
		}
		cancel()
	}
}

// snapshotDue reports whether a periodic snapshot is due.
func (n *Node) snapshotDue() bool {
	c := n.cfg.snapshots
	last, cur := n.snap.seq.Load(), n.lastSeq.Load()
	if cur <= last {
		return false
	}
	if c.every > 0 && cur-last >= c.every {
		return true
	}
	return c.interval > 0 && n.now().Sub(time.Unix(0, n.snap.at.Load())) >= c.interval
}

// snapshotCommand answers store.snapshot and store.snapshots, off the
// subscription's goroutine: a snapshot takes as long as its upload.
func (n *Node) snapshotCommand(p *pending) {
	ctx, cancel := context.WithTimeout(context.Background(), snapshotTimeout)
	defer cancel()
	var result any
	var err error
	if p.cmd == events.CmdSnapshot {
		result, err = n.Snapshot(ctx)
	} else {
		result, err = n.Snapshots(ctx, *p.body.(*events.SnapshotsRequest))
	}
	if err != nil {
		var e *events.Error
		if !errors.As(err, &e) {
			e = events.Errorf(events.CodeInternal, "%v", err)
		}
		n.respond(p, marshalReply(nil, e), e)
		return
	}
	n.respond(p, marshalReply(result, nil), nil)
}
