package rulenode_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/procs"
	"github.com/storeloop/storeloop/rulenode"
)

// The chaos and scale tests run the real daemons (cmd/storenode,
// cmd/rulenode, built once per test binary) on the rule set of
// testdata/chaos.yaml, drive order lifecycles through the Go client, and
// check the derived data to the unit: nothing lost, nothing applied twice.

func TestMain(m *testing.M) {
	code := m.Run()
	procs.Cleanup()
	os.Exit(code)
}

const chaosSet = "chaos" // the rule set's name in testdata/chaos.yaml

// chaosBuckets are the buckets testdata/chaos.yaml reads and writes.
var chaosBuckets = []events.BucketDef{
	{Bucket: "orders", Key: "id", Schema: map[string]events.FieldDef{
		"id":     {Type: events.TypeNumber, Generated: events.GenAutoincrement},
		"userId": {Type: events.TypeString, Required: true},
		"sku":    {Type: events.TypeString, Required: true},
		"qty":    {Type: events.TypeNumber, Required: true},
		"total":  {Type: events.TypeNumber, Required: true},
		"status": {Type: events.TypeString, Enum: []any{"pending", "confirmed", "shipped"}, Default: "pending"},
	}},
	{Bucket: "stock", Key: "sku", Schema: map[string]events.FieldDef{
		"sku":      {Type: events.TypeString, Required: true},
		"quantity": {Type: events.TypeNumber, Required: true},
	}},
	{Bucket: "userStats", Key: "userId", Schema: map[string]events.FieldDef{
		"userId":     {Type: events.TypeString, Required: true},
		"orderCount": {Type: events.TypeNumber, Default: 0.0},
		"totalSpent": {Type: events.TypeNumber, Default: 0.0},
		"shipped":    {Type: events.TypeNumber, Default: 0.0},
	}},
	{Bucket: "loyalty", Key: "userId", Schema: map[string]events.FieldDef{
		"userId": {Type: events.TypeString, Required: true},
		"points": {Type: events.TypeNumber, Default: 0.0},
	}},
	{Bucket: "totals", Key: "id", Schema: map[string]events.FieldDef{
		"id":      {Type: events.TypeString, Required: true},
		"orders":  {Type: events.TypeNumber, Default: 0.0},
		"revenue": {Type: events.TypeNumber, Default: 0.0},
	}},
}

// chaosStock is every SKU's stock before the burst.
const chaosStock = 10000.0

// chaosOrder is one order of the burst.
type chaosOrder struct {
	user, sku  string
	qty, total float64
}

// chaosOrders returns n orders spread over users and skus, with totals
// that are not all multiples of 10 nor whole, so int(total / 10) truncates.
func chaosOrders(n, users, skus int) []chaosOrder {
	orders := make([]chaosOrder, n)
	for i := range orders {
		orders[i] = chaosOrder{
			user:  fmt.Sprintf("u%02d", i%users),
			sku:   fmt.Sprintf("sku%d", i%skus),
			qty:   float64(1 + i%4),
			total: float64(100+37*i) / 2,
		}
	}
	return orders
}

// Matched events per order: inserted, updated to confirmed, to shipped.
const chaosEventsPerOrder = 3

// chaosTotals is the derived data, as computed here or read from the store.
type chaosTotals struct {
	Stock                          map[string]float64
	Points, Orders, Spent, Shipped map[string]float64
	AllOrders, Revenue             float64
}

func chaosExpected(orders []chaosOrder, skus int) chaosTotals {
	want := chaosTotals{Stock: map[string]float64{}, Points: map[string]float64{}, Orders: map[string]float64{},
		Spent: map[string]float64{}, Shipped: map[string]float64{}}
	for i := range skus {
		want.Stock[fmt.Sprintf("sku%d", i)] = chaosStock
	}
	for _, o := range orders {
		want.Stock[o.sku] -= o.qty
		want.Points[o.user] += math.Trunc(o.total / 10)
		want.Orders[o.user]++
		want.Spent[o.user] += o.total
		want.Shipped[o.user]++
		want.AllOrders++
		want.Revenue += o.total
	}
	return want
}

// chaosCluster is a storenode process, rulenode processes running
// testdata/chaos.yaml, and a client.
type chaosCluster struct {
	t         *testing.T
	storeSpec procs.Spec
	store     *procs.Storenode
	nodeSpecs []procs.Spec
	nodes     []*procs.Rulenode
	cl        *client.Client
	js        jetstream.JetStream
	skus      int
	// retries counts the writes the driver sent again after unavailable.
	retries atomic.Int64
}

