package rulenode_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
)

func firingPending(st map[string]any) bool { return st != nil && st["pending"] != nil }

// A runner that wrote a firing pending (a deadline passed: the state's
// match moved into its pending firing) and died before it fired leaves it
// in the bucket. With no event of the key to come, the deadline watcher
// of a runner started after fires it once the grace its writer had is
// over, with the after event's command ids, and clears it: one flag.
func TestTemporalPendingFiringLeftBehind(t *testing.T) {
	clock := newManualClock()
	h := newClockedHarness(t, clock, ordersDef, flagsDef)
	set := func() *rulenode.RuleSet { return loadYAML(t, strings.Replace(notShippedRules, "WITHIN", "1h", 1)) }
	stop := h.startStop(set(), rulenode.WithClock(clock))
	id := h.insert("orders", events.Record{"userId": "u", "total": 1.0})["id"]
	h.update("orders", id, events.Record{"status": "confirmed"})
	st := h.waitState("late", "not-shipped", "1", "pending", pending)
	stop()

	// What the runner that died wrote before firing.
	match := st["match"].([]any)
	st["pending"] = map[string]any{"seq": match[0].(map[string]any)["meta"].(map[string]any)["seq"], "match": match}
	delete(st, "match")
	delete(st, "deadline")
	kv, err := h.js.KeyValue(h.ctx(), events.TemporalBucket)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(h.ctx(), rulenode.TemporalKey("late", "not-shipped", "1"), b); err != nil {
		t.Fatal(err)
	}

	h.run(set(), rulenode.WithClock(clock))
	h.run(set(), rulenode.WithClock(clock))
	// The watcher counts the grace from when it sees the firing pending,
	// which the test cannot observe: the clock moves by a grace until the
	// flag is in.
	deadline := time.Now().Add(20 * time.Second)
	for len(h.flags()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the pending firing never fired; state %v", h.temporalState("late", "not-shipped", "1"))
		}
		clock.Advance(rulenode.PendingGrace)
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
	h.waitState("late", "not-shipped", "1", "cleared after firing", func(st map[string]any) bool { return cleared(st) && !firingPending(st) })
	h.settle("late")
	h.waitFlags("late 1")
	if got := h.get("flags", 1.0)["n"]; got != 1.0 {
		t.Errorf("size(match) = %v, want 1 (the after event)", got)
	}
}
