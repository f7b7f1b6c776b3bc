package storenode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel/metric"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/events/proof"
	"github.com/storeloop/storeloop/internal/streamread"
	"github.com/storeloop/storeloop/tracing"
)

// Leader and standby. With WithLease several store nodes run on one
// stream. The one holding the lease is the leader: it catches up with the
// stream, appends a leader marker (which fences every append of a former
// leader: they expect an older last sequence) and then serves the command
// service. The others are standbys: they follow the stream with an
// ordered consumer, folding each message as replay does, and serve
// nothing but their own status. A leader that loses the lease (by its own
// clock, or when a renewal is refused) or whose append is fenced stops
// the service and follows the stream again.

// leadership is a node's part in it; everything but the atomics is owned
// by the loop.
type leadership struct {
	lease     *lease // nil without WithLease: the only node, always serving
	who       events.Lease
	leading   atomic.Bool
	wake      chan struct{} // → loop: the lease changed, reconcile
	follow    *follower
	lag       atomic.Uint64 // stream messages not folded yet (a standby's)
	failovers atomic.Int64  // times this node became the leader
	stop      context.CancelFunc
	statusSub *nats.Subscription
	metrics   metric.Registration

	// leaseMoves counts the lease bucket leader's moves (lease_placement.go).
	leaseMoves atomic.Int64
}

// follower is a standby's ordered consumer feeding the loop.
type follower struct {
	f    *folder
	msgs chan jetstream.Msg
	cc   jetstream.ConsumeContext
	done chan struct{}
}

// startLeadership binds the lease and, unless it is held by another node,
// takes it before the node serves; otherwise the node starts as a
// standby. Without a lease the node serves at once. It runs in Start,
// before the loop.
func (n *Node) startLeadership(ctx context.Context) error {
	host, _ := os.Hostname()
	n.lead.who = events.Lease{Node: nuid.Next(), Host: host, Started: n.now().UTC()}
	n.lead.wake = make(chan struct{}, 1)
	var err error
	if n.cfg.lease == 0 {
		n.lead.leading.Store(true)
		n.expireBacklog() // what expired while the node was down, before any command
		err = n.serve()
	} else {
		err = n.startLease(ctx)
	}
	if err != nil {
		return err
	}
	if n.lead.metrics, err = n.metrics.ObserveLeadership(n.leadershipMetrics); err != nil {
		return fmt.Errorf("storenode: metrics: %w", err)
	}
	if n.lead.statusSub, err = n.nc.Subscribe(events.CommandSubject(n.cfg.prefix, events.CmdNodes), n.answerNodes); err != nil {
		return fmt.Errorf("storenode: %s: %w", events.CmdNodes, err)
	}
	return nil
}

func (n *Node) startLease(ctx context.Context) error {
	wake := func() {
		select {
		case n.lead.wake <- struct{}{}:
		default:
		}
	}
	err := n.startStep(ctx, "lease bucket "+events.LeaseBucket, false, func(ctx context.Context) (err error) {
		n.lead.lease, err = openLease(ctx, n.js, n.cfg, n.lead.who, n.log, wake)
		return err
	})
	if err != nil {
		return err
	}
	if err := n.startStep(ctx, "follow stream "+n.cfg.stream, true, func(context.Context) error { return n.startFollowing() }); err != nil {
		return err
	}
	n.lead.lease.acquire(ctx)
	n.reconcile()
	runCtx, cancel := context.WithCancel(context.Background())
	n.lead.stop = cancel
	go n.lead.lease.run(runCtx)
	go n.keepLeaseApart(runCtx)
	return nil
}

// stopLeadership ends following and the lease (released, so that a
// standby takes over at once) once the loop has ended.
func (n *Node) stopLeadership(ctx context.Context) {
	if n.lead.statusSub != nil {
		n.lead.statusSub.Unsubscribe()
	}
	if n.lead.metrics != nil {
		n.lead.metrics.Unregister()
	}
	if n.lead.stop != nil {
		n.lead.stop()
	}
	n.stopFollowing()
	if n.lead.lease != nil {
		n.lead.lease.release(ctx)
	}
}

// reconcile makes the node's role follow the lease. Runs on the loop.
func (n *Node) reconcile() {
	l := n.lead.lease
	if l == nil {
		return
	}
	held, leading := l.held(n.now()), n.lead.leading.Load()
	switch {
	case held && !leading:
		if err := n.promote(); err != nil {
			n.log.Warn("not taking the lead", "err", err)
			ctx, cancel := context.WithTimeout(context.Background(), l.ttl)
			l.release(ctx)
			cancel()
			if err := n.startFollowing(); err != nil {
				n.log.Debug("standby not following the stream yet", "err", err)
			}
		}
	case !held && leading:
		n.demote("lease lost")
	case !leading && (n.lead.follow == nil || n.lead.follow.f.st != n.state):
		// Not following, or following a state a rebuild replaced: a failed
		// start is tried again at the next wake (every lease/15).
		if err := n.startFollowing(); err != nil {
			n.log.Debug("standby not following the stream yet", "err", err)
		}
	}
}

