package storenode

import (
	"encoding/json"

	"github.com/nats-io/nkeys"

	"github.com/storeloop/storeloop/events/proof"
)

// WithoutProofs turns event proofs off, for benchmarks measuring what they
// cost: events are not signed and replay does not check them.
func WithoutProofs() Option {
	return func(c *config) error { c.proofOff = true; return nil }
}

// WithCaptureSteps makes a step of a snapshot's capture copy n records
// and calls between after each step but the last, off the loop: a test
// waits there for its writes to land between the steps.
func WithCaptureSteps(n int, between func()) Option {
	return func(c *config) error { c.snapshots.slice, c.snapshots.between = n, between; return nil }
}

// ResignSnapshot returns the snapshot object obj with its header signed
// again by kp for stream: what a writer of the object store holding
// another key could make.
func ResignSnapshot(obj []byte, stream string, kp nkeys.KeyPair) ([]byte, error) {
	h, body, err := parseSnapshot(obj)
	if err != nil {
		return nil, err
	}
	s, err := proof.NewSigner(stream, kp)
	if err != nil {
		return nil, err
	}
	h.sign(s)
	line, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	return append(append(line, '\n'), body...), nil
}

// HoldSnapshotListing marks a store.snapshots listing as running until
// release is called, as a slow one would.
func (n *Node) HoldSnapshotListing() (release func()) {
	if !n.listing.CompareAndSwap(false, true) {
		panic("a snapshot listing is running")
	}
	return func() { n.listing.Store(false) }
}
