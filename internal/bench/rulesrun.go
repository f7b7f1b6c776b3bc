package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
	"github.com/storeloop/storeloop/storenode"
)

// RulesConfig sizes `storeloop bench rules` (Rules).
type RulesConfig struct {
	// Events per measurement (default 20,000).
	Events int
	// InFlight is each runner's concurrency and each raw-side loop's
	// number of workers (default 32).
	InFlight int
	// Runners are the runner counts measured, each runner on its own
	// connection (default 1, 2, 4).
	Runners []int
	// Batch is each runner's rule writes per store.batch
	// (rulenode.WithBatching; 0: the rule node's default, -1: one request
	// each).
	Batch int
	// Turns is how many idle cycles are timed for the latency columns,
	// one event at a time (default 200).
	Turns int
	// Peers are raw-side loops measured beside the raw one, e.g.
	// Watermill's router (bench/peers).
	Peers []Loop
	// Rulenode, when set, is the path of a rulenode binary: the runner
	// counts are then measured as rulenode processes too.
	Rulenode string
	// CPUProfile, when set, is the prefix of a CPU profile of each runner
	// measurement's timed part (runners, store and server under load):
	// PREFIX.<durability>.runners<k>.pprof.
	CPUProfile string
}

// batching is Batch as a rule node takes it.
func (c *RulesConfig) batching() int {
	switch c.Batch {
	case 0:
		return rulenode.DefaultBatching
	case -1:
		return 0
	}
	return c.Batch
}

func (c *RulesConfig) defaults() {
	if c.Events == 0 {
		c.Events = 20000
	}
	if c.InFlight == 0 {
		c.InFlight = 32
	}
	if len(c.Runners) == 0 {
		c.Runners = []int{1, 2, 4}
	}
	if c.Turns == 0 {
		c.Turns = 200
	}
}

// Durability is a pair of fsync modes that promise the same: the store
// node's for the runners, the server's for the raw-side loops (which have
// no group commit of their own).
type Durability struct {
	Name  string
	Store storenode.FsyncMode
	Raw   storenode.FsyncMode
}

// Durabilities are the two compared: periodic fsync everywhere, and an
// fsync before every acknowledged write (the store's group commit against
// sync_interval: always).
var Durabilities = []Durability{
	{Name: "periodic", Store: storenode.FsyncPeriodic, Raw: storenode.FsyncPeriodic},
	{Name: "durable", Store: storenode.FsyncBatch, Raw: storenode.FsyncAlways},
}

// RuleRow is one measured loop.
type RuleRow struct {
	Durability string
	Fsync      storenode.FsyncMode
	Loop       string
	// Runners is the number of rule runners, 0 for the other loops.
	Runners int
	Events  int
	Elapsed time.Duration
	// CPU is the whole process's (server, store, loop) during the run.
	CPU      time.Duration
	P50, P99 time.Duration
}

// PerSecond is the throughput.
func (r RuleRow) PerSecond() float64 { return float64(r.Events) / r.Elapsed.Seconds() }

// CPUPerEvent is the process CPU time per event.
func (r RuleRow) CPUPerEvent() time.Duration { return r.CPU / time.Duration(max(r.Events, 1)) }

func (r RuleRow) String() string {
	lat := "—"
	if r.P50 > 0 {
		lat = fmt.Sprintf("p50 %.2f ms, p99 %.2f ms", ms(r.P50), ms(r.P99))
	}
	return fmt.Sprintf("%-8s %-8s %-26s %8.0f events/s %6.0f µs CPU/event  idle cycle %s",
		r.Durability, r.Fsync, r.label(), r.PerSecond(), float64(r.CPUPerEvent().Nanoseconds())/1e3, lat)
}

func (r RuleRow) label() string {
	if r.Runners > 0 {
		return fmt.Sprintf("%s ×%d", r.Loop, r.Runners)
	}
	return r.Loop
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Loop names of the storeloop rows.
const (
	LoopRunner      = "storeloop runner"
	LoopStoreUpsert = "store upserts, 32 callers"
)

// Rules runs `storeloop bench rules`: per durability, the raw loop and the
// peers on the raw stream, then 1, 2, 4 … rule runners on the store, then
// the store's own upsert rate; each row is printed to w as it comes, then
// the table of ratios.
func Rules(ctx context.Context, w io.Writer, cfg RulesConfig) ([]RuleRow, error) {
	cfg.defaults()
	var rows []RuleRow
	for _, d := range Durabilities {
		rs, err := rulesIn(ctx, w, d, cfg)
		rows = append(rows, rs...)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", d.Name, err)
		}
	}
	fmt.Fprintln(w)
	WriteRulesTable(w, rows)
	return rows, nil
}

