package storenode_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/internal/natstest"
	"github.com/storeloop/storeloop/storenode"
)

// BenchmarkFailover kills the leader (-9) of two storenode daemons with
// the default lease 20 times under a load of 4 writers and reports the
// time from each kill to the first write acknowledged after it (p50, p90,
// max), beside the raw baseline of the same run: a JetStream KV update
// round trip (the lease renewal) on the same server. Run it once:
//
//	go test ./storenode -run '^$' -bench Failover -benchtime 1x
func BenchmarkFailover(b *testing.B) {
	const rounds = 20
	srv := natstest.Server(b)
	url := srv.ClientURL()
	lease := storenode.DefaultLease.String()
	nodes := []*haNode{startHAWith(b, url, b.TempDir(), lease)}
	nodes[0].waitReady(b, "ready: leader")
	nodes = append(nodes, startHAWith(b, url, b.TempDir(), lease))
	nodes[1].waitReady(b, "standby")
	c := haClient(b, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := c.Define(ctx, ordersDef()); err != nil {
		b.Fatal(err)
	}
	kvRTT := kvRoundTrips(b, ctx, natstest.Connect(b, srv))

	load := startLoad(b, url, 4, 5*time.Millisecond, failoverClient...)
	var took []time.Duration
	for b.Loop() {
		for range rounds {
			load.waitAcks(b, 100)
			waitCaughtUp(b, c, 100)
			leader, standby := nodes[0], nodes[1]
			leader.Kill(b)
			took = append(took, load.firstAckAfter(b, time.Now()))
			standby.waitReady(b, "ready: leader")
			nodes = []*haNode{standby, startHAWith(b, url, leader.data, lease)}
			nodes[1].waitReady(b, "standby")
		}
	}
	load.finish()
	load.check(b, c)
	slices.Sort(took)
	b.ReportMetric(ms(took[len(took)/2]), "failover-p50-ms")
	b.ReportMetric(ms(took[len(took)*9/10]), "failover-p90-ms")
	b.ReportMetric(ms(took[len(took)-1]), "failover-max-ms")
	b.ReportMetric(ms(kvRTT), "kv-update-p50-ms")
	b.Logf("lease %s, %d failovers, kill → first acknowledged write: %v", lease, len(took), took)
}

// kvRoundTrips measures the median of 200 revision-checked KV updates,
// what a lease renewal costs.
func kvRoundTrips(b *testing.B, ctx context.Context, nc *nats.Conn) time.Duration {
	b.Helper()
	js, _ := jetstream.New(nc)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "bench_lease", TTL: storenode.DefaultLease})
	if err != nil {
		b.Fatal(err)
	}
	rev, err := kv.Create(ctx, "k", []byte("v"))
	if err != nil {
		b.Fatal(err)
	}
	rtts := make([]time.Duration, 200)
	for i := range rtts {
		start := time.Now()
		if rev, err = kv.Update(ctx, "k", []byte("v"), rev); err != nil {
			b.Fatal(err)
		}
		rtts[i] = time.Since(start)
	}
	slices.Sort(rtts)
	return rtts[len(rtts)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
