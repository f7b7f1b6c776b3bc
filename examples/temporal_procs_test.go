package examples_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
)

// The shipping example on real daemons: the rule node that saw an order
// confirmed is killed with SIGKILL while the order's deadline is pending;
// two other rule nodes start, and the order is flagged exactly once. An
// order shipped in time is never flagged: its state is cancelled.
func TestTemporalAbsenceKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemons")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// The example's 2 s window, widened so that a busy machine cannot let
	// the deadline pass before the kill (the test would prove nothing).
	src, err := os.ReadFile("shipping/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, bytes.Replace(src, []byte("within: 2s"), []byte("within: 10s"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemons(ctx, t, "shipping", rules, 1)
	first, cl := d.nodes[0], d.cl
	nc, err := nats.Connect(d.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, events.TemporalBucket)
	if err != nil {
		t.Fatal(err)
	}

	orders := cl.Bucket("orders")
	for range 2 {
		if _, err := orders.Insert(ctx, events.Record{"userId": "u"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []struct {
		id     float64
		status string
	}{{1, "confirmed"}, {1, "shipped"}, {2, "confirmed"}} {
		if _, err := orders.Update(ctx, u.id, events.Record{"status": u.status}); err != nil {
			t.Fatal(err)
		}
	}
	// Order 2's deadline is pending (and order 1's cancelled) in the
	// bucket before the node that wrote them dies.
	waitStates(ctx, t, kv, "order 2 pending, order 1 cancelled", func(st map[string]map[string]any) bool {
		return st["2"]["deadline"] != nil && st["1"] != nil && st["1"]["deadline"] == nil && len(st["1"]["seen"].([]any)) == 2
	})
	first.Kill(t)
	if n, err := cl.Bucket("flags").Count(ctx, nil); err != nil || n != 0 {
		t.Fatalf("flags before the deadline: %d, %v; want none", n, err)
	}

	for range 2 {
		d.startRulenode(t)
	}
	waitStates(ctx, t, kv, "order 2 fired and cleared", func(st map[string]map[string]any) bool {
		return st["2"] != nil && st["2"]["deadline"] == nil
	})
	res, err := cl.Bucket("flags").Query(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 1 || res.Records[0]["orderId"] != 2.0 || res.Records[0]["waited"] != 1.0 {
		t.Fatalf("flags = %v, want exactly one, for order 2", res.Records)
	}
}

// waitStates waits until the temporal states by match key satisfy ok.
func waitStates(ctx context.Context, t *testing.T, kv jetstream.KeyValue, what string, ok func(map[string]map[string]any) bool) {
	t.Helper()
	for {
		st := map[string]map[string]any{}
		keys, err := kv.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for k := range keys.Keys() {
			e, err := kv.Get(ctx, k)
			if err != nil {
				continue // deleted since listed
			}
			var s map[string]any
			if err := json.Unmarshal(e.Value(), &s); err != nil {
				t.Fatal(err)
			}
			st[s["key"].(string)] = s
		}
		if ok(st) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("temporal states %v: want %s", st, what)
		case <-time.After(50 * time.Millisecond): // polling interval, not synchronisation
		}
	}
}
