package storenode

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/storeloop/storeloop/events"
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
// After a failure both stages fail every batch until the loop has rebuilt
// the state (see loop.recover).

// acker forwards flights in order once their acks are in.
func (n *Node) acker() {
	defer close(n.acked)
	for f := range n.flights {
		if f.barrier == nil && n.failure() == nil {
			if err := n.awaitAcks(f); err != nil {
				n.fail(err)
			}
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

// commit makes a group of acknowledged flights durable and replies.
func (n *Node) commit(group []*flight) {
	err := n.failure()
	if err == nil && n.cfg.syncer != nil && slices.ContainsFunc(group, func(f *flight) bool { return len(f.futures) > 0 }) {
		if err = n.cfg.syncer.Sync(); err != nil {
			n.fail(err)
		}
	}
	if err != nil {
		e := events.Errorf(events.CodeUnavailable, "append failed, retry: %v", err)
		unavailable := marshalReply(nil, e)
		for _, f := range group {
			for _, s := range f.writes {
				s.endSpans(err)
				n.respond(s.p, unavailable, e)
			}
			for _, p := range f.reads {
				n.respond(p, unavailable, e)
			}
			n.inFlight.Add(-int64(len(f.writes) + len(f.reads)))
		}
		return
	}
	n.lastSeq.Store(group[len(group)-1].last)
	for _, f := range group {
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
}

// fail records that a batch could not be committed: writes are refused
// and the loop is woken to rebuild the state from the stream.
func (n *Node) fail(err error) {
	n.setFailure(err)
	n.setHalted(fmt.Sprintf("append failed: %v", err))
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// awaitAcks waits for every ack of f and checks the stream is where f
// expects it.
func (n *Node) awaitAcks(f *flight) error {
	if f.pubErr != nil {
		return f.pubErr
	}
	timeout := time.NewTimer(n.cfg.appendTimeout)
	defer timeout.Stop()
	var last uint64
	for _, fut := range f.futures {
		select {
		case ack := <-fut.Ok():
			last = ack.Sequence
		case err := <-fut.Err():
			return err
		case <-timeout.C:
			return fmt.Errorf("no acknowledgement from the stream within %s: %w", n.cfg.appendTimeout, context.DeadlineExceeded)
		}
	}
	if len(f.futures) > 0 && last != f.last {
		return fmt.Errorf("stream acknowledged sequence %d, expected %d", last, f.last)
	}
	return nil
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
