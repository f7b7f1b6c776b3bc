package rulenode_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
)

// TestDeadLetterStreamDown: while the dead-letter stream is gone, an
// event a rule rejects is not dropped nor acknowledged: each attempt to
// bury it fails once, the event stays un-acknowledged and comes back
// after the backoff. Once the stream is back, it is dead-lettered once
// and acknowledged.
func TestDeadLetterStreamDown(t *testing.T) {
	h := newHarness(t, ordersDef, loyaltyDef)
	var attempts atomic.Int32
	set, err := rulenode.NewRuleSet("shop", &rulenode.Rule{
		ID: "reject",
		On: []string{"bucket.orders.inserted"},
		Handler: func(ctx context.Context, ev *events.Event, env *rulenode.Env) error {
			attempts.Add(1)
			_, err := env.Store.Insert(ctx, "loyalty", events.Record{"points": 1}) // no userId: rejected
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.run(set, rulenode.WithConcurrency(1), rulenode.WithMaxDeliver(1000))
	h.settle("shop")
	ctx := h.ctx()
	dlq, err := h.js.Stream(ctx, rulenode.DefaultDeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := dlq.CachedInfo().Config
	if err := h.js.DeleteStream(ctx, rulenode.DefaultDeadLetterStream); err != nil {
		t.Fatal(err)
	}
	h.insert("orders", events.Record{"userId": "mallory", "total": 13})

	deadline := time.Now().Add(time.Minute)
	for attempts.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the rejected event ran %d times while the dead-letter stream was gone, want redeliveries", attempts.Load())
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}
	c, err := h.js.Consumer(ctx, events.DefaultStream, "shop")
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending+int(info.NumPending) != 1 || info.AckFloor.Stream >= lastStreamSeq(t, h) {
		t.Fatalf("consumer %+v, want the event un-acknowledged", info)
	}

	if _, err := h.js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	h.settle("shop")
	dls := h.deadLetters("shop")
	if len(dls) != 1 || dls[0].Reason != rulenode.ReasonRejected || dls[0].RuleID != "reject" {
		t.Fatalf("dead letters %+v, want one, rejected", dls)
	}
}

func lastStreamSeq(t *testing.T, h *harness) uint64 {
	t.Helper()
	s, err := h.js.Stream(h.ctx(), events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.LastSeq
}
