package storenode

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/tracing"
)

// Recovery after a batch failed to commit. The speculative state is wrong,
// so the node refuses every command at once (stale) and, on the loop,
// waits until the pipeline is empty, then rebuilds the state from the
// stream. The flights caught in the failure were not answered: the
// rebuilt history says which of their writes are in the stream, and they
// are answered by that (resolve). A rebuild that fails is tried again
// with backoff; commands stay refused meanwhile, none of them waits.

// Backoff between failed rebuilds.
const (
	rebuildRetryMin = 100 * time.Millisecond
	rebuildRetryMax = 30 * time.Second
)

// recover rebuilds the state if a batch failed and no retry is pending.
func (n *Node) recover() {
	if n.failure() == nil || n.now().Before(n.retryAt) {
		return
	}
	n.barrier()
	n.halt()
}

// rebuildTimeout bounds one rebuild attempt after a failed append; a
// failed attempt is retried with backoff (see rebuildFailed).
const rebuildTimeout = time.Minute

// halt rebuilds the state from the stream and answers the writes the
// failure left unanswered. After a foreign append (a message without this
// store's proof, now quarantined) or a transient failure the node resumes;
// if another store node wrote (a message proved by another trusted key)
// it keeps refusing writes and says why. Runs on the loop.
func (n *Node) halt() {
	cause := n.failure()
	n.resolveFrom = n.lastSeq.Load()
	defer func() { n.resolveFrom = math.MaxUint64 }()
	ctx, cancel := context.WithTimeout(context.Background(), rebuildTimeout)
	defer cancel()
	err := n.refreshTrust(ctx)
	if err == nil {
		err = n.rebuild(ctx)
	}
	if err != nil {
		n.rebuildFailed(cause, err)
		return
	}
	// The writes are answered once the node takes commands again, so that
	// one retried as soon as its answer arrives is not refused as stale.
	defer n.resolve(n.replayed)
	n.retryAt = time.Time{}
	n.setRebuildFailures(0)
	n.failMu.Lock()
	n.failErr = nil
	n.failMu.Unlock()
	n.stale.Store(false)
	own := ""
	if n.signer != nil {
		own = n.signer.PublicKey()
	}
	if seq, other := n.replayed.otherWriter(own); other {
		if n.fenced(seq) {
			n.setHalted("")
			return
		}
		reason := fmt.Sprintf("another store node wrote to stream %s (seq %d, proved by another trusted key); refusing writes: stop the other writer and restart this node", n.cfg.stream, seq)
		n.setHalted(reason)
		n.log.Error("store node halted", "reason", reason)
		return
	}
	n.setHalted("")
	n.log.Warn("store node resumed after rebuilding state from the stream", "cause", cause, "lastSeq", n.state.LastSeq,
		"quarantined", n.Status().Quarantined)
}

// rebuildFailed schedules the next attempt and answers the writes waiting
// for their outcome: it cannot be known now.
func (n *Node) rebuildFailed(cause, err error) {
	n.setRebuildFailures(n.rebuildFailures + 1)
	wait := min(rebuildRetryMin<<min(n.rebuildFailures-1, 20), rebuildRetryMax)
	n.retryAt = n.now().Add(wait)
	n.retry.Reset(wait)
	reason := fmt.Sprintf("append failed (%v); rebuilding the state from the stream failed %d times, next attempt in %s: %v",
		cause, n.rebuildFailures, wait, err)
	n.setHalted(reason)
	n.log.Error("rebuild failed; commands are refused until it succeeds", "attempt", n.rebuildFailures, "retryIn", wait, "err", err)
	n.resolve(nil)
}

// resolve answers the flights the failure left unanswered, each write by
// what the replay found (nil: no replay, nothing can be known):
//   - every message in the accepted history at its sequence: applied, its
//     reply (after a sync, as every success);
//   - refused by the stream, or stored but not accepted (orphaned by an
//     earlier refusal): nothing applied, unavailable;
//   - no acknowledgement and not in the history: it may still land,
//     indeterminate (retry with the same command id).
//
// Reads and writes without messages are answered unavailable: they were
// computed on the speculative state.
func (n *Node) resolve(replay *admission) {
	flights := n.takeUnresolved()
	if len(flights) == 0 {
		return
	}
	unavailable := events.Errorf(events.CodeUnavailable, "append failed, nothing applied: retry")
	indeterminate := events.Errorf(events.CodeIndeterminate, "append failed and whether this write was applied cannot be known now: retry with the same command id")
	var applied []*staged
	for _, f := range flights {
		for _, s := range f.writes {
			switch {
			case len(s.msgs) == 0 || s.err != nil:
				n.answer(s, unavailable)
			case replay != nil && replay.holds(s):
				applied = append(applied, s)
			case s.outcome == outcomeUnknown || replay == nil && s.outcome != outcomeRefused:
				n.answer(s, indeterminate)
			default:
				n.answer(s, unavailable)
			}
		}
		for _, p := range f.reads {
			n.respond(p, marshalReply(nil, unavailable), unavailable)
		}
		n.inFlight.Add(-int64(len(f.writes) + len(f.reads)))
	}
	if len(applied) == 0 {
		return
	}
	if n.cfg.syncer != nil {
		if err := n.cfg.syncer.Sync(); err != nil {
			e := events.Errorf(events.CodeIndeterminate, "appended but not synced (%v): retry with the same command id", err)
			for _, s := range applied {
				n.answer(s, e)
			}
			return
		}
	}
	for _, s := range applied {
		n.answer(s, nil)
	}
}

// answer replies to a write: its own reply when e is nil, else e.
func (n *Node) answer(s *staged, e *events.Error) {
	if e == nil {
		s.endSpans(nil)
		for _, ev := range s.events {
			n.metrics.EventAppended(s.p.ctx, ev.Bucket, string(ev.Type))
		}
		n.respond(s.p, s.p.reply, s.p.err)
		return
	}
	s.endSpans(e)
	n.respond(s.p, marshalReply(nil, e), e)
}

// stopResolving answers, as the node stops, the writes a failure left
// unanswered: without a rebuild their outcome is not known.
func (n *Node) stopResolving() {
	if n.failure() != nil {
		n.barrier()
		n.resolve(nil)
	}
}

func (n *Node) deferFlights(fs []*flight) {
	n.failMu.Lock()
	defer n.failMu.Unlock()
	n.unresolved = append(n.unresolved, fs...)
}

func (n *Node) takeUnresolved() []*flight {
	n.failMu.Lock()
	defer n.failMu.Unlock()
	fs := n.unresolved
	n.unresolved = nil
	return fs
}

// health is what the metrics report; safe from any goroutine.
func (n *Node) health() tracing.StoreHealth {
	n.healthMu.Lock()
	defer n.healthMu.Unlock()
	return tracing.StoreHealth{Quarantined: int64(n.quarantined), RebuildFailures: int64(n.rebuildFailing)}
}

func (n *Node) setRebuildFailures(k int) {
	n.rebuildFailures = k
	n.healthMu.Lock()
	n.rebuildFailing = k
	n.healthMu.Unlock()
}
