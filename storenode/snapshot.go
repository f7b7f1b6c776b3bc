package storenode

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/events/proof"
	"github.com/storeloop/storeloop/internal/gcpause"
	"github.com/storeloop/storeloop/internal/snapcodec"
	"github.com/storeloop/storeloop/projections"
)

// A snapshot is the node's state at a stream sequence, kept in a JetStream
// object store so that a start loads it and replays only the stream after
// it. The stream stays the source of truth: a snapshot is used only when
// it is within the size cap and signed by a key the stream trusts
// (snapshot_trust.go), reads back whole (its body's SHA-256), belongs to
// this very stream (its name and creation time: a stream deleted and
// created again is another stream) and is anchored in it (the proof
// chain's leaf it holds is that of the message at its sequence, which
// verifies); anything else is skipped with a log line and the next older
// one is tried, down to a full replay.
//
// An object is one JSON header line and the body:
//
//	{"format":3,"stream":…,"streamCreated":…,"seq":…,"prev":…,"sha256":…,…,"key":…,"sig":…}\n
//	body (snapcodec): state (projections.View) ‖ dedupe entries ‖ quarantine counts

// snapshotFormat is the version of the object layout and body encoding;
// 2 signs the header and stores each index's order after its bucket's
// records; 3 stores a bucket's records in length-prefixed sections and
// each index's order length-prefixed, which a load decodes on every core
// (older formats are skipped: a full replay).
const snapshotFormat = 3

// DefaultSnapshotKeep is how many snapshots are kept, newest first.
const DefaultSnapshotKeep = 3

// snapshotName names the snapshot at seq so that names sort as sequences.
func snapshotName(seq uint64) string { return fmt.Sprintf("seq-%020d", seq) }

type snapshotHeader struct {
	Format        int       `json:"format"`
	Stream        string    `json:"stream"`
	StreamCreated time.Time `json:"streamCreated"` // the stream's identity beside its name
	Seq           uint64    `json:"seq"`
	Prev          string    `json:"prev,omitempty"` // hex: the proof leaf of the message at Seq
	Taken         time.Time `json:"taken"`
	Records       int       `json:"records"`
	BodyBytes     int       `json:"bodyBytes"`
	SHA256        string    `json:"sha256"`        // of the body, hex
	Key           string    `json:"key,omitempty"` // the signer's public nkey
	Sig           string    `json:"sig,omitempty"` // base64url ed25519 over signedBytes
}

// nodeView is the node's state captured on the loop at one sequence.
type nodeView struct {
	capture     *projections.Capture
	done        bool // the capture is complete: state is set
	state       *projections.View
	prev        proof.Hash
	dedupe      []dedupeRecord
	quarantined int
	lastQuarSeq uint64
	proofSince  uint64        // n.proofSince, which the loop owns
	pause       time.Duration // the longest the loop stopped for a step of the capture
}

// dedupeRecord is one live entry of the dedupe table.
type dedupeRecord struct {
	id    string
	reply []byte
	at    time.Time
}

// records returns the table's live entries, oldest first: put back in
// this order they rebuild the same table.
func (d *dedupeTable) records() []dedupeRecord {
	out := make([]dedupeRecord, 0, len(d.entries))
	for i, id := range d.order[d.head:] {
		if e, ok := d.entries[id]; ok && e.slot == d.base+d.head+i {
			out = append(out, dedupeRecord{id: id, reply: e.reply, at: e.at})
		}
	}
	return out
}

// encode returns the snapshot object for v, and its header, signed with
// signer (nil: unsigned).
func (v *nodeView) encode(stream string, created, taken time.Time, signer *proof.Signer) ([]byte, snapshotHeader, error) {
	w := &snapcodec.Writer{Buf: make([]byte, 0, 1<<20)}
	if err := v.state.Encode(w); err != nil {
		return nil, snapshotHeader{}, err
	}
	w.Uvarint(uint64(len(v.dedupe)))
	for _, r := range v.dedupe {
		w.String(r.id)
		w.Bytes(r.reply)
		w.Uvarint(uint64(r.at.UnixNano()))
	}
	w.Uvarint(uint64(v.quarantined))
	w.Uvarint(v.lastQuarSeq)
	sum := sha256.Sum256(w.Buf)
	h := snapshotHeader{Format: snapshotFormat, Stream: stream, StreamCreated: created, Seq: v.state.LastSeq,
		Taken: taken, Records: v.state.Records(), BodyBytes: len(w.Buf), SHA256: hex.EncodeToString(sum[:])}
	if v.prev != (proof.Hash{}) {
		h.Prev = hex.EncodeToString(v.prev[:])
	}
	h.sign(signer)
	line, err := json.Marshal(h)
	if err != nil {
		return nil, h, err
	}
	obj := make([]byte, 0, len(line)+1+len(w.Buf))
	obj = append(append(append(obj, line...), '\n'), w.Buf...)
	return obj, h, nil
}

