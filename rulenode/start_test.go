package rulenode_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
)

// pointsRules awards a point per order inserted.
const pointsRules = `
name: points
rules:
  - id: point-per-order
    on: [bucket.orders.inserted]
    then:
      - upsert:
          bucket: loyalty
          key: ${event.record.userId}
          record: { userId: "${event.record.userId}" }
          increment: { points: 1 }
`

// startRunner runs a runner until the returned stop is called (or the
// test ends), and returns once it fetches events: its consumer exists.
func (h *harness) startRunner(set *rulenode.RuleSet, opts ...rulenode.RunnerOption) (stop func()) {
	h.t.Helper()
	r := rulenode.NewRunner(h.js, h.cl, set, append(cloneOpts(fastRetries), opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("runner %s: Run returned %v", set.Name, err)
			}
		case <-time.After(10 * time.Second):
			h.t.Errorf("runner %s did not stop", set.Name)
		}
	}
	h.t.Cleanup(stop)
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for r.Ready() != nil {
		if time.Now().After(deadline) {
			h.t.Fatalf("runner %s not ready after 10s", set.Name)
		}
		select {
		case err := <-done:
			h.t.Fatalf("runner %s: Run returned %v before it was ready", set.Name, err)
		case <-tick.C:
		}
	}
	return stop
}

// Two orders are stored before the rule set's consumer exists, one after.
// A new consumer starting at new events acts only on the later one; one
// starting at all acts on the three. An existing consumer keeps its
// position whatever the policy of the runner that binds it, with a log
// line saying so.
func TestStartPolicy(t *testing.T) {
	cases := []struct {
		name string
		// existing: a runner starting at all created the consumer before
		// the history was written.
		existing   bool
		start      rulenode.StartPolicy
		wantPoints float64
		wantLog    bool
	}{
		{name: "all", start: rulenode.StartAll, wantPoints: 3},
		{name: "new", start: rulenode.StartNew, wantPoints: 1},
		{name: "new binds an existing consumer at its position", existing: true, start: rulenode.StartNew, wantPoints: 3, wantLog: true},
		{name: "all binds an existing consumer", existing: true, start: rulenode.StartAll, wantPoints: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, ordersDef, loyaltyDef)
			set := load(t, pointsRules)
			if tc.existing {
				h.startRunner(set, rulenode.WithStartFrom(rulenode.StartAll))()
			}
			h.insert("orders", events.Record{"userId": "ann", "total": 1})
			h.insert("orders", events.Record{"userId": "ann", "total": 2})

			var logs syncBuffer
			h.startRunner(set, rulenode.WithStartFrom(tc.start),
				rulenode.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
			h.insert("orders", events.Record{"userId": "ann", "total": 3})
			h.settle("points")

			wantNumber(t, h.get("loyalty", "ann"), "points", tc.wantPoints)
			if got := len(logsWith(&logs, "keeping its position")); got != map[bool]int{false: 0, true: 1}[tc.wantLog] {
				t.Errorf("%d log lines about keeping the position, want log: %v; logs: %v", got, tc.wantLog, logs.lines())
			}
		})
	}
}

func TestParseStartPolicy(t *testing.T) {
	for _, p := range []rulenode.StartPolicy{rulenode.StartAll, rulenode.StartNew} {
		got, err := rulenode.ParseStartPolicy(p.String())
		if err != nil || got != p {
			t.Errorf("ParseStartPolicy(%q) = %v, %v; want %v", p.String(), got, err, p)
		}
	}
	if _, err := rulenode.ParseStartPolicy("last"); err == nil {
		t.Error(`ParseStartPolicy("last") succeeded`)
	}
}
