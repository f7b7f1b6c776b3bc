package rulenode_test

import (
	"context"
	"testing"
	"time"

	"github.com/storeloop/storeloop/internal/bench"
	"github.com/storeloop/storeloop/storenode"
)

// warmupTurns are run before measuring, so that the first mode does not
// pay for connections, the consumer's first fetch and cold caches.
const warmupTurns = 50

// BenchmarkCycleTracing measures the latency of one turn of the cycle
// (store mutation → event → rule → write-back → its event seen) on one
// embedded server, turn after turn, with tracing off, sampling every trace,
// and sampling 1% of them (parent-based), spans going through a batch
// processor and the OTLP/HTTP exporter to a sink that discards them. It
// reports p50 and p99 in µs, the OTLP bytes sent per cycle, and for the
// traced modes the p50 overhead over tracing=off of the same run.
func BenchmarkCycleTracing(b *testing.B) {
	// Bounded, so that a lost write-back fails the run instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	env, err := bench.NewEnv(ctx, storenode.FsyncBatch)
	if err != nil {
		b.Fatal(err)
	}
	defer env.Close()
	sink, err := bench.StartSpanSink()
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	cycle, err := env.StartCycle(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := cycle.Close(); err != nil {
			b.Error(err)
		}
	}()
	// Leave tracing off for whatever runs next in this binary.
	defer func() {
		if shutdown, err := bench.SetupTracing(ctx, bench.TracingModes[0], nil); err == nil {
			_ = shutdown(ctx)
		}
	}()
	for range warmupTurns {
		if _, err := cycle.Turn(ctx); err != nil {
			b.Fatal(err)
		}
	}

	var offP50 time.Duration
	for _, mode := range bench.TracingModes {
		b.Run("tracing="+mode.Name, func(b *testing.B) {
			shutdown, err := bench.SetupTracing(ctx, mode, sink)
			if err != nil {
				b.Fatal(err)
			}
			sent := sink.Bytes.Load()
			lat := make(bench.Latencies, 0, b.N)
			b.ResetTimer()
			for range b.N {
				d, err := cycle.Turn(ctx)
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, d)
			}
			b.StopTimer()
			if err := shutdown(ctx); err != nil { // flushes the last batch to the sink
				b.Fatal(err)
			}
			p50, p99 := lat.Quantile(0.50), lat.Quantile(0.99)
			b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
			b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
			b.ReportMetric(float64(sink.Bytes.Load()-sent)/float64(b.N), "otlp-B/cycle")
			switch {
			case mode.Sampler == nil:
				offP50 = p50
			case offP50 > 0:
				b.ReportMetric(100*(float64(p50)/float64(offP50)-1), "p50-overhead-%")
			}
		})
	}
}
