package examples_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/examples"
)

// The userstats example on real daemons: a storenode process and two
// rulenode processes keep the rules' userStats, the store keeps the
// declared view userStatsView. Six writers place 300 orders concurrently
// (every third order's total then changes, every fifth order is deleted);
// the storenode is SIGKILLed once 100 orders are acknowledged and started
// again on the same data and address, and the writers send every command
// again with its command id until it is acknowledged. Once the rules have
// settled, every acknowledged order is stored once with its last total,
// and the view equals the rules' statistics and a recomputation from the
// orders, exactly.
func TestUserStatsViewKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the daemons")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	d := startDaemons(ctx, t, "userstats", "", 0)
	// The events a rule node held when the store died come back after
	// the ack wait: short, so that the rules settle soon after the restart.
	d.nodeArgs = []string{"--ack-wait", "2s"}
	for range 2 {
		d.startRulenode(t)
	}
	// No retries inside the client: the writers send commands again
	// themselves, with their command ids, and count it.
	cl, err := client.Connect(d.url, client.WithRetries(0), client.WithFailoverWait(0), client.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)

	const n, writers, killAt = 300, 6, 100
	w := &statsWriters{orders: cl.Bucket("orders"), ids: make([]any, n), enough: make(chan struct{}), killAt: killAt}
	done := make(chan error, 1)
	go func() { done <- w.run(ctx, n, writers) }()
	select {
	case <-w.enough:
	case err := <-done:
		t.Fatalf("writers ended before %d orders were acknowledged: %v", killAt, err)
	case <-ctx.Done():
		t.Fatalf("only %d orders acknowledged: %v", w.acked.Load(), ctx.Err())
	}
	t0 := time.Now()
	d.killStore(t)
	t.Logf("storenode killed at %d acknowledged orders, back in %s", w.acked.Load(), time.Since(t0).Round(time.Millisecond))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("the writers sent %d commands again", w.retries.Load())
	if w.retries.Load() == 0 {
		t.Fatal("no command was sent again: the kill missed the writes, so this proved nothing")
	}
	if err := cl.Settle(ctx, client.SettleRuleSets("userstats")); err != nil {
		t.Fatal(err)
	}

	stored := w.checkOrders(ctx, t, n)
	want := recomputeStats(stored)
	checkView(ctx, t, cl, want)
	checkRuled(ctx, t, cl, want)
	js, err := jetstream.New(cl.Conn())
	if err != nil {
		t.Fatal(err)
	}
	if dls, err := examples.DeadLetters(ctx, js, "userstats"); err != nil || len(dls) != 0 {
		t.Errorf("dead letters: %+v, %v", dls, err)
	}
	for i, r := range d.nodes {
		if r.Exited() {
			t.Errorf("rulenode-%d exited instead of reconnecting", i)
		}
	}
}

// statsWriters place the orders of TestUserStatsViewKill9: order i is
// user u<i%17>'s, of total 1+i%97; every third one's total then becomes
// 200+i, every fifth one is then deleted.
type statsWriters struct {
	orders  *client.Bucket
	ids     []any // order i's generated id, once acknowledged
	acked   atomic.Int64
	killAt  int64
	enough  chan struct{} // closed when killAt orders are acknowledged
	retries atomic.Int64  // commands sent again
}

func statsOrder(i int) events.Record {
	return events.Record{"userId": fmt.Sprint("u", i%17), "total": float64(1 + i%97)}
}

// statsFinal is order i's total once its writer is done, or false if the
// order was deleted.
func statsFinal(i int) (float64, bool) {
	switch {
	case i%5 == 0:
		return 0, false
	case i%3 == 0:
		return float64(200 + i), true
	}
	return statsOrder(i)["total"].(float64), true
}

