package storenode

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/storeloop/storeloop/events"
)

// TTL expiry. Every bucket with a ttl keeps its records ordered by
// _updatedAt (projections.Bucket.NextExpiry); the loop holds one timer set
// for the first expiry across buckets and, when it fires, stages the
// deletes of the records due (oldest first) as an ordinary write of the
// store's own: one deleted event per record, with meta.reason "ttl",
// appended, synced and folded like any command's. A mass expiry goes in
// groups of up to expiryGroup deletes, each one flight of the group
// commit (signed together, synced once; every event still has its own
// ack, which the expected-sequence fence needs).
//
// Lateness. The records due when the timer fires are decided at that
// instant: in one turn of the loop (nothing reads or writes the state
// meanwhile) up to expiryInFlight groups of them leave the state, their
// deletes stamped with that instant, and are published pipelined, each
// group a flight of its own, without waiting for any ack. So a due set
// of up to 10k records is late by the timer's wake-up, not by the
// stream's append rate; a command staged after it sees the records gone
// and is answered once their deletes are durable (it waits for at most
// that many appends). A larger due set goes on, a group at a time, as
// groups commit, with commands staged between.

// WithClock sets the store node's clock (default time.Now): the times it
// stamps on records and events, and what TTL expiry goes by.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("storenode: WithClock(nil)")
		}
		c.clock = now
		return nil
	}
}

// How soon expiry is tried again while writes are refused, and while
// earlier groups are still in flight.
const (
	expiryRetry = time.Second
	expiryYield = 2 * time.Millisecond
)

// expiryGroup caps the deletes of one expiry flight. (A JetStream atomic
// batch, one ack per group, was tried: the file store stages a batch's
// messages before committing them, and expiry ran at half the rate.)
const expiryGroup = 1000

// expiryInFlight bounds the expiry groups appended but not yet committed:
// a due set of 10k records is decided at once (the bound: at
// most 1 s late at 10k), and a command arriving during a larger mass
// expiry is at most 10k appends behind. It stays below the flights'
// buffer (node.go), so that expiry alone never blocks the loop, and its
// deletes well below the publisher's pending-ack cap.
const expiryInFlight = 10

// drivesExpiry reports whether this node expires records. Only the node
// that holds the lease (the leader, or the only node) may: standbys follow
// its deleted events in the stream. A leader that lost the lease but has
// not noticed yet cannot append either: the new leader's marker fences it.
func (n *Node) drivesExpiry() bool {
	l := n.lead.lease
	return l == nil || l.held(n.now())
}

// armExpiry sets the expiry timer for the first record due. Runs on the loop.
func (n *Node) armExpiry() {
	_, _, at, ok := n.state.NextExpiry()
	if !ok || !n.drivesExpiry() {
		if !n.expiryAt.IsZero() {
			n.expiry.Stop()
			n.expiryAt = time.Time{}
		}
		return
	}
	// Set again after every batch, not only when the first expiry
	// changes: the clock may have moved (WithClock).
	n.expiryAt = at
	n.expiry.Reset(max(at.Sub(n.now()), 0))
}

// expire stages the deletes due now, all decided at one instant, in as
// many groups as expiryInFlight leaves room for when it starts (groups
// that commit meanwhile do not extend the turn), then sets the timer
// again. Runs on the loop, when the timer fires. While expiryInFlight
// groups are still in flight it waits a little instead: a mass expiry
// must not queue more deletes ahead of the commands that arrive
// meanwhile.
func (n *Node) expire() {
	n.expiryAt = time.Time{}
	room := n.expiryRoom()
	if room == 0 {
		n.expiryAt = n.now().Add(expiryYield)
		n.expiry.Reset(expiryYield)
		return
	}
	now := n.now()
	f := n.stageExpiry(now)
	for g := f; g != nil; {
		n.flights <- g
		if room--; room == 0 {
			break
		}
		g = n.stageExpiry(now)
	}
	if f == nil {
		if _, _, at, ok := n.state.NextExpiry(); ok && !at.After(n.now()) {
			// Due but refused (halted, rebuilding): try again later.
			n.expiryAt = n.now().Add(expiryRetry)
			n.expiry.Reset(expiryRetry)
			return
		}
	}
	n.armExpiry()
}

// expireBacklog expires, before the node serves commands, every record
// whose TTL passed while it was down, in expiry order. Runs on Start's
// goroutine before the loop starts (the acker and committer run).
func (n *Node) expireBacklog() {
	staged := false
	for f := n.stageExpiry(n.now()); f != nil; f = n.stageExpiry(n.now()) {
		n.flights <- f
		staged = true
		if n.expiryRoom() == 0 {
			// Bounded like the loop's expiry: a large backlog must not
			// outrun the stream's acks (the publisher's pending cap).
			n.barrier()
		}
	}
	if staged {
		n.barrier()
	}
	n.armExpiry()
}

// expiryRoom returns how many more expiry groups may be appended before
// expiryInFlight are in flight. A group is in flight while its last
// sequence is past the committed one and still within the state (a
// rebuild that dropped it ended its flight).
func (n *Node) expiryRoom() int {
	committed := n.lastSeq.Load()
	n.expiryTails = slices.DeleteFunc(n.expiryTails, func(seq uint64) bool {
		return seq <= committed || seq > n.state.LastSeq
	})
	return max(expiryInFlight-len(n.expiryTails), 0)
}

// stageExpiry deletes up to expiryGroup records due at now, stamped now,
// and publishes the deleted events pipelined in a flight, or returns nil
// when none is due or writes are refused.
func (n *Node) stageExpiry(now time.Time) *flight {
	if !n.drivesExpiry() || n.stale.Load() || n.haltReason() != "" {
		return nil
	}
	var p *pending
	f := &flight{}
	for len(f.writes) < expiryGroup {
		b, k, at, ok := n.state.NextExpiry()
		if !ok || at.After(now) {
			break
		}
		ev, e := n.deletedBy(b, k, events.ReasonTTL)
		if e != nil {
			n.log.Error("expiry", "bucket", b.Def.Bucket, "err", e)
			break
		}
		if p == nil {
			p = n.expiryPending(now)
		}
		ev.Meta = n.meta(p, "")
		ev.Meta.Time = now.UnixMilli() // when the record left the state
		ev.Meta.Reason = events.ReasonTTL
		body, _ := encodeEvent(ev)
		s := &staged{p: p, events: []*events.Event{ev}}
		s.add(n.message(events.EventSubject(ev.Bucket, ev.Type), body, ev.Meta.EventID), ev.Key)
		f.writes = append(f.writes, s)
	}
	if len(f.writes) == 0 {
		return nil
	}
	n.state.Settle() // the deletes are not undone by what is staged next
	n.inFlight.Add(int64(len(f.writes)))
	n.appendWrites(f)
	n.expiryTails = append(n.expiryTails, f.last)
	return f
}

// expiryPending stands for the store itself as the author of expiries: no
// request, no reply, no command id.
func (n *Node) expiryPending(now time.Time) *pending {
	ctx := context.Background()
	return &pending{cmd: "expire", ctx: ctx, span: trace.SpanFromContext(ctx), received: now}
}