// parseSnapshot splits an object into its header and body and checks the
// body against the header: format, size, checksum.
func parseSnapshot(obj []byte) (snapshotHeader, []byte, error) {
	h, body, err := cutSnapshotHeader(obj)
	if err != nil {
		return h, nil, err
	}
	if len(body) != h.BodyBytes {
		return h, nil, fmt.Errorf("body is %d bytes, the header says %d (partial)", len(body), h.BodyBytes)
	}
	if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != h.SHA256 {
		return h, nil, errors.New("checksum mismatch (corrupt)")
	}
	return h, body, nil
}

// restored is a state decoded from a snapshot, ready to replay the tail on.
type restored struct {
	header      snapshotHeader
	state       *projections.State
	schemas     map[string]*schema
	dedupe      *dedupeTable
	prev        proof.Hash
	quarantined int
	lastQuarSeq uint64
}

// seed starts a replay of the stream after the snapshot: the chain goes
// on from its leaf, sequences from the one after it.
func (r *restored) seed(adm *admission, seqs *seqCheck) {
	adm.prev, adm.seen = r.prev, r.header.Seq
	adm.quarantined, adm.lastSeq = r.quarantined, r.lastQuarSeq
	seqs.next = r.header.Seq + 1
}

// decodeHeadroom is the memory a decode may take per byte of body with
// the garbage collector off before the collector runs again: the decoded
// state of BenchmarkSnapshotState's records holds 4.5 bytes per body
// byte, the rest is room for the garbage of the work going on meanwhile.
const decodeHeadroom = 8

// decodeSnapshotBody decodes a checked body; dedupe entries older than
// the window as of now are dropped. The heap only grows meanwhile, so the
// garbage collector is off (gcpause).
func (n *Node) decodeSnapshotBody(h snapshotHeader, body []byte) (*restored, error) {
	defer gcpause.Pause(decodeHeadroom * int64(len(body)))()
	r := snapcodec.NewReader(body)
	st, err := projections.DecodeState(r)
	if err != nil {
		return nil, err
	}
	if st.LastSeq != h.Seq {
		return nil, fmt.Errorf("state at seq %d, the header says %d", st.LastSeq, h.Seq)
	}
	out := &restored{header: h, state: st, schemas: map[string]*schema{},
		dedupe: newDedupeTable(n.cfg.dedupeWindow, n.cfg.dedupeSize, n.cfg.dedupeBytes)}
	for _, b := range st.Buckets() {
		if out.schemas[b.Def.Bucket], err = compileSchema(b.Def); err != nil {
			return nil, fmt.Errorf("bucket %s: %w", b.Def.Bucket, err)
		}
	}
	horizon := n.now().Add(-n.cfg.dedupeWindow)
	for range r.Count(3) {
		id, reply, at := r.String(), r.Bytes(), time.Unix(0, int64(r.Uvarint()))
		if r.Err() == nil && !at.Before(horizon) {
			out.dedupe.put(id, reply, at)
		}
	}
	out.quarantined, out.lastQuarSeq = int(r.Uvarint()), r.Uvarint()
	if err := r.Err(); err != nil {
		return nil, err
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%d bytes after the body", r.Len())
	}
	if h.Prev != "" {
		b, err := hex.DecodeString(h.Prev)
		if err != nil || len(b) != len(out.prev) {
			return nil, fmt.Errorf("prev %q is not a hash", h.Prev)
		}
		copy(out.prev[:], b)
	}
	return out, nil
}

// snapshotStore opens the object store of the node's snapshots; with
// create, it is made if missing, else a missing one is
// jetstream.ErrBucketNotFound.
func (n *Node) snapshotStore(ctx context.Context, js jetstream.JetStream, create bool) (jetstream.ObjectStore, error) {
	name := events.SnapshotBucket(n.cfg.stream)
	if !create {
		return await(ctx, func(try context.Context) (jetstream.ObjectStore, error) { return js.ObjectStore(try, name) },
			jetstream.ErrBucketNotFound, jetstream.ErrStreamNotFound)
	}
	return js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      name,
		Description: "storeloop snapshots of stream " + n.cfg.stream + ": state at a sequence, to start without replaying it all",
		Storage:     jetstream.FileStorage,
		Replicas:    n.cfg.replicas,
	})
}

