package storenode

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/events/proof"
	"github.com/storeloop/storeloop/projections"
)

// Only the store's own events become state: every message the node
// appends carries a proof (package events/proof) signed with its key, and
// replay folds a message only if its proof verifies against a key the
// stream's metadata trusts and it chains to the message accepted before
// it. Anything else is quarantined: skipped, counted and logged, never
// folded, never a reason not to start.

// initProof sets the node's signer: the configured key, or a key of this
// run only (tests, embedding programs that do not care which key signs;
// old keys stay trusted in the stream's metadata, so restarts still
// verify).
func (n *Node) initProof() error {
	if n.cfg.proofOff {
		return nil
	}
	kp := n.cfg.proofKey
	if kp == nil {
		var err error
		if kp, err = nkeys.CreateServer(); err != nil {
			return fmt.Errorf("storenode: proof key: %w", err)
		}
		n.log.Info("events are signed with a key of this run only (WithProofKey sets a lasting one)")
	}
	s, err := proof.NewSigner(n.cfg.stream, kp)
	if err != nil {
		return fmt.Errorf("storenode: proof key: %w", err)
	}
	n.signer = s
	return nil
}

// streamMetadata is the stream's metadata with the node's key added to
// the trusted keys (the others kept: a rotated key's events still verify).
// The server's own entries (_nats.*) are left to the server.
func (n *Node) streamMetadata(ctx context.Context) (map[string]string, error) {
	md := map[string]string{}
	var last uint64
	s, err := n.js.Stream(ctx, n.cfg.stream)
	switch {
	case err == nil:
		for k, v := range s.CachedInfo().Config.Metadata {
			if !strings.HasPrefix(k, "_nats.") {
				md[k] = v
			}
		}
		last = s.CachedInfo().State.LastSeq
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, fmt.Errorf("storenode: stream %s: %w", n.cfg.stream, err)
	}
	if n.signer != nil {
		if _, signed := md[proof.MetadataKeys]; !signed && last > 0 {
			// Written before proofs: what is there stays trusted as it is.
			md[proof.MetadataSince] = strconv.FormatUint(last+1, 10)
		}
		keys := proof.ParseKeys(md[proof.MetadataKeys])
		if !slices.Contains(keys, n.signer.PublicKey()) {
			keys = append(keys, n.signer.PublicKey())
		}
		md[proof.MetadataKeys] = strings.Join(keys, ",")
	}
	return md, nil
}

// trust makes the node's verifier trust the keys in the stream's metadata.
func (n *Node) trust(md map[string]string) error {
	if n.signer == nil {
		return nil
	}
	n.proofSince = proof.Since(md)
	keys := proof.ParseKeys(md[proof.MetadataKeys])
	if n.verifier == nil {
		v, err := proof.NewVerifier(n.cfg.stream, keys...)
		if err != nil {
			return fmt.Errorf("storenode: trusted keys of stream %s: %w", n.cfg.stream, err)
		}
		n.verifier = v
		return nil
	}
	return n.verifier.Trust(keys...)
}

// refreshTrust reads the trusted keys again: another store node may have
// added its own since this one started.
func (n *Node) refreshTrust(ctx context.Context) error {
	s, err := awaitStream(ctx, n.js, n.cfg.stream)
	if err != nil {
		return fmt.Errorf("storenode: stream %s: %w", n.cfg.stream, err)
	}
	return n.trust(s.CachedInfo().Config.Metadata)
}

// prove signs the messages of a flight about to be published at the
// sequences after the state's last one, chained to the last message
// staged, and records where each write's messages go.
func (n *Node) prove(writes []*staged) error {
	seq := n.state.LastSeq
	var msgs []*nats.Msg
	var pms []proof.Message
	for _, s := range writes {
		if len(s.msgs) == 0 {
			continue
		}
		s.firstSeq = seq + 1
		for _, m := range s.msgs {
			seq++
			msgs = append(msgs, m)
			pms = append(pms, proof.Message{Seq: seq, Subject: m.Subject, Body: m.Data})
		}
	}
	if n.signer == nil || len(msgs) == 0 {
		return nil
	}
	hdrs, last, err := n.signer.Sign(pms, n.prev)
	if err != nil {
		return err
	}
	for i, m := range msgs {
		m.Header.Set(proof.Header, hdrs[i])
	}
	n.prev = last
	return nil
}

