package storenode

import (
	"context"
	"fmt"
	"time"

	"github.com/storeloop/storeloop/events"
)

// committer receives staged batches in order, waits until the stream has
// acknowledged them, makes them durable with one sync for every batch
// acknowledged by then, and replies. After a failure it fails every batch
// until the loop has rebuilt the state (see loop).
func (n *Node) committer() {
	defer close(n.done)
	for f := range n.flights {
		group := []*flight{f}
		var barrier chan struct{}
		// Take the batches already staged behind f: one sync covers them all.
	more:
		for f.barrier == nil {
			select {
			case g, ok := <-n.flights:
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
		if f.barrier != nil {
			close(f.barrier)
			continue
		}
		n.commit(group)
		if barrier != nil {
			close(barrier)
		}
	}
}

func (n *Node) commit(group []*flight) {
	err := n.failure()
	for _, f := range group {
		if err != nil {
			break
		}
		err = n.awaitAcks(f)
	}
	if err == nil && n.cfg.syncer != nil && len(group[len(group)-1].futures) > 0 {
		err = n.cfg.syncer.Sync()
	}
	if err != nil {
		n.setFailure(err)
		n.setHalted(fmt.Sprintf("append failed: %v", err))
		select {
		case n.wake <- struct{}{}:
		default:
		}
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
