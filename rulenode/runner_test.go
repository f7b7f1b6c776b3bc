package rulenode_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/rulenode"
	"github.com/storeloop/storeloop/storenode"
)

func ptr[T any](v T) *T { return &v }

var (
	ordersDef = events.BucketDef{
		Bucket: "orders",
		Key:    "id",
		Schema: map[string]events.FieldDef{
			"id":     {Type: events.TypeNumber, Generated: events.GenAutoincrement},
			"userId": {Type: events.TypeString, Required: true},
			"sku":    {Type: events.TypeString},
			"qty":    {Type: events.TypeNumber, Min: ptr(1.0)},
			"total":  {Type: events.TypeNumber, Required: true, Min: ptr(0.0)},
			"status": {Type: events.TypeString, Enum: []any{"pending", "paid", "confirmed", "shipped"}, Default: "pending"},
		},
		Indexes: []string{"userId", "status"},
	}
	inventoryDef = events.BucketDef{
		Bucket: "inventory",
		Key:    "sku",
		Schema: map[string]events.FieldDef{
			"sku":      {Type: events.TypeString, Required: true},
			"name":     {Type: events.TypeString, Required: true},
			"quantity": {Type: events.TypeNumber, Required: true, Min: ptr(0.0)},
		},
	}
	loyaltyDef = events.BucketDef{
		Bucket: "loyalty",
		Key:    "userId",
		Schema: map[string]events.FieldDef{
			"userId": {Type: events.TypeString, Required: true},
			"points": {Type: events.TypeNumber, Default: 0.0, Min: ptr(0.0)},
		},
	}
	countersDef = events.BucketDef{
		Bucket: "counters",
		Key:    "id",
		Schema: map[string]events.FieldDef{
			"id": {Type: events.TypeString, Required: true},
			"n":  {Type: events.TypeNumber, Default: 0.0},
			"go": {Type: events.TypeBoolean},
		},
	}
)

// harness is a real store node on an embedded NATS server, a client, and
// JetStream for runners.
type harness struct {
	t  *testing.T
	cl *client.Client
	js jetstream.JetStream
}

func newHarness(t *testing.T, defs ...events.BucketDef) *harness {
	t.Helper()
	return newHarnessWith(t, nil, defs...)
}

// newHarnessWith starts the store node with opts.
func newHarnessWith(t *testing.T, opts []storenode.Option, defs ...events.BucketDef) *harness {
	t.Helper()
	url := storetest.Start(t, opts...)
	cl, err := client.Connect(url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(cl.Close)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	h := &harness{t: t, cl: cl, js: js}
	for _, d := range defs {
		if err := cl.Define(h.ctx(), d); err != nil {
			t.Fatalf("define %s: %v", d.Bucket, err)
		}
	}
	return h
}

// ctx is bounded so that a hung test fails instead of timing out the run.
func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	h.t.Cleanup(cancel)
	return ctx
}

// fastRetries keep failure tests short.
var fastRetries = []rulenode.RunnerOption{
	rulenode.WithRetryBackoff(10 * time.Millisecond),
	rulenode.WithAckWait(5 * time.Second),
}

// run starts a runner of set until the test ends; Run must then return nil.
func (h *harness) run(set *rulenode.RuleSet, opts ...rulenode.RunnerOption) *rulenode.Runner {
	h.t.Helper()
	r := rulenode.NewRunner(h.js, h.cl, set, append(cloneOpts(fastRetries), opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("runner %s: Run returned %v", set.Name, err)
			}
		case <-time.After(10 * time.Second):
			h.t.Errorf("runner %s did not stop", set.Name)
		}
	})
	return r
}

func cloneOpts(o []rulenode.RunnerOption) []rulenode.RunnerOption {
	return append([]rulenode.RunnerOption(nil), o...)
}

// settle waits until the rule sets' cascades have run out.
func (h *harness) settle(sets ...string) {
	h.t.Helper()
	if err := h.cl.Settle(h.ctx(), client.SettleRuleSets(sets...)); err != nil {
		h.t.Fatalf("settle: %v", err)
	}
}

func (h *harness) get(bucket string, key any) events.Record {
	h.t.Helper()
	rec, err := h.cl.Bucket(bucket).Get(h.ctx(), key)
	if err != nil {
		h.t.Fatalf("get %s %v: %v", bucket, key, err)
	}
	return rec
}

func (h *harness) insert(bucket string, rec events.Record) events.Record {
	h.t.Helper()
	out, err := h.cl.Bucket(bucket).Insert(h.ctx(), rec)
	if err != nil {
		h.t.Fatalf("insert %s: %v", bucket, err)
	}
	return out
}

