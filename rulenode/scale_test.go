package rulenode_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/storeloop/storeloop/internal/procs"
)

// TestScaleOut runs the chaos rule set on 2 and then 4 rulenode processes
// sharing its consumer. Each process's /metrics says how many rules it
// fired: every process took a share, together they fired each rule exactly
// once per event, and the totals are exact although every process
// increments the same records (one global counter, ten users) at once.
func TestScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("starts daemons")
	}
	const users, skus, nOrders = 10, 3, 60
	for _, n := range []int{2, 4} {
		t.Run(fmt.Sprintf("rulenodes=%d", n), func(t *testing.T) {
			c := startChaosCluster(t, n, skus)
			orders := chaosOrders(nOrders, users, skus)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			start := time.Now()
			if err := c.drive(ctx, orders, 0, 8); err != nil {
				t.Fatal(err)
			}
			c.settle(30 * time.Second)
			elapsed := time.Since(start)
			c.check(orders)

			// One rule fires per matched event in this set.
			want := float64(nOrders * chaosEventsPerOrder)
			var fired float64
			for i, node := range c.nodes {
				body, err := node.Metrics(ctx)
				if err != nil {
					t.Fatal(err)
				}
				f, failed := procs.Sum(body, "storeloop_rule_firings_total"), procs.Sum(body, "storeloop_rule_failures_total")
				t.Logf("rulenode-%d fired %v rules (%v failed)", i, f, failed)
				if f == 0 {
					t.Errorf("rulenode-%d fired no rule: the work was not shared", i)
				}
				if failed != 0 {
					t.Errorf("rulenode-%d: %v rule failures, want none", i, failed)
				}
				fired += f
			}
			if fired != want {
				t.Errorf("%v rule firings over %d processes, want %v (one per event)", fired, n, want)
			}
			if re := c.redeliveries(nOrders * chaosEventsPerOrder); re != 0 {
				t.Errorf("%d redeliveries without a crash, want none", re)
			}
			t.Logf("%d orders, %v events through %d rulenodes in %s (noisy shared machine)", nOrders, want, n, elapsed.Round(time.Millisecond))
		})
	}
}
