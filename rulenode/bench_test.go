package rulenode_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/storeloop/storeloop/internal/bench"
	"github.com/storeloop/storeloop/rulenode"
	"github.com/storeloop/storeloop/storenode"
)

// BenchmarkRules measures the rule node in one run on one embedded server
// (batch fsync, the daemon's default), each figure beside its raw
// NATS/JetStream baseline from the same run:
//
//   - throughput: events/s through one Runner whose rule is one upsert with
//     an increment, against a raw pull consumer reading and acking the same
//     number of messages (runner/raw is the ratio). The runner does a store
//     write per event; the raw loop does not, so store_writes/s (client
//     inserts, as many callers as the runner has workers) is reported
//     too: the runner's real ceiling.
//   - cycle: insert → rule → write-back event seen by a watcher, p50 and
//     p99, against the sum of the p50s of the raw hops (request/reply, a
//     publish ack, one consume). A cycle holds two of each (the insert and
//     the rule's write), so about twice raw_p50_ms is its floor.
//   - external-2ms: a Go rule that waits 2 ms (an external call) then
//     writes, with 1, 2 and 4 Runners of concurrency 1 sharing the
//     consumer. In-process Runners on their own connections stand in for
//     rulenode processes here: they share nothing but the consumer.
//
// Run it briefly, e.g. -bench Rules -benchtime 500x.
func BenchmarkRules(b *testing.B) {
	ctx := context.Background()
	env, err := bench.NewEnv(ctx, storenode.FsyncBatch)
	if err != nil {
		b.Fatal(err)
	}
	defer env.Close()

	b.Run("throughput", func(b *testing.B) {
		raw, err := env.RawConsume(ctx, b.N)
		if err != nil {
			b.Fatal(err)
		}
		run, err := env.RuleThroughput(ctx, b.N, 1, bench.UpsertRule)
		if err != nil {
			b.Fatal(err)
		}
		writes, err := bench.Run(ctx, env.StoreInsert(), b.N, rulenode.DefaultConcurrency)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(run.Elapsed.Nanoseconds())/float64(b.N), "ns/op")
		b.ReportMetric(run.PerSecond(), "events/s")
		b.ReportMetric(raw.PerSecond(), "raw_events/s")
		b.ReportMetric(run.PerSecond()/raw.PerSecond(), "runner/raw")
		b.ReportMetric(float64(b.N)/writes.Seconds(), "store_writes/s")
	})

	b.Run("cycle", func(b *testing.B) {
		lat, err := env.CycleLatency(ctx, b.N)
		if err != nil {
			b.Fatal(err)
		}
		hops, err := env.RawHops(ctx, b.N)
		if err != nil {
			b.Fatal(err)
		}
		var total time.Duration
		for _, d := range lat {
			total += d
		}
		raw := hops.Request.Quantile(0.5) + hops.PubAck.Quantile(0.5) + hops.Consume.Quantile(0.5)
		b.ReportMetric(float64(total.Nanoseconds())/float64(len(lat)), "ns/op")
		b.ReportMetric(ms(lat.Quantile(0.5)), "p50_ms")
		b.ReportMetric(ms(lat.Quantile(0.99)), "p99_ms")
		b.ReportMetric(ms(raw), "raw_p50_ms")
	})

	for _, runners := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("external-2ms/runners=%d", runners), func(b *testing.B) {
			run, err := env.RuleThroughput(ctx, b.N, runners, bench.WaitingRule(2*time.Millisecond), rulenode.WithConcurrency(1))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(run.Elapsed.Nanoseconds())/float64(b.N), "ns/op")
			b.ReportMetric(run.PerSecond(), "events/s")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkProofCheck measures what checking events' proofs costs a rule
// node: the throughput of one Runner (one upsert per event) with the check
// on and off, in the same run. The check is one SHA-256 of the body, a
// Merkle path and, once per group commit, one ed25519 verification.
func BenchmarkProofCheck(b *testing.B) {
	ctx := context.Background()
	env, err := bench.NewEnv(ctx, storenode.FsyncBatch)
	if err != nil {
		b.Fatal(err)
	}
	defer env.Close()
	for _, sc := range []struct {
		name string
		opts []rulenode.RunnerOption
	}{{"proof=off", []rulenode.RunnerOption{rulenode.WithoutProofCheck()}}, {"proof=on", nil}} {
		b.Run(sc.name, func(b *testing.B) {
			run, err := env.RuleThroughput(ctx, b.N, 1, bench.UpsertRule, sc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(run.Elapsed.Nanoseconds())/float64(b.N), "ns/op")
			b.ReportMetric(run.PerSecond(), "events/s")
		})
	}
}