func (h *harness) update(bucket string, key any, changes events.Record) {
	h.t.Helper()
	if _, err := h.cl.Bucket(bucket).Update(h.ctx(), key, changes); err != nil {
		h.t.Fatalf("update %s %v: %v", bucket, key, err)
	}
}

// streamMsgs returns the messages of a stream whose subject starts with
// prefix, in order.
func (h *harness) streamMsgs(stream, prefix string) []*jetstream.RawStreamMsg {
	h.t.Helper()
	s, err := h.js.Stream(h.ctx(), stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		h.t.Fatalf("stream %s: %v", stream, err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); seq <= s.CachedInfo().State.LastSeq; seq++ {
		m, err := s.GetMsg(h.ctx(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			h.t.Fatalf("get %s #%d: %v", stream, seq, err)
		}
		if strings.HasPrefix(m.Subject, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// events returns the events on subjects starting with prefix.
func (h *harness) events(prefix string) []*events.Event {
	h.t.Helper()
	var out []*events.Event
	for _, m := range h.streamMsgs(events.DefaultStream, prefix) {
		ev, err := events.DecodeEvent(m.Data)
		if err != nil {
			h.t.Fatalf("decode #%d: %v", m.Sequence, err)
		}
		ev.Meta.Seq = m.Sequence
		out = append(out, ev)
	}
	return out
}

// deadLetters returns the dead letters of rule set set.
func (h *harness) deadLetters(set string) []rulenode.DeadLetter {
	h.t.Helper()
	var out []rulenode.DeadLetter
	for _, m := range h.streamMsgs(rulenode.DefaultDeadLetterStream, rulenode.DeadLetterSubjectPrefix+"."+set+".") {
		var d rulenode.DeadLetter
		if err := json.Unmarshal(m.Data, &d); err != nil {
			h.t.Fatalf("dead letter #%d: %v", m.Sequence, err)
		}
		if want := rulenode.DeadLetterSubject(set, d.Reason); m.Subject != want {
			h.t.Errorf("dead letter on %s, want %s", m.Subject, want)
		}
		out = append(out, d)
	}
	return out
}

// loadExample loads the rule set of a seed scenario from examples/.
func loadExample(t *testing.T, scenario string) *rulenode.RuleSet {
	t.Helper()
	set, err := rulenode.LoadFile(filepath.Join("..", "examples", scenario, "rules.yaml"))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return set
}

func load(t *testing.T, src string) *rulenode.RuleSet {
	t.Helper()
	set, err := rulenode.Load(strings.NewReader(src), t.Name()+".yaml")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return set
}

func wantNumber(t *testing.T, rec events.Record, field string, want float64) {
	t.Helper()
	if got, ok := rec[field].(float64); !ok || got != want {
		t.Errorf("%s = %v, want %v (record %v)", field, rec[field], want, rec)
	}
}

// The seed's "Loyalty Points on Order Shipment": 250 shipped → 25 points,
// written once, with the causal chain of the shipment in its meta.
func TestLoyaltyOnShip(t *testing.T) {
	h := newHarness(t, ordersDef, loyaltyDef)
	h.run(loadExample(t, "loyalty"))

	order := h.insert("orders", events.Record{"userId": "alice", "total": 250})
	h.update("orders", order["id"], events.Record{"status": "paid"})
	h.update("orders", order["id"], events.Record{"status": "shipped"})
	h.settle("loyalty")

	wantNumber(t, h.get("loyalty", "alice"), "points", 25)

	writes := h.events("bucket.loyalty.")
	if len(writes) != 1 {
		t.Fatalf("%d loyalty events, want 1", len(writes))
	}
	updates := h.events("bucket.orders.updated")
	shipped := updates[len(updates)-1]
	got, want := writes[0].Meta, events.Meta{
		CorrelationID: shipped.Meta.CorrelationID,
		CausationID:   shipped.Meta.EventID,
		Hop:           1,
		RuleID:        "loyalty-on-ship",
		CommandID:     rulenode.CommandID("loyalty", "loyalty-on-ship", shipped.Meta.Seq, "0"),
	}
	if got.CorrelationID != want.CorrelationID || got.CausationID != want.CausationID || got.Hop != want.Hop ||
		got.RuleID != want.RuleID || got.CommandID != want.CommandID {
		t.Errorf("loyalty event meta = %+v, want %+v", got, want)
	}
	if dl := h.deadLetters("loyalty"); len(dl) != 0 {
		t.Errorf("dead letters: %+v", dl)
	}
}

// The seed's "Complete Working Example", with two runners sharing the
// rule set's consumer as two rule node processes would.
func TestECommerceTwoRunners(t *testing.T) {
	h := newHarness(t, ordersDef, inventoryDef, loyaltyDef)
	h.run(loadExample(t, "ecommerce"))
	h.run(loadExample(t, "ecommerce"))

	h.insert("inventory", events.Record{"sku": "LAPTOP-1", "name": "Pro Laptop", "quantity": 50})
	h.insert("inventory", events.Record{"sku": "MOUSE-1", "name": "Wireless Mouse", "quantity": 200})
	o1 := h.insert("orders", events.Record{"userId": "alice", "sku": "LAPTOP-1", "qty": 2, "total": 2598})
	o2 := h.insert("orders", events.Record{"userId": "alice", "sku": "MOUSE-1", "qty": 5, "total": 150})
	for _, status := range []string{"confirmed", "shipped"} {
		h.update("orders", o1["id"], events.Record{"status": status})
		h.update("orders", o2["id"], events.Record{"status": status})
	}
	h.settle("ecommerce")

	wantNumber(t, h.get("inventory", "LAPTOP-1"), "quantity", 48)
	wantNumber(t, h.get("inventory", "MOUSE-1"), "quantity", 195)
	wantNumber(t, h.get("loyalty", "alice"), "points", 274)

	s, err := h.js.Stream(h.ctx(), events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Consumers; n != 1 {
		t.Errorf("%d consumers on the stream, want the one shared by both runners", n)
	}
	if got := len(h.events("bucket.inventory.updated")) + len(h.events("bucket.loyalty.")); got != 4 {
		t.Errorf("%d rule writes, want 4", got)
	}
}

// A rule that fails after its write is retried; the retry's write has the
// same command id, so the store applies it once.
func TestRedeliveryIsEffectivelyOnce(t *testing.T) {
	h := newHarness(t, ordersDef, loyaltyDef)
	var calls atomic.Int32
	set, err := rulenode.NewRuleSet("award", &rulenode.Rule{
		ID: "award-on-order",
		On: []string{"bucket.orders.inserted"},
		Handler: func(ctx context.Context, ev *events.Event, env *rulenode.Env) error {
			user := ev.Record["userId"]
			if _, err := env.Store.Upsert(ctx, "loyalty", user, events.Record{"userId": user},
				map[string]float64{"points": 10}); err != nil {
				return err
			}
			if calls.Add(1) == 1 {
				return errors.New("crashed after the write")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.run(set)

	h.insert("orders", events.Record{"userId": "bob", "total": 1})
	h.settle("award")

	if n := calls.Load(); n != 2 {
		t.Errorf("handler ran %d times, want 2 (a failure, then the retry)", n)
	}
	wantNumber(t, h.get("loyalty", "bob"), "points", 10)
	if n := len(h.events("bucket.loyalty.")); n != 1 {
		t.Errorf("%d loyalty events, want 1", n)
	}
	if dl := h.deadLetters("award"); len(dl) != 0 {
		t.Errorf("dead letters: %+v", dl)
	}
}

// A poisoned event is retried with a backoff and then dead-lettered with
// its payload, while the events after it go through; an event retrying
// cannot help is dead-lettered at once.
func TestPoisonEventGoesToDeadLetters(t *testing.T) {
	cases := []struct {
		name           string
		poison         func(ctx context.Context, env *rulenode.Env) error
		wantReason     string
		wantDeliveries uint64
		wantErr        string
	}{{
		name:           "retries exhausted",
		poison:         func(context.Context, *rulenode.Env) error { return errors.New("poisoned") },
		wantReason:     rulenode.ReasonFailed,
		wantDeliveries: 3,
		wantErr:        "poisoned",
	}, {
		name: "store rejects the write",
		poison: func(ctx context.Context, env *rulenode.Env) error {
			_, err := env.Store.Insert(ctx, "loyalty", events.Record{"points": 1}) // no userId
			return err
		},
		wantReason:     rulenode.ReasonRejected,
		wantDeliveries: 1,
		wantErr:        "validation",
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, ordersDef, loyaltyDef)
			goodDone := make(chan struct{})
			var once sync.Once
			var attempts atomic.Int32
			set, err := rulenode.NewRuleSet("shop", &rulenode.Rule{
				ID: "award",
				On: []string{"bucket.orders.inserted"},
				Handler: func(ctx context.Context, ev *events.Event, env *rulenode.Env) error {
					if ev.Record["total"] == 13.0 {
						if attempts.Add(1) > 1 {
							// The good event, behind this one on the only
							// worker, got through while this one waited
							// for its redelivery. (Waiting for it here
							// would block the only worker that can run
							// it: under load, when the redelivery came
							// first, that was a 5 s deadlock.)
							select {
							case <-goodDone:
							default:
								t.Error("the poisoned event held up the next one")
							}
						}
						return tc.poison(ctx, env)
					}
					user := ev.Record["userId"]
					_, err := env.Store.Upsert(ctx, "loyalty", user, events.Record{"userId": user},
						map[string]float64{"points": 1})
					once.Do(func() { close(goodDone) })
					return err
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			// Both events are in the stream before the runner starts, and
			// the redelivery waits far longer than handing over the next
			// event takes: the good one is delivered while the poisoned
			// one waits, whatever the load. (Inserted after the start,
			// the good event raced the 10 ms backoff against a client
			// round trip and an fsync.)
			h.insert("orders", events.Record{"userId": "mallory", "total": 13})
			h.insert("orders", events.Record{"userId": "carol", "total": 20})
			h.run(set, rulenode.WithConcurrency(1), rulenode.WithMaxDeliver(3), rulenode.WithRetryBackoff(500*time.Millisecond))
			h.settle("shop")

			wantNumber(t, h.get("loyalty", "carol"), "points", 1)
			if int(attempts.Load()) != int(tc.wantDeliveries) {
				t.Errorf("poison ran %d times, want %d", attempts.Load(), tc.wantDeliveries)
			}
			poison := h.events("bucket.orders.inserted")[0]
			dls := h.deadLetters("shop")
			if len(dls) != 1 {
				t.Fatalf("%d dead letters, want 1: %+v", len(dls), dls)
			}
			d := dls[0]
			if d.RuleSet != "shop" || d.RuleID != "award" || d.Reason != tc.wantReason ||
				d.StreamSeq != poison.Meta.Seq || d.Deliveries != tc.wantDeliveries ||
				d.Subject != "bucket.orders.inserted" || d.EventID != poison.Meta.EventID ||
				!strings.Contains(d.Error, tc.wantErr) || d.Time.IsZero() {
				t.Errorf("dead letter = %+v", d)
			}
			payload, err := events.DecodeEvent(d.Payload)
			if err != nil {
				t.Fatalf("payload: %v", err)
			}
			if payload.Meta.EventID != poison.Meta.EventID || payload.Record["total"] != 13.0 {
				t.Errorf("payload = %+v, want the poisoned event", payload)
			}
		})
	}
}

// syncBuffer collects log output from concurrent workers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(s.b.String()) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// A rule that triggers itself runs until maxHop, where the loop is cut
// with a dead letter and a warning; with noLoop it ignores its own write.
func TestLoopGuards(t *testing.T) {
	const maxHop = 4
	cases := []struct {
		name    string
		noLoop  bool
		wantN   float64
		wantDLQ bool
	}{
		{name: "cut at maxHop", noLoop: false, wantN: maxHop, wantDLQ: true},
		{name: "noLoop ignores own writes", noLoop: true, wantN: 1, wantDLQ: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, countersDef)
			set := load(t, fmt.Sprintf(`
name: loops
maxHop: %d
rules:
  - id: bump
    on: [bucket.counters.updated]
    noLoop: %t
    then:
      - update: { bucket: counters, key: "${event.key}", increment: { n: 1 } }
`, maxHop, tc.noLoop))
			var logs syncBuffer
			h.run(set, rulenode.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))

			h.insert("counters", events.Record{"id": "c"})
			h.update("counters", "c", events.Record{"go": true})
			h.settle("loops")

			wantNumber(t, h.get("counters", "c"), "n", tc.wantN)
			updates := h.events("bucket.counters.updated")
			if len(updates) != int(tc.wantN)+1 {
				t.Fatalf("%d updates, want %v", len(updates), tc.wantN+1)
			}
			root, last := updates[0], updates[len(updates)-1]
			for i, ev := range updates {
				if ev.Meta.Hop != i || ev.Meta.CorrelationID != root.Meta.CorrelationID {
					t.Errorf("update %d: hop %d correlation %s, want hop %d correlation %s",
						i, ev.Meta.Hop, ev.Meta.CorrelationID, i, root.Meta.CorrelationID)
				}
			}

			dls := h.deadLetters("loops")
			if !tc.wantDLQ {
				if len(dls) != 0 {
					t.Errorf("dead letters: %+v", dls)
				}
				return
			}
			if len(dls) != 1 {
				t.Fatalf("%d dead letters, want 1: %+v", len(dls), dls)
			}
			d := dls[0]
			if d.Reason != rulenode.ReasonMaxHop || d.RuleID != "bump" || d.Hop != maxHop ||
				d.StreamSeq != last.Meta.Seq || d.CorrelationID != root.Meta.CorrelationID {
				t.Errorf("dead letter = %+v, want max_hop of event #%d at hop %d", d, last.Meta.Seq, maxHop)
			}
			var warned bool
			for _, l := range logs.lines() {
				if l["level"] == "WARN" && strings.Contains(fmt.Sprint(l["msg"]), "maxHop") &&
					l["correlationId"] == root.Meta.CorrelationID && l["ruleSet"] == "loops" {
					warned = true
				}
			}
			if !warned {
				t.Errorf("no maxHop warning naming the correlation id and rule set in %v", logs.lines())
			}
		})
	}
}

func TestCommandID(t *testing.T) {
	long := strings.Repeat("r", 128)
	cases := []struct {
		name      string
		set, rule string
		seq       uint64
		path      string
		want      string // "" checks length and hashing only
	}{
		{name: "plain", set: "commerce", rule: "loyalty-on-ship", seq: 42, path: "0", want: "commerce/loyalty-on-ship/42/0"},
		{name: "forEach path", set: "s", rule: "r", seq: 7, path: "3.n:17.0", want: "s/r/7/3.n:17.0"},
		{name: "too long", set: strings.Repeat("s", 64), rule: long, seq: 1 << 60, path: strings.Repeat("1.", 40) + "0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := rulenode.CommandID(tc.set, tc.rule, tc.seq, tc.path)
			if got != rulenode.CommandID(tc.set, tc.rule, tc.seq, tc.path) {
				t.Fatal("not deterministic")
			}
			if tc.want != "" && got != tc.want {
				t.Errorf("CommandID = %q, want %q", got, tc.want)
			}
			if len(got) > rulenode.MaxCommandIDLen {
				t.Errorf("len %d > %d", len(got), rulenode.MaxCommandIDLen)
			}
			if other := rulenode.CommandID(tc.set, tc.rule, tc.seq, tc.path+"1"); other == got {
				t.Errorf("another path gives the same id %q", got)
			}
		})
	}
}

// awardRule returns a Go rule giving a loyalty point per order, running
// before first.
func awardRule(t *testing.T, name string, before func()) *rulenode.RuleSet {
	t.Helper()
	set, err := rulenode.NewRuleSet(name, &rulenode.Rule{
		ID: "award",
		On: []string{"bucket.orders.inserted"},
		Handler: func(ctx context.Context, ev *events.Event, env *rulenode.Env) error {
			before()
			user := ev.Record["userId"]
			_, err := env.Store.Upsert(ctx, "loyalty", user, events.Record{"userId": user}, map[string]float64{"points": 1})
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// Stopping a runner lets the event in hand finish, write and be
// acknowledged: nothing is left for another runner.
func TestStopFinishesEventsInHand(t *testing.T) {
	h := newHarness(t, ordersDef, loyaltyDef)
	started, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	set := awardRule(t, "graceful", func() {
		if calls.Add(1) == 1 {
			close(started)
		}
		<-release
	})
	r := rulenode.NewRunner(h.js, h.cl, set, fastRetries...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	h.insert("orders", events.Record{"userId": "dave", "total": 5})
	select {
	case <-started:
	case <-h.ctx().Done():
		t.Fatal("the rule never ran")
	}
	if err := r.Ready(); err != nil {
		t.Errorf("Ready while running = %v", err)
	}
	cancel()
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-h.ctx().Done():
		t.Fatal("Run did not return")
	}
	if r.Ready() == nil {
		t.Error("Ready after Run returned = nil")
	}
	// No runner is left: the consumer settles only if the event was acked.
	h.settle("graceful")
	wantNumber(t, h.get("loyalty", "dave"), "points", 1)
	if n := calls.Load(); n != 1 {
		t.Errorf("rule ran %d times, want 1", n)
	}
}

// An action that takes longer than AckWait is not redelivered meanwhile:
// the runner reports progress.
func TestLongActionIsNotRedelivered(t *testing.T) {
	const ackWait = 150 * time.Millisecond
	h := newHarness(t, ordersDef, loyaltyDef)
	var calls atomic.Int32
	set := awardRule(t, "slow", func() {
		calls.Add(1)
		<-time.After(4 * ackWait) // the slow work itself, not a synchronisation
	})
	h.run(set, rulenode.WithAckWait(ackWait))

	h.insert("orders", events.Record{"userId": "erin", "total": 5})
	h.settle("slow")
	wantNumber(t, h.get("loyalty", "erin"), "points", 1)
	if n := calls.Load(); n != 1 {
		t.Errorf("rule ran %d times, want 1 (redelivered while working)", n)
	}
}
