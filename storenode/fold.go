package storenode

import (
	"math"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/projections"
)

// folder folds stream messages into a state the way replay does: admitted
// by their proofs, applied, their commands' replies remembered for
// idempotency. A rebuild runs one over the whole stream; a standby keeps
// one to follow the stream message by message.
type folder struct {
	st      *projections.State
	schemas map[string]*schema
	dd      *dedupeTable
	rr      *replayReplies
	seqs    *seqCheck
	adm     *admission
}

// newFolder starts a fold of the whole stream into an empty state.
func (n *Node) newFolder() *folder {
	dd := newDedupeTable(n.cfg.dedupeWindow, n.cfg.dedupeSize, n.cfg.dedupeBytes)
	return &folder{st: projections.NewState(), schemas: map[string]*schema{}, dd: dd,
		rr: newReplayReplies(dd, n.now()), seqs: newSeqCheck(), adm: n.newAdmission()}
}

// continueFolder continues the node's own state after its last sequence:
// what a standby follows the stream with.
func (n *Node) continueFolder() *folder {
	adm := n.newAdmission()
	// Nothing to resolve while following (a node fenced mid-recovery
	// starts it): no record of accepted messages kept.
	adm.prev, adm.seen, adm.since = n.prev, n.state.LastSeq, math.MaxUint64
	return &folder{st: n.state, schemas: n.schemas, dd: n.dedupe, rr: newReplayReplies(n.dedupe, n.now()),
		seqs: &seqCheck{next: n.state.LastSeq + 1}, adm: adm}
}

// fold folds the message at seq.
func (f *folder) fold(seq uint64, msg jetstream.Msg) error {
	f.seqs.observe(seq) // a quarantined message is still there: no hole
	m, ok := f.adm.admit(seq, msg)
	if !ok || m == (projections.Message{}) {
		// Quarantined, or a leader marker: skipped, but the stream is there.
		f.st.LastSeq = seq
		return nil
	}
	if err := f.st.ApplyDecoded(seq, m); err != nil {
		return err
	}
	return f.rr.observe(msg.Headers(), m, f.schemas, f.st)
}
