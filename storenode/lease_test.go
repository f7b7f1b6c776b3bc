package storenode

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/natstest"
)

// TestLeaseRenewalErrors: a renewal the server fails for a reason other
// than the revision (here a real JetStream API error: the lease bucket's
// stream refuses the message's size, as a 503 during an election would
// refuse it) keeps the lease while it lasts by this node's clock and
// renews once the server accepts again; past the lease by this node's
// clock it drops; a renewal refused because another node moved the
// revision drops it at once.
func TestLeaseRenewalErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nc := natstest.Connect(t, natstest.Server(t))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig()
	cfg.lease = 30 * time.Second // long: a busy machine must not run it out between steps
	l, err := openLease(ctx, js, cfg, events.Lease{Node: "a"}, slog.New(slog.DiscardHandler), func() {})
	if err != nil {
		t.Fatal(err)
	}
	l.acquire(ctx)
	if !l.held(l.now()) {
		t.Fatal("lease not acquired")
	}
	kvStream, err := js.Stream(ctx, "KV_"+events.LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	setMaxMsgSize := func(n int32) {
		t.Helper()
		c := kvStream.CachedInfo().Config
		c.MaxMsgSize = n
		if _, err := js.UpdateStream(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	rev := func() uint64 { l.mu.Lock(); defer l.mu.Unlock(); return l.rev }

	setMaxMsgSize(8)
	held := rev()
	_, err = l.kv.Update(ctx, l.key, l.value, held)
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || errors.Is(err, jetstream.ErrKeyExists) {
		t.Fatalf("update of an oversize value: %v, want an API error other than a revision refusal", err)
	}
	l.renew(ctx)
	if rev() != held || !l.held(l.now()) {
		t.Fatalf("lease at rev %d, held %v after a failed renewal; want kept at %d", rev(), l.held(l.now()), held)
	}

	setMaxMsgSize(-1)
	l.renew(ctx)
	if rev() <= held || !l.held(l.now()) {
		t.Fatalf("lease at rev %d after the server accepts again, want renewed past %d", rev(), held)
	}

	setMaxMsgSize(8)
	real := l.now
	l.now = func() time.Time { return real().Add(cfg.lease) } // the lease ran out by this node's clock
	l.renew(ctx)
	if l.holding() {
		t.Fatal("lease kept past its end by this node's clock")
	}
	l.now = real

	setMaxMsgSize(-1)
	l.acquire(ctx) // its own key: taken back
	if !l.held(l.now()) {
		t.Fatal("own lease not taken back")
	}
	if _, err := l.kv.Put(ctx, l.key, []byte(`{"node":"b"}`)); err != nil {
		t.Fatal(err)
	}
	l.renew(ctx)
	if l.holding() {
		t.Fatal("lease kept after another node moved its revision")
	}
}
