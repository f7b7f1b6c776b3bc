package examples_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/examples"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/rulenode"
)

// scenario is one example running on a real store node, with its buckets
// defined and its rules running in this process.
type scenario struct {
	t   *testing.T
	ctx context.Context
	cl  *client.Client
	js  jetstream.JetStream
	sc  *examples.Scenario
	url string
}

// start loads the example name, starts a store, defines the buckets and
// runs the rules until the test ends.
func start(t *testing.T, name string, opts ...rulenode.RunnerOption) *scenario {
	t.Helper()
	s := startStore(t, name)
	s.runRules(opts...)
	return s
}

// startStore is start without the rules: events wait in the stream until
// runRules.
func startStore(t *testing.T, name string) *scenario {
	t.Helper()
	s, _ := startScenario(t, name, 15*time.Second, nil)
	return s
}

// startScenario starts a store, with the scenario's bucket definitions
// adjusted first when adjust is not nil, and defines them; the scenario's
// context ends after timeout.
func startScenario(t *testing.T, name string, timeout time.Duration, adjust func(*events.BucketDef)) (*scenario, *storetest.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	sc, err := examples.Load(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	if adjust != nil {
		for i := range sc.Buckets {
			adjust(&sc.Buckets[i])
		}
	}
	st := storetest.StartStore(t)
	cl, err := client.Connect(st.URL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(cl.Close)
	if err := sc.Define(ctx, cl); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(st.Conn)
	if err != nil {
		t.Fatal(err)
	}
	return &scenario{t: t, ctx: ctx, cl: cl, js: js, sc: sc, url: st.URL}, st
}

// runRules runs the scenario's rules until the test ends.
func (s *scenario) runRules(opts ...rulenode.RunnerOption) {
	s.t.Helper()
	rules, err := examples.RunRules(s.ctx, s.url, s.sc.Rules, opts...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() {
		if err := rules.Stop(); err != nil {
			s.t.Errorf("rule set %s: %v", s.sc.Rules.Name, err)
		}
	})
}

func (s *scenario) insert(bucket string, rec events.Record) events.Record {
	s.t.Helper()
	out, err := s.cl.Bucket(bucket).Insert(s.ctx, rec)
	if err != nil {
		s.t.Fatalf("insert %s %v: %v", bucket, rec, err)
	}
	return out
}

func (s *scenario) update(bucket string, key any, changes events.Record, opts ...client.UpdateOption) {
	s.t.Helper()
	if _, err := s.cl.Bucket(bucket).Update(s.ctx, key, changes, opts...); err != nil {
		s.t.Fatalf("update %s %v: %v", bucket, key, err)
	}
}

func (s *scenario) delete(bucket string, key any) {
	s.t.Helper()
	if ok, err := s.cl.Bucket(bucket).Delete(s.ctx, key); err != nil || !ok {
		s.t.Fatalf("delete %s %v: %v, %v", bucket, key, ok, err)
	}
}

// settle waits until the scenario's rules have run out of work.
func (s *scenario) settle() {
	s.t.Helper()
	if err := s.cl.Settle(s.ctx, client.SettleRuleSets(s.sc.Rules.Name)); err != nil {
		s.t.Fatalf("settle: %v", err)
	}
}

// records returns every record of bucket matching where, in key order,
// with _createdAt, _updatedAt and the generated timestamp fields removed
// after checking that they are set.
func (s *scenario) records(bucket string, where events.Where, stamps ...string) []events.Record {
	s.t.Helper()
	recs, err := s.cl.Bucket(bucket).Where(s.ctx, where)
	if err != nil {
		s.t.Fatalf("query %s: %v", bucket, err)
	}
	for _, r := range recs {
		for _, f := range append([]string{events.FieldCreatedAt, events.FieldUpdatedAt}, stamps...) {
			if ms, ok := r[f].(float64); !ok || ms <= 0 {
				s.t.Errorf("%s record %v: %s is not a timestamp", bucket, r, f)
			}
			delete(r, f)
		}
	}
	return recs
}

// events returns the events of the stream matching filter, in order.
func (s *scenario) events(filter string) []*events.Event {
	s.t.Helper()
	var out []*events.Event
	err := s.cl.History(s.ctx, filter, func(ev *events.Event, _ nats.Header) error {
		out = append(out, ev)
		return nil
	})
	if err != nil {
		s.t.Fatalf("history %s: %v", filter, err)
	}
	return out
}

func (s *scenario) deadLetters() []rulenode.DeadLetter {
	s.t.Helper()
	dls, err := examples.DeadLetters(s.ctx, s.js, s.sc.Rules.Name)
	if err != nil {
		s.t.Fatal(err)
	}
	return dls
}

// noDeadLetters fails the test if the rule set gave up on any event.
func (s *scenario) noDeadLetters() {
	s.t.Helper()
	if dls := s.deadLetters(); len(dls) != 0 {
		s.t.Errorf("dead letters: %+v", dls)
	}
}

func wantRecords(t *testing.T, what string, got, want []events.Record) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// Every example loads, and its buckets name every bucket its rules touch.
func TestLoadAll(t *testing.T) {
	dirs, err := fsDirs()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"archive", "cyclic", "ecommerce", "loyalty", "reorder", "runaway", "sessions", "shipping", "userstats"}
	if !slices.Equal(dirs, want) {
		t.Fatalf("example directories = %v, want %v", dirs, want)
	}
	for _, name := range dirs {
		t.Run(name, func(t *testing.T) {
			sc, err := examples.Load(name)
			if err != nil {
				t.Fatal(err)
			}
			if sc.Rules.Name != name {
				t.Errorf("rule set %q, want the directory name %q", sc.Rules.Name, name)
			}
			defined := map[string]bool{}
			for _, d := range sc.Buckets {
				defined[d.Bucket] = true
			}
			for _, subj := range sc.Rules.Subjects() {
				if b := strings.Split(subj, ".")[1]; b != "*" && !defined[b] {
					t.Errorf("rules read bucket %s, not in buckets.yaml", b)
				}
			}
			for _, r := range sc.Rules.Rules {
				for _, a := range flatten(r.Then) {
					if a.Bucket != "" && !defined[a.Bucket] {
						t.Errorf("rule %s uses bucket %s, not in buckets.yaml", r.ID, a.Bucket)
					}
				}
			}
		})
	}
}

func fsDirs() ([]string, error) {
	entries, err := fs.ReadDir(examples.FS, ".")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func flatten(acts []*rulenode.Action) []*rulenode.Action {
	var out []*rulenode.Action
	for _, a := range acts {
		out = append(append(append(out, a), flatten(a.Ops)...), flatten(a.Do)...)
	}
	return out
}

// Seed "Loyalty Points on Order Shipment": alice's order of 250, paid,
// then shipped, gives her 25 points — once.
func TestLoyalty(t *testing.T) {
	s := start(t, "loyalty")
	order := s.insert("orders", events.Record{"userId": "alice", "total": 250.0})
	s.update("orders", order["id"], events.Record{"status": "paid"})
	s.update("orders", order["id"], events.Record{"status": "shipped"})
	// A later change of a shipped order is not a shipment.
	s.update("orders", order["id"], events.Record{"total": 260.0})
	s.settle()

	wantRecords(t, "loyalty", s.records("loyalty", nil), []events.Record{
		{"userId": "alice", "points": 25.0, events.FieldVersion: 1.0},
	})
	if n := len(s.events("bucket.loyalty.>")); n != 1 {
		t.Errorf("%d loyalty events, want 1", n)
	}
	s.noDeadLetters()
}

// Seed "Order Statistics per User": every order insert updates the user's
// orderCount, totalSpent and lastOrder (the order event's time).
func TestUserStats(t *testing.T) {
	// One worker: events in stream order, so lastOrder is the latest order.
	s := start(t, "userstats", rulenode.WithConcurrency(1))
	for _, o := range []events.Record{
		{"userId": "alice", "total": 100.0},
		{"userId": "alice", "total": 250.0},
		{"userId": "bob", "total": 75.0},
		{"userId": "alice", "total": 40.0},
	} {
		s.insert("orders", o)
	}
	s.settle()

	lastOrder := map[string]float64{}
	for _, ev := range s.events("bucket.orders.inserted") {
		lastOrder[ev.Record["userId"].(string)] = float64(ev.Meta.Time)
	}
	wantRecords(t, "userStats", s.records("userStats", nil), []events.Record{
		{"userId": "alice", "orderCount": 3.0, "totalSpent": 390.0, "lastOrder": lastOrder["alice"], events.FieldVersion: 3.0},
		{"userId": "bob", "orderCount": 1.0, "totalSpent": 75.0, "lastOrder": lastOrder["bob"], events.FieldVersion: 1.0},
	})
	s.noDeadLetters()
}

// Seed "Cross-Bucket Consistency with Transactions": stock falling below
// 10 flags the item and creates one reorder request, atomically; the flag
// stops the rule from firing again, for its own write and later sales.
func TestReorder(t *testing.T) {
	s := start(t, "reorder")
	s.insert("inventory", events.Record{"sku": "WIDGET", "quantity": 20.0})
	s.insert("inventory", events.Record{"sku": "GADGET", "quantity": 50.0})
	// Each sale settles before the next, so that every version below is
	// known; sales racing the rule are in reorder_test.go.
	for _, sale := range []struct {
		sku string
		qty float64
	}{{"WIDGET", 6}, {"WIDGET", 6}, {"GADGET", 5}, {"WIDGET", 3}, {"WIDGET", 2}} {
		s.update("inventory", sale.sku, nil, client.Increment(map[string]float64{"quantity": -sale.qty}))
		s.settle()
	}

	wantRecords(t, "reorderRequests", s.records("reorderRequests", nil, "createdAt"), []events.Record{
		{"id": 1.0, "sku": "WIDGET", "quantity": 100.0, events.FieldVersion: 1.0},
	})
	// WIDGET: inserted at 20, sold to 14 and 8, flagged, sold to 5 and 3.
	wantRecords(t, "inventory", s.records("inventory", nil), []events.Record{
		{"sku": "GADGET", "quantity": 45.0, "reorder": false, events.FieldVersion: 2.0},
		{"sku": "WIDGET", "quantity": 3.0, "reorder": true, events.FieldVersion: 6.0},
	})

	// The flag and the request are one transaction caused by the sale to 8.
	var tx []*events.Event
	for _, ev := range s.events("bucket.>") {
		if ev.Meta.TxID != "" {
			tx = append(tx, ev)
		}
	}
	if len(tx) != 2 || tx[0].Meta.TxID != tx[1].Meta.TxID || tx[0].Meta.RuleID != "reorder-on-low-stock" ||
		tx[0].Meta.Hop != 1 || tx[0].Bucket != "inventory" || tx[1].Bucket != "reorderRequests" {
		t.Errorf("transaction events = %s, want the inventory flag and the request in one tx at hop 1", dump(tx))
	}
	s.noDeadLetters()
}

// Seed exercise: deleting a user archives her orders and clears her
// session in one transaction; nobody else's data changes.
func TestArchive(t *testing.T) {
	s := start(t, "archive")
	alice := s.insert("users", events.Record{"name": "Alice"})["id"].(string)
	bob := s.insert("users", events.Record{"name": "Bob"})["id"].(string)
	s.insert("orders", events.Record{"userId": alice, "total": 100.0})
	s.insert("orders", events.Record{"userId": bob, "total": 30.0})
	s.insert("orders", events.Record{"userId": alice, "total": 250.0})
	s.insert("sessions", events.Record{"userId": alice, "token": "tok_abc123"})
	s.insert("sessions", events.Record{"userId": bob, "token": "tok_bob"})

	s.delete("users", alice)
	s.settle()

	wantRecords(t, "alice's orders", s.records("orders", events.Where{"userId": alice}), nil)
	wantRecords(t, "alice's archived orders", s.records("archivedOrders", events.Where{"userId": alice}, "archivedAt"), []events.Record{
		{"id": 1.0, "userId": alice, "total": 100.0, events.FieldVersion: 1.0},
		{"id": 2.0, "userId": alice, "total": 250.0, events.FieldVersion: 1.0},
	})
	wantRecords(t, "sessions", s.records("sessions", nil), []events.Record{
		{"userId": bob, "token": "tok_bob", events.FieldVersion: 1.0},
	})
	wantRecords(t, "orders", s.records("orders", nil), []events.Record{
		{"id": 2.0, "userId": bob, "total": 30.0, events.FieldVersion: 1.0},
	})

	// Five writes, one transaction, caused by the user's deletion.
	deleted := s.events("bucket.users.deleted")
	if len(deleted) != 1 {
		t.Fatalf("%d user deletions, want 1", len(deleted))
	}
	var tx []string
	txIDs := map[string]bool{}
	for _, ev := range s.events("bucket.>") {
		if ev.Meta.TxID == "" {
			continue
		}
		tx = append(tx, string(ev.Type)+" "+ev.Bucket)
		txIDs[ev.Meta.TxID] = true
		if ev.Meta.CausationID != deleted[0].Meta.EventID || ev.Meta.Hop != 1 || ev.Meta.RuleID != "archive-on-user-delete" {
			t.Errorf("tx event %s, want it caused by the deletion (hop 1, the archive rule)", dump([]*events.Event{ev}))
		}
	}
	slices.Sort(tx)
	wantTx := []string{"deleted orders", "deleted orders", "deleted sessions", "inserted archivedOrders", "inserted archivedOrders"}
	if !slices.Equal(tx, wantTx) || len(txIDs) != 1 {
		t.Errorf("transaction writes = %v in %d transactions, want %v in one", tx, len(txIDs), wantTx)
	}
	s.noDeadLetters()
}

// A loop with no guard: the rule set's maxHop (5) cuts it, the counter
// stops at 5 and exactly one dead letter says why.
func TestCyclic(t *testing.T) {
	s := start(t, "cyclic")
	if s.sc.Rules.MaxHop != 5 {
		t.Fatalf("maxHop = %d, want 5", s.sc.Rules.MaxHop)
	}
	s.insert("counters", events.Record{"id": "c"})
	s.update("counters", "c", events.Record{"start": true})
	s.settle()

	wantRecords(t, "counters", s.records("counters", nil), []events.Record{
		{"id": "c", "n": 5.0, "start": true, events.FieldVersion: 7.0},
	})
	updates := s.events("bucket.counters.updated")
	if len(updates) != 6 {
		t.Fatalf("%d updates, want 6 (hops 0 to 5)", len(updates))
	}
	root, last := updates[0], updates[5]
	for i, ev := range updates {
		if ev.Meta.Hop != i || ev.Meta.CorrelationID != root.Meta.CorrelationID {
			t.Errorf("update %d: hop %d, correlation %s; want hop %d, correlation %s", i, ev.Meta.Hop, ev.Meta.CorrelationID, i, root.Meta.CorrelationID)
		}
	}

	dls := s.deadLetters()
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1: %+v", len(dls), dls)
	}
	d := dls[0]
	if d.RuleSet != "cyclic" || d.Reason != rulenode.ReasonMaxHop || d.RuleID != "bump" || d.Hop != 5 ||
		d.Subject != "bucket.counters.updated" || d.StreamSeq != last.Meta.Seq || d.EventID != last.Meta.EventID ||
		d.CorrelationID != root.Meta.CorrelationID {
		t.Errorf("dead letter = %+v, want max_hop of bump on event #%d (hop 5)", d, last.Meta.Seq)
	}
	var payload events.Event
	if err := json.Unmarshal(d.Payload, &payload); err != nil || payload.Meta.EventID != last.Meta.EventID || payload.NewRecord["n"] != 5.0 {
		t.Errorf("dead letter payload %s (%v), want the hop-5 event", d.Payload, err)
	}
}

// The seed's complete example, from examples/ecommerce.
func TestEcommerce(t *testing.T) {
	s := start(t, "ecommerce")
	s.insert("inventory", events.Record{"sku": "LAPTOP-1", "name": "Pro Laptop", "quantity": 50.0})
	s.insert("inventory", events.Record{"sku": "MOUSE-1", "name": "Wireless Mouse", "quantity": 200.0})
	o1 := s.insert("orders", events.Record{"userId": "alice", "sku": "LAPTOP-1", "qty": 2.0, "total": 2598.0})["id"]
	o2 := s.insert("orders", events.Record{"userId": "alice", "sku": "MOUSE-1", "qty": 5.0, "total": 150.0})["id"]
	for _, status := range []string{"confirmed", "shipped"} {
		s.update("orders", o1, events.Record{"status": status})
		s.update("orders", o2, events.Record{"status": status})
	}
	s.settle()

	wantRecords(t, "inventory", s.records("inventory", nil), []events.Record{
		{"sku": "LAPTOP-1", "name": "Pro Laptop", "quantity": 48.0, events.FieldVersion: 2.0},
		{"sku": "MOUSE-1", "name": "Wireless Mouse", "quantity": 195.0, events.FieldVersion: 2.0},
	})
	wantRecords(t, "loyalty", s.records("loyalty", nil), []events.Record{
		{"userId": "alice", "points": 274.0, events.FieldVersion: 2.0},
	})
	s.noDeadLetters()
}

func dump(evs []*events.Event) string {
	b, _ := json.Marshal(evs)
	return string(b)
}