func rulesIn(ctx context.Context, w io.Writer, d Durability, cfg RulesConfig) ([]RuleRow, error) {
	store, err := NewEnv(ctx, d.Store)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	raw := store
	if d.Raw != d.Store {
		if raw, err = NewEnv(ctx, d.Raw); err != nil {
			return nil, err
		}
		defer raw.Close()
	}
	fmt.Fprintf(w, "%s: loading %d shipped orders (fsync %s) …\n", d.Name, cfg.Events, d.Store)
	orders, err := store.shippedOrders(ctx, cfg.Events)
	if err != nil {
		return nil, err
	}
	var rows []RuleRow
	for _, loop := range append([]Loop{RawLoop}, cfg.Peers...) {
		row, err := raw.measureLoop(ctx, store, orders, loop, cfg)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", loop.Name, err)
		}
		row.Durability = d.Name
		fmt.Fprintln(w, row)
		rows = append(rows, row)
	}
	for _, k := range cfg.Runners {
		row, err := store.measureRunners(ctx, d.Name, orders, k, cfg)
		if err != nil {
			return rows, fmt.Errorf("%d runners: %w", k, err)
		}
		row.Durability = d.Name
		fmt.Fprintln(w, row)
		rows = append(rows, row)
	}
	for _, k := range cfg.Runners {
		if cfg.Rulenode == "" {
			break
		}
		row, err := store.measureProcesses(ctx, orders, k, cfg)
		if err != nil {
			return rows, fmt.Errorf("%d rulenode processes: %w", k, err)
		}
		row.Durability = d.Name
		fmt.Fprintln(w, row)
		rows = append(rows, row)
	}
	row, err := store.measureUpserts(ctx, cfg.Events)
	if err != nil {
		return rows, fmt.Errorf("store upserts: %w", err)
	}
	row.Durability = d.Name
	fmt.Fprintln(w, row)
	return append(rows, row), nil
}

// measureLoop times loop through the first n "shipped" events of orders
// (copied from src's store stream to a fresh subject of e's raw stream)
// until all n writes are in the stream, then its idle cycle while it runs.
func (e *Env) measureLoop(ctx context.Context, src *Env, orders *orderLoad, loop Loop, cfg RulesConfig) (RuleRow, error) {
	row := RuleRow{Fsync: e.Mode, Loop: loop.Name, Events: cfg.Events}
	k := e.nextRun()
	work := Work{
		URL: e.Server.ClientURL(), Stream: rawStream, InFlight: cfg.InFlight,
		In: fmt.Sprintf("benchraw.orders%d", k), Out: fmt.Sprintf("benchraw.loyalty%d", k), Consumer: fmt.Sprintf("loop%d", k),
	}
	if err := e.copyFrom(ctx, src, events.EventSubject(orders.bucket, events.OpUpdated), work.In, cfg.Events); err != nil {
		return row, err
	}
	cpu0, t0 := processCPU(), time.Now()
	stop, err := loop.Start(ctx, work)
	if err != nil {
		return row, err
	}
	err = awaitCondition(ctx, func(ctx context.Context) (bool, error) {
		n, err := e.subjectCount(ctx, work.Out)
		return n >= uint64(cfg.Events), err
	})
	row.Elapsed, row.CPU = time.Since(t0), processCPU()-cpu0
	if err == nil {
		err = e.loopLatency(ctx, work, &row, cfg.Turns)
	}
	if err = errors.Join(err, stop()); err != nil {
		return row, err
	}
	// Every event's write exactly once: none lost, none repeated.
	n, err := e.subjectCount(ctx, work.Out)
	if err == nil && n != uint64(cfg.Events+cfg.Turns+1) {
		err = fmt.Errorf("%w: %d writes for %d events", errShort, n, cfg.Events+cfg.Turns+1)
	}
	return row, err
}

// loopLatency times turns of the idle cycle (after one of warm-up): one
// event published to In until its write arrives on Out.
func (e *Env) loopLatency(ctx context.Context, w Work, row *RuleRow, turns int) error {
	msgs, err := e.JS.Stream(ctx, rawStream)
	if err != nil {
		return err
	}
	first, err := msgs.GetMsg(ctx, 0, jetstream.WithGetMsgSubject(w.In))
	if err != nil {
		return err
	}
	sub, err := e.NC.SubscribeSync(w.Out)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := e.NC.Flush(); err != nil {
		return err
	}
	lat, err := timeTurns(turns, func() error {
		if _, err := e.JS.Publish(ctx, w.In, first.Data); err != nil {
			return err
		}
		_, err := sub.NextMsgWithContext(ctx)
		return err
	})
	row.P50, row.P99 = lat.Quantile(0.5), lat.Quantile(0.99)
	return err
}

