package storenode

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The commit path has two stages after the loop, so that waiting for the
// stream's acks and syncing the disk overlap:
//
//	loop ──flights──▶ acker ──acked──▶ committer
//
// The acker waits, batch after batch, until the stream has acknowledged
// each one. The committer takes every batch acknowledged by then, makes
// them durable with one sync, and replies; while it syncs, the acker goes
// on, so the next sync covers everything acknowledged during this one.
// After a failure the flights not yet answered wait for the loop to
// rebuild the state, which answers them by what the stream holds (see
// recover.go).

// acker forwards flights in order once their acks are in. After a
// failure it still waits for the acks of the flights already published,
// so that the rebuild reads a stream no append of this node still
// reaches, and each write's outcome is known when it can be.
func (n *Node) acker() {
	defer close(n.acked)
	defer n.acks.close()
	for f := range n.flights {
		if f.barrier == nil {
			if err := n.awaitAcks(f); err != nil {
				n.fail(err)
			}
			// Once a flight failed, the flights after it may be orphaned by
			// it: their writes are answered after the rebuild, by what it finds.
			f.deferred = !f.settled && n.failure() != nil
		}
		n.acked <- f
	}
}

// committer syncs and replies, one sync per group of acknowledged flights.
func (n *Node) committer() {
	defer close(n.done)
	for f := range n.acked {
		if f.barrier != nil {
			close(f.barrier)
			continue
		}
		group := []*flight{f}
		var barrier chan struct{}
	more:
		for {
			select {
			case g, ok := <-n.acked:
				if !ok {
					break more
				}
				if g.barrier != nil {
					barrier = g.barrier
					break more
				}
				group = append(group, g)
			default:
				break more
			}
		}
		n.commit(group)
		if barrier != nil {
			close(barrier)
		}
	}
}

// commit makes the group's acknowledged flights durable and replies; the
// flights caught in a failure wait for the rebuild (see resolve). Only
// flights refused whole at staging (settled) follow a deferred one
// undeferred: their replies stand whatever the stream holds.
func (n *Node) commit(group []*flight) {
	var ok, deferred []*flight
	for _, f := range group {
		if f.deferred {
			deferred = append(deferred, f)
		} else {
			ok = append(ok, f)
		}
	}
	if n.cfg.syncer != nil && slices.ContainsFunc(ok, func(f *flight) bool { return len(f.futures) > 0 }) {
		if err := n.cfg.syncer.Sync(); err != nil {
			// Acknowledged but maybe not on disk: the rebuild decides.
			n.fail(err)
			ok, deferred = nil, group
		}
	}
	for _, f := range ok {
		if !f.settled {
			n.lastSeq.Store(f.last)
		}
		for _, s := range f.writes {
			s.endSpans(nil)
			for _, ev := range s.events {
				n.metrics.EventAppended(s.p.ctx, ev.Bucket, string(ev.Type))
			}
			n.respond(s.p, s.p.reply, s.p.err)
		}
		for _, p := range f.reads {
			n.respond(p, p.reply, p.err)
		}
		n.inFlight.Add(-int64(len(f.writes) + len(f.reads)))
	}
	if len(deferred) > 0 {
		n.deferFlights(deferred)
	}
}

// fail records that a batch could not be committed: every command is
// refused (the speculative state is wrong) and the loop is woken to
// rebuild the state from the stream.
func (n *Node) fail(err error) {
	n.setFailure(err)
	n.setHalted(fmt.Sprintf("append failed, rebuilding the state from the stream: %v", err))
	n.stale.Store(true) // after the reason, which refusals quote
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Outcomes of a write's append, as far as the acker knows.
const (
	outcomeAcked   = iota // stored at the sequence it expected
	outcomeRefused        // the stream said no: not stored
	outcomeUnknown        // no answer: it may be stored, now or later
)

// awaitAcks waits for every ack of f (until the append timeout), records
// each write's outcome, and returns the first failure.
func (n *Node) awaitAcks(f *flight) error {
	if f.pubErr != nil {
		outcome := outcomeUnknown // a publish may have gone out before the error
		if f.unsent {
			outcome = outcomeRefused
		}
		for _, s := range f.published {
			s.outcome = outcome
		}
		return f.pubErr
	}
	timeout := time.NewTimer(n.cfg.appendTimeout)
	defer timeout.Stop()
	var first error
	for i, a := range f.futures {
		s := f.published[i]
		seq, err := n.acks.wait(a, timeout.C)
		switch {
		case errors.Is(err, errAckTimeout):
			for j, s := range f.published[i:] {
				s.outcome = outcomeUnknown
				n.acks.abandon(f.futures[i+j])
			}
			return cmp.Or(first, fmt.Errorf("no acknowledgement from the stream within %s: %w", n.cfg.appendTimeout, context.DeadlineExceeded))
		case err != nil:
			s.outcome = outcomeUnknown
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) {
				s.outcome = outcomeRefused
			}
			first = cmp.Or(first, err)
		case seq != s.firstSeq+uint64(len(s.msgs))-1:
			s.outcome = outcomeUnknown
			first = cmp.Or(first, fmt.Errorf("stream acknowledged sequence %d, expected %d", seq, s.firstSeq+uint64(len(s.msgs))-1))
		}
	}
	return first
}

// barrier returns once the committer has handled every batch staged so far.
func (n *Node) barrier() {
	done := make(chan struct{})
	n.flights <- &flight{barrier: done}
	<-done
}

func (n *Node) failure() error {
	n.failMu.Lock()
	defer n.failMu.Unlock()
	return n.failErr
}

func (n *Node) setFailure(err error) {
	n.failMu.Lock()
	defer n.failMu.Unlock()
	if n.failErr == nil {
		n.failErr = err
	}
}
