// Package provenance checks that messages of the event stream were written
// by a trusted store node: their proofs against the keys the stream's
// metadata trusts. Rule nodes dead-letter what fails; watchers skip it.
package provenance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events/proof"
)

// RefreshEvery bounds how often an unknown signer key makes a Checker
// read the stream's trusted keys again.
const RefreshEvery = time.Second

// Checker checks events' proofs against the keys the event stream's
// metadata trusts, reading them again (at most every RefreshEvery) when an
// event is signed by a key it does not know: a store node that rotated
// its key.
type Checker struct {
	js     jetstream.JetStream
	stream string
	v      *proof.Verifier
	since  atomic.Uint64 // messages before it predate proofs
	// upTo is the stream's last sequence when the keys were last read: a
	// store trusts its key in the metadata before it signs, so a message
	// up to it signed by a key still unknown is foreign.
	upTo atomic.Uint64

	mu        sync.Mutex
	refreshed time.Time
}

// New trusts the keys in the event stream's metadata (info, the stream's).
func New(js jetstream.JetStream, stream string, info *jetstream.StreamInfo) (*Checker, error) {
	v, err := proof.NewVerifier(stream)
	if err != nil {
		return nil, err
	}
	p := &Checker{js: js, stream: stream, v: v}
	if err := p.trust(info); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Checker) refresh(ctx context.Context) error {
	s, err := p.js.Stream(ctx, p.stream)
	if err != nil {
		return fmt.Errorf("provenance: trusted keys of stream %s: %w", p.stream, err)
	}
	return p.trust(s.CachedInfo())
}

func (p *Checker) trust(info *jetstream.StreamInfo) error {
	md := info.Config.Metadata
	if err := p.v.Trust(proof.ParseKeys(md[proof.MetadataKeys])...); err != nil {
		return fmt.Errorf("provenance: trusted keys of stream %s: %w", p.stream, err)
	}
	p.since.Store(proof.Since(md))
	for last := info.State.LastSeq; ; {
		if up := p.upTo.Load(); up >= last || p.upTo.CompareAndSwap(up, last) {
			return nil
		}
	}
}

// Check returns nil for a message a trusted store wrote at seq; an error
// wrapping a proof error for a foreign one; any other error is transient
// (the keys could not be read again, or were read before the message was
// written and too recently to read them again) and the event should be
// retried.
func (p *Checker) Check(ctx context.Context, msg jetstream.Msg, seq uint64) error {
	if seq < p.since.Load() {
		return nil
	}
	m := proof.Message{Seq: seq, Subject: msg.Subject(), Body: msg.Data()}
	hdr := msg.Headers().Get(proof.Header)
	_, _, err := p.v.Verify(m, hdr)
	if !errors.Is(err, proof.ErrUntrusted) || seq <= p.upTo.Load() {
		return err
	}
	p.mu.Lock()
	due := time.Since(p.refreshed) >= RefreshEvery
	if due {
		p.refreshed = time.Now()
	}
	p.mu.Unlock()
	if !due {
		// Another event refreshed the keys moments ago, before this one
		// was written (or is refreshing them now): retry rather than
		// dead-letter an event a rotated store wrote.
		return fmt.Errorf("provenance: %s: trusted keys read again less than %v ago; will check again", err, RefreshEvery)
	}
	if rerr := p.refresh(ctx); rerr != nil {
		return rerr
	}
	_, _, err = p.v.Verify(m, hdr)
	return err
}

// IsForeign tells a failed proof from a failure to check it.
func IsForeign(err error) bool {
	return errors.Is(err, proof.ErrMissing) || errors.Is(err, proof.ErrMalformed) ||
		errors.Is(err, proof.ErrUntrusted) || errors.Is(err, proof.ErrSignature)
}
