package rulenode_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/rulenode"
)

// BenchmarkDeployedRunner measures what running a deployed rule set costs
// beside the same rules from a file: one Runner drains a backlog of b.N
// order events (one insert per event), either loaded from the file or as
// version 1 of the deployed set, which reads the registry once per batch
// of deliveries before choosing the version. Run it briefly, e.g.
// -bench DeployedRunner -benchtime 2000x.
func BenchmarkDeployedRunner(b *testing.B) {
	for _, deployed := range []bool{false, true} {
		name := "file"
		if deployed {
			name = "deployed"
		}
		b.Run(name, func(b *testing.B) {
			st := storetest.StartStore(b)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cl, err := client.Connect(st.URL)
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			for _, def := range versionedBuckets {
				if err := cl.Define(ctx, def); err != nil {
					b.Fatal(err)
				}
			}
			js, err := jetstream.New(st.Conn)
			if err != nil {
				b.Fatal(err)
			}
			var r *rulenode.Runner
			if deployed {
				reg, err := rulenode.OpenRegistry(ctx, js, events.DefaultStream)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := reg.Deploy(ctx, []byte(versionedRules(1)), "bench"); err != nil {
					b.Fatal(err)
				}
				r, err = rulenode.NewDeployedRunner(ctx, js, cl, "versioned")
				if err != nil {
					b.Fatal(err)
				}
			} else {
				set, err := rulenode.Load(strings.NewReader(versionedRules(1)), "")
				if err != nil {
					b.Fatal(err)
				}
				// The consumer starts at the stream's first event.
				r = rulenode.NewRunner(js, cl, set)
			}
			for range b.N {
				if _, err := cl.Bucket("orders").Insert(ctx, events.Record{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- r.Run(runCtx) }()
			if err := cl.Settle(ctx, client.SettleRuleSets("versioned")); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			stop()
			<-done
			if n, err := cl.Bucket("handled").Count(ctx, nil); err != nil || n != b.N {
				b.Fatalf("handled %d of %d: %v", n, b.N, err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
