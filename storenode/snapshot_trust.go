package storenode

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events/proof"
)

// Anyone who can write the snapshot object store could otherwise forge
// state, so a snapshot is trusted only as far as the stream's events are:
// its header is signed with the node's proof key (a proof statement of
// kind snapshotStatement) and a start uses it only if a key the stream's
// metadata trusts signed it. The signature covers the header's canonical
// bytes (signedBytes), the body through its SHA-256. With proofs off
// (WithoutProofs, benchmarks only) snapshots are neither signed nor
// checked.

// snapshotStatement is the proof statement kind of a snapshot header.
const snapshotStatement = "snapshot"

// DefaultSnapshotMaxBytes caps the size of a snapshot object the node
// reads or writes (WithSnapshotMaxBytes).
const DefaultSnapshotMaxBytes int64 = 4 << 30

// signedBytes is what a snapshot header's signature covers: every field
// but the key and signature, each string length-prefixed (u32),
// integers big-endian, times as unix nanoseconds.
func (h *snapshotHeader) signedBytes() []byte {
	str := func(b []byte, s string) []byte {
		return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...)
	}
	b := binary.BigEndian.AppendUint32(nil, uint32(h.Format))
	b = str(b, h.Stream)
	b = binary.BigEndian.AppendUint64(b, uint64(h.StreamCreated.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, h.Seq)
	b = str(b, h.Prev)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Taken.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(h.Records))
	b = binary.BigEndian.AppendUint64(b, uint64(h.BodyBytes))
	return str(b, h.SHA256)
}

// sign signs h with s; a nil signer (proofs off) leaves it unsigned.
func (h *snapshotHeader) sign(s *proof.Signer) {
	if s == nil {
		return
	}
	h.Key = s.PublicKey()
	h.Sig = base64.RawURLEncoding.EncodeToString(s.SignStatement(snapshotStatement, h.signedBytes()))
}

// verify reports why h is not signed by a key v trusts.
func (h *snapshotHeader) verify(v *proof.Verifier) error {
	if h.Sig == "" {
		return errors.New("unsigned: not trusted")
	}
	sig, err := base64.RawURLEncoding.DecodeString(h.Sig)
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	return v.VerifyStatement(snapshotStatement, h.signedBytes(), h.Key, sig)
}

// checkSigned reports why h is not signed by a trusted key, reading the
// stream's trusted keys again once if the key is unknown (a snapshot
// taken by a store node started after this one). Without proofs every
// header passes.
func (n *Node) checkSigned(ctx context.Context, h *snapshotHeader) error {
	if n.verifier == nil {
		return nil
	}
	err := h.verify(n.verifier)
	if errors.Is(err, proof.ErrUntrusted) && n.refreshTrust(ctx) == nil {
		err = h.verify(n.verifier)
	}
	return err
}

// fetchSnapshot reads the snapshot object name within the size cap and
// returns its header and body once they parse and a trusted key signed
// the header (the header as far as it parsed with any error).
func (n *Node) fetchSnapshot(ctx context.Context, os jetstream.ObjectStore, name string) (snapshotHeader, []byte, error) {
	obj, err := getSnapshotObject(ctx, os, name, n.cfg.snapshots.maxObject())
	if err != nil {
		return snapshotHeader{}, nil, err
	}
	h, body, err := parseSnapshot(obj)
	if err == nil {
		err = n.checkSigned(ctx, &h)
	}
	return h, body, err
}

// getSnapshotObject reads the object name whole, refusing one past max
// bytes before reading it (its size as the object store describes it) and
// while reading it (the description could lie).
func getSnapshotObject(ctx context.Context, os jetstream.ObjectStore, name string, max int64) ([]byte, error) {
	res, err := os.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	info, err := res.Info()
	if err != nil {
		return nil, err
	}
	if info.Size > uint64(max) {
		return nil, fmt.Errorf("%d bytes, past the cap of %d (WithSnapshotMaxBytes)", info.Size, max)
	}
	// Room for what the description says, within a bound: the buffer
	// grows if it lied low.
	buf := bytes.NewBuffer(make([]byte, 0, min(info.Size, 64<<20)))
	got, err := buf.ReadFrom(io.LimitReader(res, max+1))
	switch {
	case err != nil:
		return nil, err
	case got > max:
		return nil, fmt.Errorf("more than the cap of %d bytes (WithSnapshotMaxBytes)", max)
	}
	return buf.Bytes(), nil
}
