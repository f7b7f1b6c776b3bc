package storenode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
)

// Listing the snapshots (store.snapshots) is cheap by default: for each
// object, its description (object info: size, chunks' subject) and its
// first chunk, which holds the header line: the header is parsed, its signature
// checked, its stream compared with this one and the object's size with
// the header's body size (a partial upload). The body's checksum is not
// checked, so each entry says Verified false; with "verify": true every
// object is read whole and checked as a start would (up to
// WithSnapshotMaxBytes each). One listing runs at a time: another asked
// meanwhile is refused with unavailable (retry), so admins polling cannot
// pile up reads of whole snapshots.

// Snapshots lists the stored snapshots, newest first: each checked by its
// header, or, with req.Verify, read back whole and checked.
func (n *Node) Snapshots(ctx context.Context, req events.SnapshotsRequest) ([]events.SnapshotInfo, error) {
	if !n.listing.CompareAndSwap(false, true) {
		return nil, events.Errorf(events.CodeUnavailable, "another snapshot listing is running: retry")
	}
	defer n.listing.Store(false)
	src, err := n.openReplay(ctx)
	if err != nil {
		return nil, err
	}
	defer src.close()
	store, err := n.snapshotStore(ctx, src.js, false)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return []events.SnapshotInfo{}, nil
	}
	if err != nil {
		return nil, err
	}
	names, err := snapshotNames(ctx, store)
	if err != nil {
		return nil, err
	}
	out := make([]events.SnapshotInfo, 0, len(names))
	if req.Verify {
		for _, name := range names {
			out = append(out, n.snapshotInfo(ctx, store, name, src.created))
		}
		return out, nil
	}
	chunks, err := src.js.Stream(ctx, "OBJ_"+events.SnapshotBucket(n.cfg.stream))
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		try, cancel := context.WithTimeout(ctx, snapshotHeaderTimeout)
		out = append(out, n.snapshotHeaderInfo(try, store, chunks, name, src.created))
		cancel()
	}
	return out, nil
}

// snapshotHeaderTimeout bounds the reading of one snapshot's header: a
// listing stuck on one object would refuse every other meanwhile.
const snapshotHeaderTimeout = 10 * time.Second

// snapshotHeaderInfo describes a stored snapshot from its header alone.
func (n *Node) snapshotHeaderInfo(ctx context.Context, store jetstream.ObjectStore, chunks jetstream.Stream, name string, created time.Time) events.SnapshotInfo {
	info := events.SnapshotInfo{Name: name}
	oi, err := store.GetInfo(ctx, name)
	if err != nil {
		info.Problem = err.Error()
		return info
	}
	info.Bytes = oi.Size
	h, err := n.snapshotHeader(ctx, chunks, oi)
	n.describeSnapshot(&info, h, err, created)
	return info
}

// describeSnapshot fills info from the header h, read with err: valid
// unless err or the header names another stream than this one (created
// then).
func (n *Node) describeSnapshot(info *events.SnapshotInfo, h snapshotHeader, err error, created time.Time) {
	info.Seq, info.Records, info.Taken, info.SHA256 = h.Seq, h.Records, h.Taken, h.SHA256
	switch {
	case err != nil:
		info.Problem = err.Error()
	case h.Stream != n.cfg.stream || !h.StreamCreated.Equal(created):
		info.Problem = "of another stream (" + h.Stream + " created " + h.StreamCreated.String() + ")"
	default:
		info.Valid = true
	}
}

// snapshotHeader reads the header line from the object's first chunk and
// checks it: format, signature, the object's size against the body size
// it states, the size cap.
func (n *Node) snapshotHeader(ctx context.Context, chunks jetstream.Stream, oi *jetstream.ObjectInfo) (snapshotHeader, error) {
	var h snapshotHeader
	if max := n.cfg.snapshots.maxObject(); oi.Size > uint64(max) {
		return h, fmt.Errorf("%d bytes, past the cap of %d (WithSnapshotMaxBytes)", oi.Size, max)
	}
	if oi.Size == 0 {
		return h, errors.New("empty object")
	}
	first, err := chunks.GetMsg(ctx, 1, jetstream.WithGetMsgSubject("$O."+oi.Bucket+".C."+oi.NUID))
	if err != nil {
		return h, fmt.Errorf("first chunk: %w", err)
	}
	h, body, err := cutSnapshotHeader(first.Data)
	if err != nil {
		return h, err
	}
	if body := oi.Size - uint64(len(first.Data)-len(body)); body != uint64(h.BodyBytes) {
		return h, fmt.Errorf("body is %d bytes, the header says %d (partial)", body, h.BodyBytes)
	}
	return h, n.checkSigned(ctx, &h)
}

// cutSnapshotHeader parses the header line at the start of b (a whole
// object, or its first chunk) and returns the bytes after it.
func cutSnapshotHeader(b []byte) (snapshotHeader, []byte, error) {
	var h snapshotHeader
	line, rest, ok := bytes.Cut(b, []byte{'\n'})
	if !ok {
		return h, nil, errors.New("no header line")
	}
	if err := json.Unmarshal(line, &h); err != nil {
		return h, nil, fmt.Errorf("header: %w", err)
	}
	if h.Format != snapshotFormat {
		return h, nil, fmt.Errorf("format %d, this node reads %d", h.Format, snapshotFormat)
	}
	return h, rest, nil
}