// promote catches up with the stream, fences it and serves.
func (n *Node) promote() error {
	ctx, cancel := context.WithTimeout(context.Background(), rebuildTimeout)
	defer cancel()
	started := time.Now()
	for {
		if err := n.catchUp(ctx); err != nil {
			return err
		}
		n.stopFollowing()
		err := n.appendMarker(ctx)
		var apiErr *jetstream.APIError
		if err == nil {
			break
		}
		if !errors.As(err, &apiErr) || (apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence &&
			apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			return fmt.Errorf("leader marker: %w", err)
		}
		// A former leader appended before its lease ran out: fold it too.
		if err := n.startFollowing(); err != nil {
			return err
		}
	}
	n.expireBacklog() // what expired while no node led, before any command
	if err := n.serve(); err != nil {
		return err
	}
	if err := n.nc.FlushTimeout(rebuildTimeout); err != nil {
		return fmt.Errorf("flush subscriptions: %w", err)
	}
	n.lead.leading.Store(true)
	n.lead.lag.Store(0)
	n.lead.failovers.Add(1)
	epoch, until := n.lead.lease.state()
	n.log.Info("store node is the leader", "stream", n.cfg.stream, "epoch", epoch, "lastSeq", n.state.LastSeq,
		"leaseUntil", until, "took", time.Since(started))
	return nil
}

// demote stops serving and follows the stream again: the commands in
// flight are committed (or, fenced, resolved by a rebuild) first.
func (n *Node) demote(why string) {
	n.lead.leading.Store(false)
	n.stopService()
	n.barrier()
	n.recover()
	n.log.Warn("store node is a standby", "stream", n.cfg.stream, "why", why, "lastSeq", n.state.LastSeq)
	n.reconcile() // follows the stream
}

// fenced handles a rebuild that found another store node's messages after
// this one's: with a lease that is a newer leader, and this node steps
// down; without one it is a second writer. It reports whether the node
// stepped down.
func (n *Node) fenced(seq uint64) bool {
	if n.lead.lease == nil {
		return false
	}
	n.lead.lease.drop()
	n.demote(fmt.Sprintf("fenced: another store node leads stream %s since seq %d", n.cfg.stream, seq))
	return true
}

// catchUp folds the stream up to its last sequence as of now.
func (n *Node) catchUp(ctx context.Context) error {
	if n.lead.follow == nil {
		if err := n.startFollowing(); err != nil {
			return err
		}
	}
	s, err := awaitStream(ctx, n.js, n.cfg.stream)
	if err != nil {
		return fmt.Errorf("catch up: %w", err)
	}
	// A follower silent for a stall period lost its consumer with a NATS
	// server: drop it, so that the next try follows anew.
	stall := time.NewTimer(streamread.StallPeriod)
	defer stall.Stop()
	for last := s.CachedInfo().State.LastSeq; n.state.LastSeq < last; {
		select {
		case m := <-n.lead.follow.msgs:
			if err := n.followed(m); err != nil {
				return fmt.Errorf("catch up: %w", err)
			}
			stall.Reset(streamread.StallPeriod)
		case <-stall.C:
			n.stopFollowing()
			return fmt.Errorf("catch up to seq %d (at %d): %w", last, n.state.LastSeq, streamread.ErrStalled)
		case <-ctx.Done():
			return fmt.Errorf("catch up to seq %d (at %d): %w", last, n.state.LastSeq, ctx.Err())
		}
	}
	return nil
}

// appendMarker appends the leader marker, proved as an event, expecting
// the state's last sequence.
func (n *Node) appendMarker(ctx context.Context) error {
	epoch, _ := n.lead.lease.state()
	body, _ := json.Marshal(events.LeaderMarker{Stream: n.cfg.stream, Node: n.lead.who.Node, Host: n.lead.who.Host, Epoch: epoch})
	msg := n.message(events.LeaderSubject, body, nuid.Next())
	seq, prev := n.state.LastSeq+1, n.prev
	if n.signer != nil {
		hdrs, leaf, err := n.signer.Sign([]proof.Message{{Seq: seq, Subject: msg.Subject, Body: body}}, n.prev)
		if err != nil {
			return err
		}
		msg.Header.Set(proof.Header, hdrs[0])
		prev = leaf
	}
	if _, err := n.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequence(n.state.LastSeq)); err != nil {
		return err
	}
	n.prev, n.state.LastSeq = prev, seq
	n.lastSeq.Store(seq)
	return nil
}

