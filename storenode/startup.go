package storenode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/internal/streamread"
)

// Starting during an election. On a NATS cluster the streams and
// key-value buckets a store node binds at start (the events, the rule
// buckets, the dead letters, the lease) may have no leader for a few
// seconds (after a server's loss their peers elect one after
// nats-server's 4 to 9 s raft election timeout), or the cluster no
// quorum until its servers come back. A request then times out, finds no
// responders or is answered 503. Start waits for them: a step that fails
// so is tried again, with backoff, until the start deadline
// (WithStartTimeout). Any other failure (a permission the node lacks, a
// stream configured otherwise, data loss) is final and fails the start at
// once.

// DefaultStartTimeout is how long Start waits for the cluster to answer:
// a few elections.
const DefaultStartTimeout = time.Minute

// WithStartTimeout sets how long Start waits for a NATS cluster in an
// election or without quorum (default DefaultStartTimeout, 1s..1h): past
// it, Start fails with the last error.
func WithStartTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < time.Second || d > time.Hour {
			return fmt.Errorf("storenode: start timeout %s out of range 1s..1h", d)
		}
		c.startTimeout = d
		return nil
	}
}

// startTry bounds one try of a start step: a request sent into a
// leaderless stream is never answered, and the step is tried again.
const startTry = 5 * time.Second

// Backoff between the tries of a start step.
const (
	startBackoffMin = 100 * time.Millisecond
	startBackoffMax = 2 * time.Second
)

// errStartTimeout ends the start context.
var errStartTimeout = errors.New("storenode: start timeout passed while the NATS cluster was unavailable (see --start-timeout)")

// startStep runs step in tries of startTry (its whole time if whole) until
// it succeeds, fails for good, or ctx (the start deadline) ends. The first
// transient failure is logged, once per step, with its reason.
func (n *Node) startStep(ctx context.Context, what string, whole bool, step func(context.Context) error) error {
	began := time.Now()
	wait, waited := startBackoffMin, false
	for {
		try, cancel := ctx, context.CancelFunc(func() {})
		if !whole {
			try, cancel = context.WithTimeout(ctx, startTry)
		}
		err := step(try)
		cancel()
		switch {
		case err == nil:
			if waited {
				n.log.Info("start: the cluster answered", "step", what, "after", time.Since(began).Round(time.Millisecond))
			}
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("%s: %w (last error: %w)", what, context.Cause(ctx), err)
		case !n.transient(err):
			return err
		case !waited:
			waited = true
			deadline, _ := ctx.Deadline()
			n.log.Warn("start: waiting for the NATS cluster (no leader or no quorum yet)", "step", what, "reason", err,
				"until", deadline.Format(time.RFC3339))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		wait = min(2*wait, startBackoffMax)
	}
}

// transient reports whether err is the cluster's passing state (no
// leader, no quorum, a server lost) rather than an answer that will stay.
func (n *Node) transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeJetStreamNotEnabled, jetstream.JSErrCodeJetStreamNotEnabledForAccount:
			return false // a server or account without JetStream: configuration
		case jsClusterNoPeers, jsClusterNotLeader, jsStreamOffline:
			return true
		}
		return apiErr.Code == 503 // JetStream system temporarily unavailable, insufficient resources
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		// A request the server refused to carry (a permission the
		// node lacks) times out too: the connection's last error says.
		return !errors.Is(n.nc.LastError(), nats.ErrPermissionViolation)
	}
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, streamread.ErrStalled) || errors.Is(err, errLeaderless)
}

// JetStream error codes (nats-server's errors.json) of a cluster in
// passing trouble that nats.go has no names for.
const (
	jsClusterNoPeers   jetstream.ErrorCode = 10005 // no suitable peers for placement: servers down
	jsClusterNotAvail  jetstream.ErrorCode = 10008 // JetStream system temporarily unavailable: no meta leader
	jsClusterNotLeader jetstream.ErrorCode = 10009 // JetStream cluster can not handle request
	jsStreamOffline    jetstream.ErrorCode = 10118 // stream is offline
)