// timeTurns runs turn once to warm up, then times it n times.
func timeTurns(n int, turn func() error) (Latencies, error) {
	if err := turn(); err != nil {
		return nil, err
	}
	lat := make(Latencies, 0, n)
	for range n {
		t0 := time.Now()
		if err := turn(); err != nil {
			return lat, err
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, nil
}

// measureRunners times count runners of the loyalty rule (a fresh rule
// set and loyalty bucket) through every "shipped" event of orders, until
// the consumer has acknowledged them all; it checks the points awarded,
// then times the idle cycle.
func (e *Env) measureRunners(ctx context.Context, durability string, orders *orderLoad, count int, cfg RulesConfig) (RuleRow, error) {
	row := RuleRow{Fsync: e.Mode, Loop: LoopRunner, Runners: count, Events: orders.shipped}
	k := e.nextRun()
	name, loyalty := fmt.Sprintf("benchloyalty%d", k), fmt.Sprintf("loyalty%d", k)
	if err := e.Client.Define(ctx, loyaltyDef(loyalty)); err != nil {
		return row, err
	}
	set, err := LoyaltyRule(name, orders.bucket, loyalty)
	if err != nil {
		return row, err
	}
	_, start, stop, err := e.runners(ctx, set, count, rulenode.WithConcurrency(cfg.InFlight), rulenode.WithBatching(cfg.batching()), rulenode.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return row, err
	}
	stopProfile, err := startProfile(cfg.CPUProfile, fmt.Sprintf("%s.runners%d", durability, count))
	if err != nil {
		return row, errors.Join(err, stop())
	}
	cpu0, t0 := processCPU(), time.Now()
	start()
	err = e.awaitConsumed(ctx, name, orders.shipped)
	row.Elapsed, row.CPU = time.Since(t0), processCPU()-cpu0
	err = errors.Join(err, stopProfile())
	if err == nil {
		err = e.checkPoints(ctx, loyalty, orders.points)
	}
	if err == nil {
		err = e.runnerLatency(ctx, orders, loyalty, &row, cfg.Turns)
	}
	return row, errors.Join(err, stop())
}

// startProfile starts a CPU profile to prefix.name.pprof, or nothing for
// no prefix; the returned function stops it.
func startProfile(prefix, name string) (stop func() error, err error) {
	if prefix == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(prefix + "." + name + ".pprof")
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

func loyaltyDef(bucket string) events.BucketDef {
	return events.BucketDef{Bucket: bucket, Key: "userId", Schema: map[string]events.FieldDef{
		"userId": {Type: events.TypeString, Required: true},
		"points": {Type: events.TypeNumber, Default: 0.0},
	}}
}

// awaitConsumed waits until the rule set's consumer is consumed.
func (e *Env) awaitConsumed(ctx context.Context, consumer string, n int) error {
	return awaitCondition(ctx, func(ctx context.Context) (bool, error) { return e.consumed(ctx, consumer, n) })
}

// consumed tells whether the rule set's consumer has delivered n events
// and none is pending or unacknowledged.
func (e *Env) consumed(ctx context.Context, consumer string, n int) (bool, error) {
	c, err := e.JS.Consumer(ctx, events.DefaultStream, consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return false, nil // the runners have not bound it yet
	}
	if err != nil {
		return false, err
	}
	info := c.CachedInfo()
	return info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Consumer >= uint64(n), nil
}

// checkPoints fails unless the loyalty bucket holds want points in all.
func (e *Env) checkPoints(ctx context.Context, bucket string, want float64) error {
	got, err := e.Client.Bucket(bucket).Aggregate(ctx, "sum", "points", nil)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%w: %v loyalty points awarded, want %v", errShort, got, want)
	}
	return nil
}

// runnerLatency times turns of the idle cycle: an order of a user of its
// own shipped through the client until the write-back event of its loyalty
// record is seen. The turns' orders join orders' load (one point each), so
// the next runners work through them too.
func (e *Env) runnerLatency(ctx context.Context, orders *orderLoad, loyalty string, row *RuleRow, turns int) error {
	b := e.Client.Bucket(orders.bucket)
	keys := make([]any, turns+1)
	for i := range keys {
		rec, err := b.Insert(ctx, events.Record{"userId": fmt.Sprintf("turn%d-%d", e.nextRun(), i), "total": 10.0, "status": "new"})
		if err != nil {
			return err
		}
		keys[i] = rec["id"]
	}
	watch, err := e.Client.Follow(ctx, events.EventSubject(loyalty, "*"))
	if err != nil {
		return err
	}
	defer watch.Stop()
	i := 0
	lat, err := timeTurns(turns, func() error {
		rec, err := b.Update(ctx, keys[i], events.Record{"status": "shipped"})
		i++
		if err != nil {
			return err
		}
		orders.shipped++
		orders.points++
		return awaitWrite(ctx, watch, rec["userId"])
	})
	row.P50, row.P99 = lat.Quantile(0.5), lat.Quantile(0.99)
	return err
}

// awaitWrite reads w until an event of the record key.
func awaitWrite(ctx context.Context, w *client.Watcher, key any) error {
	for {
		ev, err := w.Next(ctx)
		if err != nil {
			return err
		}
		if ev.Key == key {
			return nil
		}
	}
}

// measureUpserts times the store's own rate for the runners' write: n
// loyalty upserts through the client from 32 callers.
func (e *Env) measureUpserts(ctx context.Context, n int) (RuleRow, error) {
	row := RuleRow{Fsync: e.Mode, Loop: LoopStoreUpsert, Events: n}
	loyalty := fmt.Sprintf("loyalty%d", e.nextRun())
	if err := e.Client.Define(ctx, loyaltyDef(loyalty)); err != nil {
		return row, err
	}
	b := e.Client.Bucket(loyalty)
	cpu0, t0 := processCPU(), time.Now()
	err := runIndexed(ctx, n, 32, func(ctx context.Context, i int) error {
		user := fmt.Sprintf("u%d", i%loyaltyUsers)
		_, err := b.Upsert(ctx, user, events.Record{"userId": user}, client.Increment(map[string]float64{"points": 1}))
		return err
	})
	row.Elapsed, row.CPU = time.Since(t0), processCPU()-cpu0
	return row, err
}

// WriteRulesTable prints rows as a Markdown table with each loop's ratio
// to the raw loop of its durability, then the goals against the
// first peer, if one was measured.
func WriteRulesTable(w io.Writer, rows []RuleRow) {
	find := func(durability, loop string, runners int) (RuleRow, bool) {
		for _, r := range rows {
			if r.Durability == durability && r.Loop == loop && r.Runners == runners {
				return r, true
			}
		}
		return RuleRow{}, false
	}
	fmt.Fprintln(w, "| durability | fsync | loop | events/s | CPU µs/event | idle p50 ms | idle p99 ms | ÷ raw |")
	fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		ratio := "—"
		if raw, ok := find(r.Durability, RawLoop.Name, 0); ok {
			ratio = fmt.Sprintf("%.2f×", r.PerSecond()/raw.PerSecond())
		}
		p50, p99 := "—", "—"
		if r.P50 > 0 {
			p50, p99 = fmt.Sprintf("%.2f", ms(r.P50)), fmt.Sprintf("%.2f", ms(r.P99))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.0f | %.0f | %s | %s | %s |\n", r.Durability, r.Fsync, r.label(),
			r.PerSecond(), float64(r.CPUPerEvent().Nanoseconds())/1e3, p50, p99, ratio)
	}
	var peer string
	for _, r := range rows {
		if r.Runners == 0 && r.Loop != RawLoop.Name && r.Loop != LoopStoreUpsert {
			peer = r.Loop
			break
		}
	}
	if peer == "" {
		return
	}
	fmt.Fprintln(w)
	for _, g := range []struct {
		durability string
		goal       float64
	}{{"periodic", 1.5}, {"durable", 3}} {
		p, ok1 := find(g.durability, peer, 0)
		s, ok2 := find(g.durability, LoopRunner, 1)
		if !ok1 || !ok2 {
			continue
		}
		fmt.Fprintf(w, "%s: storeloop runner ×1 ÷ %s: %.2f× events/s (goal ≥ %.1f×), CPU/event %.2f× (goal ≤ 1), idle p50 %.2f× (goal ≤ 1.5)\n",
			g.durability, peer, s.PerSecond()/p.PerSecond(), g.goal,
			float64(s.CPUPerEvent())/float64(p.CPUPerEvent()), float64(s.P50)/float64(max(p.P50, 1)))
	}
}
