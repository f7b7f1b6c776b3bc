package storenode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/storeloop/storeloop/events"
)

// The stream's configuration, and so its trusted keys, is written whole: a
// stream update has no compare-and-set, and two store nodes starting at
// once would each write the keys they read, losing the other's. Creating a
// durable consumer is the mutex: the server refuses to create one that
// exists with another configuration (here, another holder's nonce).
const (
	trustLockName = events.TrustLockConsumer
	// trustLockIdle frees the lock of a node that died holding it.
	trustLockIdle = 10 * time.Second
)

// withTrustLock runs fn while holding the stream's trust lock.
func (n *Node) withTrustLock(ctx context.Context, fn func() error) error {
	cfg := jetstream.ConsumerConfig{
		Durable:           trustLockName,
		Description:       "storeloop: a store node is updating the trusted keys " + nuid.Next(),
		DeliverPolicy:     jetstream.DeliverNewPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: trustLockIdle,
	}
	wait := 5 * time.Millisecond
	for {
		_, err := n.js.CreateConsumer(ctx, n.cfg.stream, cfg)
		if err == nil {
			break
		}
		if !lockBusy(err) {
			return fmt.Errorf("storenode: trust lock on stream %s: %w", n.cfg.stream, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("storenode: trust lock on stream %s held by another store node: %w", n.cfg.stream, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
	defer func() {
		// Not ctx: the lock is freed even when the caller gave up.
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.js.DeleteConsumer(rctx, n.cfg.stream, trustLockName); err != nil {
			n.log.Warn("trust lock not released; it expires when idle", "stream", n.cfg.stream, "after", trustLockIdle, "err", err)
		}
	}()
	return fn()
}

// lockBusy reports whether creating the lock failed because another node
// holds it, or is just releasing it: the server may then fail the create
// with an internal error (code 500, as the consumer's files go away
// under it) rather than create it.
func lockBusy(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrConsumerExists) || errors.As(err, &apiErr) && apiErr.Code == 500
}