// startChaosCluster starts a storenode on a fixed address (so that it can
// come back on it), defines the buckets, stocks skus SKUs and starts n
// rulenodes. AckWait is short so that the events a killed rulenode held
// come back within the test.
func startChaosCluster(t *testing.T, n, skus int) *chaosCluster {
	t.Helper()
	c := &chaosCluster{t: t, skus: skus}
	c.storeSpec = procs.StorenodeSpec(t, t.TempDir(), procs.FreeAddr(t))
	c.store = procs.StartStorenode(t, c.storeSpec)
	// No retries inside the client: the driver sends writes again itself,
	// with the same command ids, and counts it. A short timeout keeps the
	// test short when the store is down.
	cl, err := client.Connect(c.store.URL, client.WithRetries(0), client.WithFailoverWait(0), client.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	c.cl = cl
	if c.js, err = jetstream.New(cl.Conn()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, def := range chaosBuckets {
		if err := cl.Define(ctx, def); err != nil {
			t.Fatalf("define %s: %v", def.Bucket, err)
		}
	}
	for i := range skus {
		if _, err := cl.Bucket("stock").Insert(ctx, events.Record{"sku": fmt.Sprintf("sku%d", i), "quantity": chaosStock}); err != nil {
			t.Fatal(err)
		}
	}
	rules, err := filepath.Abs("testdata/chaos.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		// Every other node coalesces its writes into store.batch
		// requests: both write paths take the kills.
		batch := "0"
		if i%2 == 0 {
			batch = "64"
		}
		c.nodeSpecs = append(c.nodeSpecs, procs.RulenodeSpec(t, fmt.Sprintf("rulenode-%d", i), rules, c.store.URL, "--ack-wait", "2s", "--batch", batch))
	}
	// Start them together: each waits for its consumer, so this is the
	// slow part of the setup.
	c.nodes = make([]*procs.Rulenode, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { c.nodes[i] = procs.StartRulenode(t, c.nodeSpecs[i]) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return c
}

// restartNode SIGKILLs rulenode i and starts it again.
func (c *chaosCluster) restartNode(i int) {
	c.t.Helper()
	c.nodes[i].Kill(c.t)
	c.nodes[i] = procs.StartRulenode(c.t, c.nodeSpecs[i])
}

// consumer returns the rule set's consumer state.
func (c *chaosCluster) consumer(ctx context.Context) (*jetstream.ConsumerInfo, error) {
	cons, err := c.js.Consumer(ctx, events.DefaultStream, chaosSet)
	if err != nil {
		return nil, err
	}
	return cons.Info(ctx)
}

// waitAcked waits until the consumer's ack floor reaches k deliveries and
// returns the consumer state it saw then.
func (c *chaosCluster) waitAcked(k uint64, timeout time.Duration) *jetstream.ConsumerInfo {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	last := "no consumer info yet"
	for {
		ci, err := c.consumer(ctx)
		switch {
		case err == nil && ci.AckFloor.Consumer >= k:
			return ci
		case err == nil:
			last = fmt.Sprintf("ack floor %d", ci.AckFloor.Consumer)
		default:
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("ack floor did not reach %d in %s (%s)", k, timeout, last)
		case <-tick.C:
		}
	}
}

// drive runs the lifecycle of each order (insert, confirm, ship) with
// workers orders at a time and returns when all are done. Every write has
// its own command id and is sent again with it while the store is
// unavailable, as an application riding out a store restart would.
func (c *chaosCluster) drive(ctx context.Context, orders []chaosOrder, first, workers int) error {
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := c.lifecycle(ctx, first+i, orders[i]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	go func() {
		defer close(next)
		for i := range orders {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	return errors.Join(<-errs, ctx.Err())
}

func (c *chaosCluster) lifecycle(ctx context.Context, n int, o chaosOrder) error {
	orders := c.cl.Bucket("orders")
	var rec events.Record
	err := c.retryUnavailable(ctx, fmt.Sprintf("order-%d-insert", n), func(ctx context.Context) (err error) {
		rec, err = orders.Insert(ctx, events.Record{"userId": o.user, "sku": o.sku, "qty": o.qty, "total": o.total})
		return err
	})
	if err != nil {
		return fmt.Errorf("order %d: insert: %w", n, err)
	}
	for _, status := range []string{"confirmed", "shipped"} {
		err := c.retryUnavailable(ctx, fmt.Sprintf("order-%d-%s", n, status), func(ctx context.Context) error {
			_, err := orders.Update(ctx, rec["id"], events.Record{"status": status})
			return err
		})
		if err != nil {
			return fmt.Errorf("order %d: %s: %w", n, status, err)
		}
	}
	return nil
}

// retryUnavailable runs op with command id id until it succeeds, fails
// with another error than unavailable, or ctx ends.
func (c *chaosCluster) retryUnavailable(ctx context.Context, id string, op func(context.Context) error) error {
	ctx = client.WithCommandID(ctx, id)
	for {
		err := op(ctx)
		if err == nil || !errors.Is(err, events.ErrUnavailable) || ctx.Err() != nil {
			return err
		}
		c.retries.Add(1)
		// Keeps a dead store from turning the loop into a spin.
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// settle waits for the cascade to finish.
func (c *chaosCluster) settle(timeout time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.cl.Settle(ctx, client.SettleRuleSets(chaosSet)); err != nil {
		c.t.Fatal(err)
	}
}

// totals reads the derived data from the store.
func (c *chaosCluster) totals(ctx context.Context) chaosTotals {
	c.t.Helper()
	got := chaosTotals{Stock: map[string]float64{}, Points: map[string]float64{}, Orders: map[string]float64{},
		Spent: map[string]float64{}, Shipped: map[string]float64{}}
	read := func(bucket string, fn func(events.Record)) {
		recs, err := c.cl.Bucket(bucket).Where(ctx, nil)
		if err != nil {
			c.t.Fatalf("read %s: %v", bucket, err)
		}
		for _, r := range recs {
			fn(r)
		}
	}
	num := func(v any) float64 { f, _ := v.(float64); return f }
	read("stock", func(r events.Record) { got.Stock[r["sku"].(string)] = num(r["quantity"]) })
	read("loyalty", func(r events.Record) { got.Points[r["userId"].(string)] = num(r["points"]) })
	read("userStats", func(r events.Record) {
		u := r["userId"].(string)
		got.Orders[u], got.Spent[u], got.Shipped[u] = num(r["orderCount"]), num(r["totalSpent"]), num(r["shipped"])
	})
	read("totals", func(r events.Record) { got.AllOrders, got.Revenue = num(r["orders"]), num(r["revenue"]) })
	return got
}

// check compares the store's derived data, the orders themselves and the
// dead letters with what the orders imply.
func (c *chaosCluster) check(orders []chaosOrder) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, want := c.totals(ctx), chaosExpected(orders, c.skus)
	for _, m := range []struct {
		name      string
		got, want map[string]float64
	}{
		{"stock quantity", got.Stock, want.Stock},
		{"loyalty points", got.Points, want.Points},
		{"userStats orderCount", got.Orders, want.Orders},
		{"userStats totalSpent", got.Spent, want.Spent},
		{"userStats shipped", got.Shipped, want.Shipped},
	} {
		if len(m.got) != len(m.want) {
			c.t.Errorf("%s: %d records, want %d: %v", m.name, len(m.got), len(m.want), m.got)
		}
		for k, w := range m.want {
			if g, ok := m.got[k]; !ok || g != w {
				c.t.Errorf("%s of %s = %v, want %v", m.name, k, g, w)
			}
		}
	}
	if got.AllOrders != want.AllOrders || got.Revenue != want.Revenue {
		c.t.Errorf("totals = %v orders, %v revenue; want %v, %v", got.AllOrders, got.Revenue, want.AllOrders, want.Revenue)
	}
	shipped, err := c.cl.Bucket("orders").Count(ctx, events.Where{"status": "shipped"})
	if err != nil {
		c.t.Fatal(err)
	}
	all, err := c.cl.Bucket("orders").Count(ctx, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if shipped != len(orders) || all != len(orders) {
		c.t.Errorf("orders: %d, %d shipped; want %d, all shipped", all, shipped, len(orders))
	}
	if n := c.deadLetters(ctx); n != 0 {
		c.t.Errorf("%d dead letters, want none", n)
	}
}

// deadLetters counts the rule set's dead letters.
func (c *chaosCluster) deadLetters(ctx context.Context) uint64 {
	c.t.Helper()
	s, err := c.js.Stream(ctx, rulenode.DefaultDeadLetterStream)
	if err != nil {
		c.t.Fatalf("dead-letter stream: %v", err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(rulenode.DeadLetterSubjectPrefix+"."+chaosSet+".>"))
	if err != nil {
		c.t.Fatal(err)
	}
	var n uint64
	for _, count := range info.State.Subjects {
		n += count
	}
	return n
}

// redeliveries is how many deliveries the consumer made beyond one per
// event: the events some rulenode held when it was killed (or failed to
// process while the store was down) and that were delivered again.
func (c *chaosCluster) redeliveries(events int) int64 {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ci, err := c.consumer(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	return int64(ci.Delivered.Consumer) - int64(events)
}

// TestChaosKillRulenodes SIGKILLs rulenode processes in the middle of a
// burst of order lifecycles, at points chosen by how many events the
// consumer has acknowledged, and restarts them. The derived totals are
// exact and some events were delivered again: the kills did land on work
// in hand, and its redelivery changed nothing twice.
func TestChaosKillRulenodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills daemons")
	}
	const users, skus, chunks, perChunk = 10, 3, 4, 15
	c := startChaosCluster(t, 2, skus)
	orders := chaosOrders(chunks*perChunk, users, skus)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Chunk by chunk: once the previous one has settled (the events a
	// killed rulenode held come back after AckWait), drive the chunk and,
	// once the consumer has acked half of its events, kill one rulenode
	// (alternately) and restart it.
	for k := range chunks {
		c.settle(30 * time.Second)
		ci, err := c.consumer(ctx)
		if err != nil {
			t.Fatal(err)
		}
		chunk := orders[k*perChunk : (k+1)*perChunk]
		done := make(chan error, 1)
		go func() { done <- c.drive(ctx, chunk, k*perChunk, 4) }()
		ci = c.waitAcked(ci.AckFloor.Consumer+perChunk*chaosEventsPerOrder/2, 30*time.Second)
		victim := k % len(c.nodes)
		t.Logf("kill %d: rulenode-%d (pid %d) at ack floor %d, %d deliveries unacked, %d events undelivered",
			k, victim, c.nodes[victim].Pid(), ci.AckFloor.Consumer, ci.NumAckPending, ci.NumPending)
		c.restartNode(victim)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	c.settle(30 * time.Second)
	c.check(orders)
	re := c.redeliveries(len(orders) * chaosEventsPerOrder)
	t.Logf("%d redeliveries over %d events", re, len(orders)*chaosEventsPerOrder)
	if re <= 0 {
		t.Errorf("no event was delivered twice: the kills hit no work in hand, so this proved nothing")
	}
}

// TestChaosKillStorenode SIGKILLs the storenode (and its embedded NATS
// server) in the middle of the burst and starts it again on the same data
// and address. The client sends its writes again with the same command
// ids, the rulenodes reconnect, and the totals are exact.
func TestChaosKillStorenode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills daemons")
	}
	const users, skus = 10, 3
	c := startChaosCluster(t, 2, skus)
	orders := chaosOrders(60, users, skus)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.drive(ctx, orders, 0, 4) }()
	ci := c.waitAcked(uint64(len(orders)*chaosEventsPerOrder/3), 30*time.Second)
	t.Logf("kill storenode (pid %d) at ack floor %d, %d deliveries unacked, %d events undelivered",
		c.store.Pid(), ci.AckFloor.Consumer, ci.NumAckPending, ci.NumPending)
	t0 := time.Now()
	c.store.Kill(t)
	c.store = procs.StartStorenode(t, c.storeSpec)
	t.Logf("storenode back in %s", time.Since(t0).Round(time.Millisecond))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c.settle(30 * time.Second)
	// Mostly timeouts: requests and acks the dead server never answered.
	t.Logf("settled %s after the kill", time.Since(t0).Round(time.Millisecond))
	c.check(orders)
	for i, n := range c.nodes {
		if n.Exited() {
			t.Errorf("rulenode-%d exited instead of reconnecting", i)
		}
	}
	t.Logf("%d redeliveries over %d events; the driver sent %d writes again", c.redeliveries(len(orders)*chaosEventsPerOrder),
		len(orders)*chaosEventsPerOrder, c.retries.Load())
	if c.retries.Load() == 0 {
		t.Error("no write of the driver was sent again: the kill missed the burst, so this proved nothing about client retries")
	}
}