// snapshotNames lists the snapshot objects, newest (highest sequence) first.
func snapshotNames(ctx context.Context, os jetstream.ObjectStore) ([]string, error) {
	infos, err := os.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, i := range infos {
		if !i.Deleted {
			names = append(names, i.Name)
		}
	}
	slices.Sort(names)
	slices.Reverse(names)
	return names, nil
}

// anchor checks that the message at h.Seq is in the stream and, with
// proofs (from sequence since on), verifies and has the leaf the snapshot
// holds: the snapshot's state is this stream's history up to there, not a
// rolled-back flight's or another stream's. s is the stream the replay
// source looked up already: no second lookup per snapshot.
func (n *Node) anchor(ctx context.Context, s jetstream.Stream, h snapshotHeader, since uint64) error {
	msg, err := s.GetMsg(ctx, h.Seq)
	if err != nil {
		return fmt.Errorf("message at seq %d: %w", h.Seq, err)
	}
	if n.verifier == nil || h.Seq < since {
		return nil
	}
	_, leaf, err := n.verifier.Verify(proof.Message{Seq: h.Seq, Subject: msg.Subject, Body: msg.Data}, msg.Header.Get(proof.Header))
	if err != nil {
		return fmt.Errorf("message at seq %d: %w", h.Seq, err)
	}
	if hex.EncodeToString(leaf[:]) != h.Prev {
		return fmt.Errorf("message at seq %d is not the one the snapshot was taken after", h.Seq)
	}
	return nil
}

// loadSnapshot returns the newest usable snapshot at or before upTo, or
// nil (full replay). Every snapshot passed over is logged with why.
func (n *Node) loadSnapshot(ctx context.Context, src *replaySource, upTo uint64) *restored {
	os, err := n.snapshotStore(ctx, src.js, false)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		n.log.Warn("snapshots not read: replaying the whole stream", "err", err)
		return nil
	}
	names, err := snapshotNames(ctx, os)
	if err != nil {
		n.log.Warn("snapshots not listed: replaying the whole stream", "err", err)
		return nil
	}
	for _, name := range names {
		r, err := n.readSnapshot(ctx, src, os, name, upTo)
		if err != nil {
			n.log.Warn("snapshot skipped", "name", name, "reason", err)
			continue
		}
		if r != nil {
			return r
		}
	}
	return nil
}

// readSnapshot reads and checks one snapshot; nil without an error when
// it is past upTo (newer than the history a recovery may build on).
func (n *Node) readSnapshot(ctx context.Context, src *replaySource, os jetstream.ObjectStore, name string, upTo uint64) (*restored, error) {
	h, body, err := n.fetchSnapshot(ctx, os, name)
	switch {
	case err != nil:
		return nil, err
	case h.Stream != n.cfg.stream || !h.StreamCreated.Equal(src.created):
		return nil, fmt.Errorf("of stream %s created %s, not of this one (created %s)", h.Stream, h.StreamCreated, src.created)
	case snapshotName(h.Seq) != name:
		return nil, fmt.Errorf("named %s but at seq %d", name, h.Seq)
	case h.Seq > src.last:
		return nil, fmt.Errorf("at seq %d, past the stream's last sequence %d", h.Seq, src.last)
	case h.Seq > upTo:
		return nil, nil
	}
	if err := n.anchor(ctx, src.stream, h, n.proofSince); err != nil {
		return nil, err
	}
	return n.decodeSnapshotBody(h, body)
}

// snapshotInfo describes a stored snapshot, reading it whole to check it.
func (n *Node) snapshotInfo(ctx context.Context, os jetstream.ObjectStore, name string, created time.Time) events.SnapshotInfo {
	info := events.SnapshotInfo{Name: name}
	if oi, err := os.GetInfo(ctx, name); err == nil {
		info.Bytes = oi.Size
	}
	h, _, err := n.fetchSnapshot(ctx, os, name)
	n.describeSnapshot(&info, h, err, created)
	info.Verified = info.Valid // read whole: the body's checksum too
	return info
}
