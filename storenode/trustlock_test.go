package storenode_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/events/proof"
	"github.com/storeloop/storeloop/internal/natstest"
	"github.com/storeloop/storeloop/storenode"
)

// Store nodes starting at once on one stream, fresh or not, each add their
// key to the trusted keys and none is lost: the read-modify-write of the
// stream's metadata runs under the trust lock, which none holds after.
func TestConcurrentStartsKeepEveryKey(t *testing.T) {
	const nodes = 6
	for _, fresh := range []bool{true, false} {
		t.Run(fmt.Sprintf("fresh=%v", fresh), func(t *testing.T) {
			srv := natstest.Server(t)
			admin := natstest.Connect(t, srv)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var want []string
			start := func(kp nkeys.KeyPair, prefix string) (*storenode.Node, error) {
				return storenode.Start(ctx, natstest.Connect(t, srv), storenode.WithProofKey(kp), storenode.WithCommandPrefix(prefix),
					storenode.WithLogger(slog.New(slog.DiscardHandler)))
			}
			key := func() nkeys.KeyPair {
				kp, err := nkeys.CreateServer()
				if err != nil {
					t.Fatal(err)
				}
				pub, _ := kp.PublicKey()
				want = append(want, pub)
				return kp
			}
			if !fresh {
				n, err := start(key(), "first")
				if err != nil {
					t.Fatal(err)
				}
				stop(t, n)
			}
			kps := make([]nkeys.KeyPair, nodes)
			for i := range kps {
				kps[i] = key()
			}
			var wg sync.WaitGroup
			errs := make([]error, nodes)
			started := make([]*storenode.Node, nodes)
			for i, kp := range kps {
				wg.Go(func() { started[i], errs[i] = start(kp, fmt.Sprintf("n%d", i)) })
			}
			wg.Wait()
			for i, n := range started {
				if errs[i] != nil {
					t.Fatalf("node %d: %v", i, errs[i])
				}
				stop(t, n)
			}
			js, err := jetstream.New(admin)
			if err != nil {
				t.Fatal(err)
			}
			s, err := js.Stream(ctx, events.DefaultStream)
			if err != nil {
				t.Fatal(err)
			}
			got := proof.ParseKeys(s.CachedInfo().Config.Metadata[proof.MetadataKeys])
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("trusted keys:\n got %v\nwant %v", got, want)
			}
			for name := range s.ConsumerNames(ctx).Name() {
				t.Errorf("consumer %s left on the stream", name)
			}
		})
	}
}

func stop(t *testing.T, n *storenode.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// A trust lock left by a node that died holding it expires when idle: the
// next start waits for it, then adds its key.
func TestTrustLockOfADeadNodeExpires(t *testing.T) {
	srv := natstest.Server(t)
	nc := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	first, err := storenode.Start(ctx, natstest.Connect(t, srv), storenode.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	stop(t, first)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// As a node that died between taking the lock and releasing it.
	if _, err := js.CreateConsumer(ctx, events.DefaultStream, jetstream.ConsumerConfig{Durable: events.TrustLockConsumer,
		Description: "a dead node's", DeliverPolicy: jetstream.DeliverNewPolicy, AckPolicy: jetstream.AckNonePolicy,
		InactiveThreshold: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.CreateServer()
	if err != nil {
		t.Fatal(err)
	}
	second, err := storenode.Start(ctx, natstest.Connect(t, srv), storenode.WithProofKey(kp), storenode.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("start after a dead node's lock: %v", err)
	}
	stop(t, second)
	s, err := js.Stream(ctx, events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	if keys := proof.ParseKeys(s.CachedInfo().Config.Metadata[proof.MetadataKeys]); len(keys) != 2 || !slices.Contains(keys, pub) {
		t.Fatalf("trusted keys %v, want the first node's and %s", keys, pub)
	}
}
