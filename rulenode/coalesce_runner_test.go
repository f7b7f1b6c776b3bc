package rulenode_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
)

// A runner with coalesced writes works through a backlog of shipments
// with every write in a store.batch, each applied once with its own
// command id and causal chain: the points add up exactly.
func TestRunnerCoalescedWrites(t *testing.T) {
	h := newHarness(t, ordersDef, loyaltyDef)
	const users, orders = 10, 120
	var shipped []any
	for i := range orders {
		o := h.insert("orders", events.Record{"userId": fmt.Sprint("u", i%users), "total": float64(10 * (i + 1))})
		h.update("orders", o["id"], events.Record{"status": "shipped"})
		shipped = append(shipped, o["id"])
	}

	var mu sync.Mutex
	subjects := map[string]int{}
	commands := 0
	sub, err := h.cl.Conn().Subscribe(events.DefaultCommandPrefix+".>", func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		subjects[m.Subject]++
		var req events.BatchRequest
		if m.Subject == events.CommandSubject(events.DefaultCommandPrefix, events.CmdBatch) && json.Unmarshal(m.Data, &req) == nil {
			commands += len(req.Commands)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := h.cl.Conn().Flush(); err != nil {
		t.Fatal(err)
	}

	h.run(loadExample(t, "loyalty"), rulenode.WithConcurrency(16), rulenode.WithBatching(8))
	h.settle("loyalty")

	want := map[string]float64{}
	for i := range orders {
		want[fmt.Sprint("u", i%users)] += float64(i + 1)
	}
	for user, points := range want {
		wantNumber(t, h.get("loyalty", user), "points", points)
	}
	writes := h.events("bucket.loyalty.")
	if len(writes) != orders {
		t.Fatalf("%d loyalty events, want %d", len(writes), orders)
	}
	updates := h.events("bucket.orders.updated")
	ids := map[string]bool{}
	for _, u := range updates {
		ids[rulenode.CommandID("loyalty", "loyalty-on-ship", u.Meta.Seq, "0")] = true
	}
	for _, w := range writes {
		if !ids[w.Meta.CommandID] || w.Meta.Hop != 1 || w.Meta.RuleID != "loyalty-on-ship" {
			t.Fatalf("loyalty event meta %+v: not one shipment's write", w.Meta)
		}
		delete(ids, w.Meta.CommandID)
	}
	if err := h.cl.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	batch := events.CommandSubject(events.DefaultCommandPrefix, events.CmdBatch)
	for s, n := range subjects {
		if s != batch && s != events.CommandSubject(events.DefaultCommandPrefix, events.CmdGet) && s != events.CommandSubject(events.DefaultCommandPrefix, events.CmdStatus) {
			t.Errorf("%d requests on %s, want the rule's writes on %s only", n, s, batch)
		}
	}
	if commands != orders {
		t.Errorf("%d commands in %d batches, want %d", commands, subjects[batch], orders)
	}
	if dl := h.deadLetters("loyalty"); len(dl) != 0 {
		t.Errorf("dead letters: %+v", dl)
	}
}

// Run refuses a batching past 0 to events.MaxBatchCommands before it binds
// anything.
func TestRunnerBatchingRange(t *testing.T) {
	h := newHarness(t, ordersDef, loyaltyDef)
	for _, n := range []int{-1, events.MaxBatchCommands + 1} {
		r := rulenode.NewRunner(h.js, h.cl, loadExample(t, "loyalty"), rulenode.WithBatching(n))
		err := r.Run(h.ctx())
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("batching must be 0 to %d commands, not %d", events.MaxBatchCommands, n)) {
			t.Errorf("WithBatching(%d): Run = %v, want the range refused", n, err)
		}
	}
}