// run places orders 0..n-1 on workers goroutines, order by order.
func (w *statsWriters) run(ctx context.Context, n, workers int) error {
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for k := range workers {
		wg.Go(func() {
			for i := k; i < n; i += workers {
				if err := w.order(ctx, i); err != nil {
					errs <- fmt.Errorf("order %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return errors.Join(<-errs)
}

func (w *statsWriters) order(ctx context.Context, i int) error {
	var rec events.Record
	err := w.retry(ctx, fmt.Sprintf("order-%d-insert", i), func(ctx context.Context) (err error) {
		rec, err = w.orders.Insert(ctx, statsOrder(i))
		return err
	})
	if err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	w.ids[i] = rec["id"]
	if w.acked.Add(1) == w.killAt {
		close(w.enough)
	}
	if i%3 == 0 {
		err := w.retry(ctx, fmt.Sprintf("order-%d-total", i), func(ctx context.Context) error {
			_, err := w.orders.Update(ctx, rec["id"], events.Record{"total": float64(200 + i)})
			return err
		})
		if err != nil {
			return fmt.Errorf("update: %w", err)
		}
	}
	if i%5 == 0 {
		var deleted bool
		err := w.retry(ctx, fmt.Sprintf("order-%d-delete", i), func(ctx context.Context) (err error) {
			deleted, err = w.orders.Delete(ctx, rec["id"])
			return err
		})
		if err != nil {
			return fmt.Errorf("delete: %w", err)
		}
		// A retry of a delete applied before the kill answers the first
		// reply; a second delete would answer false.
		if !deleted {
			return fmt.Errorf("delete of %v answered deleted: false", rec["id"])
		}
	}
	return nil
}

// retry runs op with command id id until it is answered with anything
// but unavailable or indeterminate (the store is down or restarting), or
// ctx ends.
func (w *statsWriters) retry(ctx context.Context, id string, op func(context.Context) error) error {
	ctx = client.WithCommandID(ctx, id)
	for {
		err := op(ctx)
		if err == nil || !errors.Is(err, events.ErrUnavailable) && !errors.Is(err, events.ErrIndeterminate) || ctx.Err() != nil {
			return err
		}
		w.retries.Add(1)
		// Keeps a dead store from turning the loop into a spin.
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// checkOrders checks that the orders bucket holds exactly the
// acknowledged orders not deleted, once each, with their last totals, and
// returns them.
func (w *statsWriters) checkOrders(ctx context.Context, t *testing.T, n int) []events.Record {
	t.Helper()
	stored, err := w.orders.Where(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[float64]events.Record{}
	for _, o := range stored {
		id := o["id"].(float64)
		if byID[id] != nil {
			t.Fatalf("order %v stored twice", id)
		}
		byID[id] = o
	}
	acked := map[float64]int{} // id → order
	kept := 0
	for i := range n {
		id := w.ids[i].(float64)
		if j, ok := acked[id]; ok {
			t.Fatalf("orders %d and %d both acknowledged with id %v", j, i, id)
		}
		acked[id] = i
		total, ok := statsFinal(i)
		o := byID[id]
		switch {
		case !ok && o != nil:
			t.Errorf("order %d (id %v) was deleted, stored %v", i, id, o)
		case ok && (o == nil || o["userId"] != statsOrder(i)["userId"] || o["total"] != total):
			t.Errorf("order %d (id %v): stored %v, want user %v total %v", i, id, o, statsOrder(i)["userId"], total)
		case ok:
			kept++
		}
	}
	for id, o := range byID {
		if _, ok := acked[id]; !ok {
			t.Errorf("order %v stored, never acknowledged: %v", id, o)
		}
	}
	if len(stored) != kept {
		t.Errorf("%d orders stored, want %d", len(stored), kept)
	}
	if t.Failed() {
		t.FailNow()
	}
	return stored
}

// userStat is one user's statistics recomputed from the orders.
type userStat struct {
	count, sum, min, max float64
	last                 events.Record // the order written last: greatest (_updatedAt, id)
}

func recomputeStats(orders []events.Record) map[string]*userStat {
	stats := map[string]*userStat{}
	for _, o := range orders {
		u, total := o["userId"].(string), o["total"].(float64)
		s := stats[u]
		if s == nil {
			s = &userStat{min: total, max: total, last: o}
			stats[u] = s
		}
		s.count++
		s.sum += total
		s.min, s.max = min(s.min, total), max(s.max, total)
		at, lastAt := o[events.FieldUpdatedAt].(float64), s.last[events.FieldUpdatedAt].(float64)
		if at > lastAt || at == lastAt && o["id"].(float64) > s.last["id"].(float64) {
			s.last = o
		}
	}
	return stats
}

// checkView compares userStatsView with the statistics recomputed from
// the orders: one record per user with orders, exact but for the average.
func checkView(ctx context.Context, t *testing.T, cl *client.Client, want map[string]*userStat) {
	t.Helper()
	view, err := cl.Bucket("userStatsView").Where(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(view) != len(want) {
		t.Errorf("%d view records, %d users with orders", len(view), len(want))
	}
	for _, v := range view {
		u := v["userId"].(string)
		s := want[u]
		if s == nil {
			t.Errorf("view record %v: the user has no orders", v)
			continue
		}
		avg, _ := v["avgOrder"].(float64)
		if v["orderCount"] != s.count || v["totalSpent"] != s.sum || v["minOrder"] != s.min || v["maxOrder"] != s.max ||
			v["lastOrder"] != s.last["id"] || math.Abs(avg-s.sum/s.count) > 1e-9 {
			t.Errorf("%s: view %v, orders: count %v sum %v min %v max %v last %v avg %v",
				u, v, s.count, s.sum, s.min, s.max, s.last["id"], s.sum/s.count)
		}
	}
}

// checkRuled compares the rules' userStats with the statistics recomputed
// from the orders: count and sum exactly. (The rules' lastOrder is the
// time of the order processed last, which two rule nodes make one of the
// recent orders'; the view's is the id of the order written last.)
func checkRuled(ctx context.Context, t *testing.T, cl *client.Client, want map[string]*userStat) {
	t.Helper()
	ruled, err := cl.Bucket("userStats").Where(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, r := range ruled {
		u := r["userId"].(string)
		s := want[u]
		if s == nil {
			// All of the user's orders went: the rules leave zeros.
			if r["orderCount"] != 0.0 || r["totalSpent"] != 0.0 {
				t.Errorf("%s has no orders: rules %v", u, r)
			}
			continue
		}
		seen++
		if r["orderCount"] != s.count || r["totalSpent"] != s.sum {
			t.Errorf("%s: rules %v, orders: count %v sum %v", u, r, s.count, s.sum)
		}
	}
	if seen != len(want) {
		t.Errorf("rules' stats for %d users with orders, want %d", seen, len(want))
	}
}
