package storenode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
)

// DefaultLease is the default lease of a stream's leadership.
const DefaultLease = 1500 * time.Millisecond

// The leader renews every lease/leaseRenewDiv and serves until the send
// time of its last successful renewal + lease - lease/leaseMarginDiv by
// its own clock: it stops serving a quarter of a lease before the server
// can expire the key, however late the renewal's reply was. A standby
// tries to acquire every lease/leasePollDiv. A failover after a leader's
// death therefore takes between lease - lease/leaseRenewDiv and lease,
// plus a poll, plus the catch-up: 1.1 s to 1.6 s with the default lease.
const (
	leaseRenewDiv  = 4
	leaseMarginDiv = 4
	leasePollDiv   = 15
)

// lease is a store node's claim on its stream's leadership: a key (the
// stream's name) in the KV bucket events.LeaseBucket, whose TTL (the
// bucket's MaxAge) expires it unless renewed. It is acquired by Create
// (the key absent or deleted), renewed by Update at the revision held, and
// a renewal at a revision someone else moved loses it at once.
type lease struct {
	kv    jetstream.KeyValue
	key   string
	value []byte // the JSON events.Lease naming this node
	ttl   time.Duration
	now   func() time.Time
	log   *slog.Logger
	wake  func() // tells the node to reconcile its role with the lease

	mu    sync.Mutex
	rev   uint64    // the revision held; 0 when not held
	until time.Time // held until then by this node's clock
	epoch uint64    // the revision it was acquired at
}

// openLease binds (or creates) the lease bucket. The lease lasts the
// bucket's TTL: the first node to create the bucket sets it, and a node
// configured otherwise follows the bucket (its clock must not outlast the
// server's expiry).
func openLease(ctx context.Context, js jetstream.JetStream, cfg config, who events.Lease, log *slog.Logger, wake func()) (*lease, error) {
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      events.LeaseBucket,
		Description: "storeloop: which store node leads each stream",
		TTL:         cfg.lease,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.replicas,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.KeyValue(ctx, events.LeaseBucket)
	}
	if err != nil {
		return nil, fmt.Errorf("storenode: lease bucket %s: %w", events.LeaseBucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("storenode: lease bucket %s: %w", events.LeaseBucket, err)
	}
	ttl := st.TTL()
	if ttl <= 0 {
		return nil, fmt.Errorf("storenode: lease bucket %s has no TTL: a lease would never expire", events.LeaseBucket)
	}
	if ttl != cfg.lease {
		log.Warn("the lease bucket's TTL is the lease", "bucket", events.LeaseBucket, "ttl", ttl, "configured", cfg.lease)
	}
	value, _ := json.Marshal(who)
	return &lease{kv: kv, key: cfg.stream, value: value, ttl: ttl, now: time.Now, log: log, wake: wake}, nil
}

// held reports whether the node may serve at now.
func (l *lease) held(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rev != 0 && now.Before(l.until)
}

// state returns the epoch and the expiry by this node's clock; zero when
// not held.
func (l *lease) state() (epoch uint64, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev == 0 {
		return 0, time.Time{}
	}
	return l.epoch, l.until
}

func (l *lease) set(rev uint64, sent time.Time, acquired bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rev, l.until = rev, sent.Add(l.ttl-l.ttl/leaseMarginDiv)
	if acquired {
		l.epoch = rev
	}
}

// drop forgets the lease: it expired by this node's clock, someone else
// holds it, or the node was fenced.
func (l *lease) drop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rev = 0
}

// run acquires and renews the lease until ctx ends, waking the node
// after every attempt: it reconciles its role with the lease (and a
// standby whose following broke starts again).
func (l *lease) run(ctx context.Context) {
	for {
		wait := l.ttl / leasePollDiv
		if l.holding() {
			if l.renew(ctx) {
				wait = l.ttl / leaseRenewDiv
			}
		} else {
			l.acquire(ctx)
		}
		l.wake()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (l *lease) holding() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rev != 0
}

// acquire takes the lease if no one holds it, or takes back this node's
// own (a renewal that came too late).
func (l *lease) acquire(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, l.ttl/2)
	defer cancel()
	sent := l.now()
	rev, err := l.kv.Create(ctx, l.key, l.value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		e, gerr := l.kv.Get(ctx, l.key)
		if gerr != nil || !bytes.Equal(e.Value(), l.value) {
			return // someone else's, or gone just now: next time
		}
		rev, err = l.kv.Update(ctx, l.key, l.value, e.Revision())
	}
	if err != nil {
		return
	}
	l.set(rev, sent, true)
	l.log.Info("lease acquired", "stream", l.key, "epoch", rev, "ttl", l.ttl)
}

// renew extends the lease and reports whether it did. A refusal by the
// server (the revision moved: someone else holds it) loses it at once;
// any other failure (a timeout, a JetStream API error such as a 503 while
// the cluster elects a stream leader) is retried at the poll interval
// while the lease lasts by this node's clock. A renewal waits at most a
// renewal interval: a request lost while the bucket's stream changes
// leader (a stepdown, lease_placement.go) must leave time for a retry
// before the lease runs out, which a wait of half the lease did not.
func (l *lease) renew(ctx context.Context) bool {
	l.mu.Lock()
	held := l.rev
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, l.ttl/leaseRenewDiv)
	defer cancel()
	sent := l.now()
	rev, err := l.kv.Update(ctx, l.key, l.value, held)
	switch {
	case err == nil:
		l.set(rev, sent, false)
		return true
	case errors.Is(err, jetstream.ErrKeyExists):
		// Update maps the wrong-last-sequence refusals (10071, and 10164
		// of replicated streams) to it.
		l.drop()
		l.log.Warn("lease lost: another store node holds it", "stream", l.key, "err", err)
	case !l.held(l.now()):
		l.drop()
		l.log.Warn("lease expired: renewals failed", "stream", l.key, "err", err)
	}
	return false
}

// release deletes the key at the revision held, so that a standby takes
// over without waiting for the TTL; the node stops serving first.
func (l *lease) release(ctx context.Context) {
	l.mu.Lock()
	rev := l.rev
	l.rev = 0
	l.mu.Unlock()
	if rev == 0 {
		return
	}
	if err := l.kv.Delete(ctx, l.key, jetstream.LastRevision(rev)); err != nil {
		l.log.Warn("lease not released: it expires by itself", "stream", l.key, "err", err)
	}
}

// WithLease makes the node one of several on its stream: it serves only
// while it holds the stream's lease, of duration d (DefaultLease is a
// good start; the lease bucket's TTL wins once the bucket exists), and
// follows the stream as a standby otherwise. Without it the node is the
// stream's only writer and serves from the start.
func WithLease(d time.Duration) Option {
	return func(c *config) error {
		if d < 300*time.Millisecond || d > time.Minute {
			return fmt.Errorf("storenode: lease %s out of range 300ms..1m", d)
		}
		c.lease = d
		return nil
	}
}