// accepted is a message replay folded after the sequence a recovery
// resolves from: which event, signed by whom.
type accepted struct {
	eventID string
	key     string
}

// admission decides, message by message during a replay, what becomes
// state.
type admission struct {
	n     *Node
	prev  proof.Hash // the leaf of the last message accepted
	seen  uint64     // the last sequence read, accepted or not
	since uint64     // record accepted messages after this sequence
	after map[uint64]accepted

	quarantined int
	lastSeq     uint64 // the last quarantined sequence

	refresh func() error // reads the trusted keys again, if set
}

func (n *Node) newAdmission() *admission {
	return &admission{n: n, since: n.resolveFrom, after: map[uint64]accepted{}}
}

// maxQuarantineLogs bounds the log lines of one replay; the count and the
// last sequence are reported whatever their number.
const maxQuarantineLogs = 20

// admit returns the message at seq decoded, or false when it must not
// become state (it is then quarantined).
func (a *admission) admit(seq uint64, msg jetstream.Msg) (projections.Message, bool) {
	var key string
	// After a hole (events lost, and accepted as lost: see loss.go) the
	// chain restarts at the next proved message: what it chains to is gone.
	hole := seq != a.seen+1
	a.seen = seq
	if v := a.n.verifier; v != nil && seq >= a.n.proofSince {
		pm, hdr := proof.Message{Seq: seq, Subject: msg.Subject(), Body: msg.Data()}, msg.Headers().Get(proof.Header)
		p, leaf, err := v.Verify(pm, hdr)
		if errors.Is(err, proof.ErrUntrusted) && a.refresh != nil && a.refresh() == nil {
			// A standby meets the key of a store node started after it.
			p, leaf, err = v.Verify(pm, hdr)
		}
		switch {
		case err != nil:
			return projections.Message{}, a.quarantine(seq, msg.Subject(), err.Error())
		case p.Prev != a.prev && !hole:
			return projections.Message{}, a.quarantine(seq, msg.Subject(), "proof valid but not chained to the message accepted before it (a flight orphaned by a refused append)")
		}
		a.prev, key = leaf, p.Key
	}
	// A leader's epoch marker is proved as any message: it fences the
	// stream and is not state (the empty Message).
	var m projections.Message
	if msg.Subject() != events.LeaderSubject {
		var err error
		if m, err = projections.DecodeMessage(msg.Subject(), msg.Data()); err != nil {
			return m, a.quarantine(seq, msg.Subject(), fmt.Sprintf("undecodable: %v", err))
		}
	}
	if seq > a.since {
		a.after[seq] = accepted{eventID: msg.Headers().Get(events.HeaderEventID), key: key}
	}
	return m, true
}

func (a *admission) quarantine(seq uint64, subject, reason string) bool {
	a.quarantined++
	a.lastSeq = seq
	if a.quarantined <= maxQuarantineLogs {
		a.n.log.Warn("message quarantined: not folded into state", "seq", seq, "subject", subject, "reason", reason)
	}
	return false
}

// done publishes what the replay found; it runs once the replay succeeded.
func (a *admission) done() {
	n := a.n
	n.prev = a.prev
	n.replayed = a
	n.healthMu.Lock()
	n.quarantined, n.lastQuarantinedSeq = a.quarantined, a.lastSeq
	n.healthMu.Unlock()
	if a.quarantined > maxQuarantineLogs {
		n.log.Warn("messages quarantined in the stream", "count", a.quarantined, "lastSeq", a.lastSeq)
	}
}

// otherWriter returns the first sequence after the resolution point
// accepted with a key that is not this node's: another store node wrote.
func (a *admission) otherWriter(own string) (uint64, bool) {
	first, other := uint64(0), false
	for seq, acc := range a.after {
		if acc.key != own && (!other || seq < first) {
			first, other = seq, true
		}
	}
	return first, other
}

// holds reports whether the replay accepted every message of s at the
// sequences s was staged for.
func (a *admission) holds(s *staged) bool {
	for i, m := range s.msgs {
		got, ok := a.after[s.firstSeq+uint64(i)]
		if !ok || got.eventID != m.Header.Get(events.HeaderEventID) {
			return false
		}
	}
	return true
}
