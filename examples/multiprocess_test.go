package examples_test

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/examples"
	"github.com/storeloop/storeloop/internal/procs"
)

// TestMain removes the daemons procs built.
func TestMain(m *testing.M) {
	code := m.Run()
	procs.Cleanup()
	os.Exit(code)
}

// The e-commerce example on real daemons: a storenode process (embedded
// NATS on a loopback port, data on disk) and two rulenode processes
// sharing the rule set's durable consumer. Twenty users' orders go through
// their lifecycle concurrently; stock and loyalty come out exact — no rule
// effect lost or applied twice — and both rule nodes' /metrics show a part
// of the firings.
func TestMultiProcessEcommerce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemons")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := startDaemons(ctx, t, "ecommerce", "", 2)
	nodes, sc, cl := d.nodes, d.sc, d.cl
	inventory, orders := cl.Bucket("inventory"), cl.Bucket("orders")
	for _, sku := range []string{"LAPTOP-1", "MOUSE-1"} {
		if _, err := inventory.Insert(ctx, events.Record{"sku": sku, "name": sku, "quantity": 1000.0}); err != nil {
			t.Fatal(err)
		}
	}

	// User i buys 1 + i%3 laptops for 1000 + 10i and 5 mice for 150:
	// int((1000 + 10i) / 10) + 15 = 115 + i points.
	const users = 20
	errs := make(chan error, users)
	var wg sync.WaitGroup
	wantLaptops, wantMice := 1000.0, 1000.0
	wantPoints := map[string]float64{}
	for i := range users {
		user := fmt.Sprintf("user%02d", i)
		laptops := float64(1 + i%3)
		wantLaptops -= laptops
		wantMice -= 5
		wantPoints[user] = 115 + float64(i)
		wg.Go(func() { errs <- lifecycle(ctx, orders, user, laptops, 1000+10*float64(i)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	if err := cl.Settle(ctx, client.SettleRuleSets(sc.Rules.Name)); err != nil {
		t.Fatal(err)
	}

	for sku, want := range map[string]float64{"LAPTOP-1": wantLaptops, "MOUSE-1": wantMice} {
		rec, err := inventory.Get(ctx, sku)
		if err != nil {
			t.Fatal(err)
		}
		// One update per order confirmed: version 1 + users.
		if rec["quantity"] != want || rec[events.FieldVersion] != float64(1+users) {
			t.Errorf("%s = %v, want quantity %v at version %d", sku, rec, want, 1+users)
		}
	}
	loyalty, err := cl.Bucket("loyalty").Where(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, r := range loyalty {
		got[r["userId"].(string)] = r["points"].(float64)
		if r[events.FieldVersion] != 2.0 {
			t.Errorf("loyalty %v: want version 2 (one upsert per shipped order)", r)
		}
	}
	if !reflect.DeepEqual(got, wantPoints) {
		t.Errorf("loyalty points = %v\nwant %v", got, wantPoints)
	}
	// Each order fires two rules once (deduct on confirm, loyalty on ship),
	// shared between the two processes.
	var fired []float64
	for _, n := range nodes {
		body, err := n.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fired = append(fired, procs.Sum(body, "storeloop_rule_firings_total"))
	}
	if fired[0]+fired[1] != 2*2*users || fired[0] == 0 || fired[1] == 0 {
		t.Errorf("rule firings per process %v, want %d in all, on both", fired, 2*2*users)
	}

	js, err := jetstream.New(cl.Conn())
	if err != nil {
		t.Fatal(err)
	}
	if dls, err := examples.DeadLetters(ctx, js, sc.Rules.Name); err != nil || len(dls) != 0 {
		t.Errorf("dead letters: %+v, %v", dls, err)
	}
}

// lifecycle is one user's orders: a laptop order and a mouse order,
// inserted, then both confirmed, then both shipped.
func lifecycle(ctx context.Context, orders *client.Bucket, user string, laptops, laptopTotal float64) error {
	var ids []any
	for _, o := range []events.Record{
		{"userId": user, "sku": "LAPTOP-1", "qty": laptops, "total": laptopTotal},
		{"userId": user, "sku": "MOUSE-1", "qty": 5.0, "total": 150.0},
	} {
		rec, err := orders.Insert(ctx, o)
		if err != nil {
			return err
		}
		ids = append(ids, rec["id"])
	}
	for _, status := range []string{"confirmed", "shipped"} {
		for _, id := range ids {
			if _, err := orders.Update(ctx, id, events.Record{"status": status}); err != nil {
				return fmt.Errorf("%s order %v %s: %w", user, id, status, err)
			}
		}
	}
	return nil
}