// startFollowing (re)starts the ordered consumer after the state's last
// sequence.
func (n *Node) startFollowing() error {
	n.stopFollowing()
	f := n.continueFolder()
	f.adm.refresh = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return n.refreshTrust(ctx)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := n.js.OrderedConsumer(ctx, n.cfg.stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: n.state.LastSeq + 1})
	if err != nil {
		return fmt.Errorf("storenode: follow stream %s: %w", n.cfg.stream, err)
	}
	fl := &follower{f: f, msgs: make(chan jetstream.Msg, 1024), done: make(chan struct{})}
	fl.cc, err = c.Consume(func(m jetstream.Msg) {
		select {
		case fl.msgs <- m:
		case <-fl.done:
		}
	})
	if err != nil {
		return fmt.Errorf("storenode: follow stream %s: %w", n.cfg.stream, err)
	}
	n.lead.follow = fl
	return nil
}

func (n *Node) stopFollowing() {
	if fl := n.lead.follow; fl != nil {
		close(fl.done)
		fl.cc.Stop()
		n.lead.follow = nil
	}
}

// followed folds a message the standby's consumer delivered. Runs on the
// loop. A message that does not fold makes it rebuild the state, and the
// error says the follower no longer follows that state: the caller
// decides what comes next (the loop reconciles; a promotion gives up),
// so that a promotion is never started inside another.
func (n *Node) followed(m jetstream.Msg) error {
	md, err := m.Metadata()
	if err != nil || md.Sequence.Stream <= n.state.LastSeq {
		return nil // folded already (the consumer was reset)
	}
	seq := md.Sequence.Stream
	if err := n.lead.follow.f.fold(seq, m); err != nil {
		// The state is no longer the stream's fold: rebuild it.
		n.log.Error("following the stream failed: rebuilding", "seq", seq, "err", err)
		err = fmt.Errorf("follow seq %d: %w", seq, err)
		n.setFailure(err)
		n.recover()
		return err
	}
	n.prev = n.lead.follow.f.adm.prev
	n.lastSeq.Store(seq)
	n.lead.lag.Store(md.NumPending)
	return nil
}

// followMsgs is the channel of the standby's consumer, nil while leading.
func (n *Node) followMsgs() <-chan jetstream.Msg {
	if n.lead.follow == nil {
		return nil
	}
	return n.lead.follow.msgs
}

// serving returns why the node must not answer commands now, "" if it may.
func (n *Node) serving(now time.Time) string {
	if l := n.lead.lease; l != nil && (!n.lead.leading.Load() || !l.held(now)) {
		return "this store node is not the leader of stream " + n.cfg.stream + " (a failover is under way): retry"
	}
	return ""
}

// stopService unsubscribes the command service.
func (n *Node) stopService() {
	n.stopMu.Lock()
	svc := n.svc
	n.svc = nil
	n.stopMu.Unlock()
	if svc != nil {
		if err := svc.Stop(); err != nil {
			n.log.Warn("stop command service", "err", err)
		}
	}
}

// setService records the running command service; a node stopping in
// the meantime stops it at once.
func (n *Node) setService(svc micro.Service) {
	n.stopMu.Lock()
	closed := n.closed
	if !closed {
		n.svc = svc
	}
	n.stopMu.Unlock()
	if closed {
		svc.Stop()
	}
}

// NodeStatus reports the node's role, progress and lease.
func (n *Node) NodeStatus() events.NodeStatus {
	st := n.Status()
	ns := events.NodeStatus{Node: n.lead.who.Node, Host: n.lead.who.Host, Role: events.RoleStandby,
		LastSeq: st.LastSeq, Lag: n.lead.lag.Load(), Failovers: n.lead.failovers.Load(), Healthy: st.Healthy, Reason: st.Reason}
	if n.lead.leading.Load() {
		ns.Role, ns.Lag = events.RoleLeader, 0
	}
	if l := n.lead.lease; l != nil {
		ns.Epoch, ns.LeaseExpiry = l.state()
	}
	return ns
}

// answerNodes answers <prefix>.nodes with the node's status.
func (n *Node) answerNodes(m *nats.Msg) {
	if err := m.Respond(marshalReply(n.NodeStatus(), nil)); err != nil {
		n.log.Warn("node status not sent", "err", err)
	}
}

func (n *Node) leadershipMetrics() tracing.Leadership {
	return tracing.Leadership{Leader: n.lead.leading.Load(), Lag: int64(n.lead.lag.Load()), Failovers: n.lead.failovers.Load(),
		LeaseMoves: n.lead.leaseMoves.Load()}
}
