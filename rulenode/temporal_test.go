package rulenode_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
	"github.com/storeloop/storeloop/storenode"
)

// flagsDef records temporal firings: a double firing with two command ids
// would insert two records.
var flagsDef = events.BucketDef{
	Bucket: "flags",
	Key:    "id",
	Schema: map[string]events.FieldDef{
		"id":   {Type: events.TypeNumber, Generated: events.GenAutoincrement},
		"what": {Type: events.TypeString, Required: true},
		"n":    {Type: events.TypeNumber},
	},
}

const notShippedRules = `
name: late
rules:
  - id: not-shipped
    absence:
      after: { on: bucket.orders.updated, when: "event.newRecord.status == 'confirmed'" }
      expect: { on: bucket.orders.updated, when: "event.newRecord.status == 'shipped'" }
      key: ${event.key}
      within: WITHIN
    then:
      - insert: { bucket: flags, record: { what: "late ${event.key}", n: "${size(match)}" } }
`

func loadYAML(t *testing.T, src string) *rulenode.RuleSet {
	t.Helper()
	rs, err := rulenode.Load(strings.NewReader(src), "rules.yaml")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return rs
}

// flags returns the what of every flag, sorted.
func (h *harness) flags() []string {
	h.t.Helper()
	recs, err := h.cl.Bucket("flags").Query(h.ctx(), nil)
	if err != nil {
		h.t.Fatalf("query flags: %v", err)
	}
	var out []string
	for _, r := range recs.Records {
		out = append(out, r["what"].(string))
	}
	slices.Sort(out)
	return out
}

// waitFlags waits (generously) until the flags are exactly want.
func (h *harness) waitFlags(want ...string) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := h.flags()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("flags = %q, want %q", got, want)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// temporalState returns the state of rule's match key, or nil.
func (h *harness) temporalState(set, rule, key string) map[string]any {
	h.t.Helper()
	kv, err := h.js.KeyValue(h.ctx(), events.TemporalBucket)
	if err != nil {
		h.t.Fatalf("temporal bucket: %v", err)
	}
	e, err := kv.Get(h.ctx(), rulenode.TemporalKey(set, rule, key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		h.t.Fatalf("temporal state: %v", err)
	}
	var st map[string]any
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		h.t.Fatalf("temporal state: %v", err)
	}
	return st
}

// waitState waits until the state of rule's match key satisfies ok.
func (h *harness) waitState(set, rule, key string, what string, ok func(map[string]any) bool) map[string]any {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := h.temporalState(set, rule, key)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("temporal state of %s %s = %v, want %s", rule, key, st, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// waitDeadLetters waits (generously) until set has at least n dead
// letters and returns them.
func (h *harness) waitDeadLetters(set string, n int) []rulenode.DeadLetter {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		dls := h.deadLetters(set)
		if len(dls) >= n || time.Now().After(deadline) {
			return dls
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

func pending(st map[string]any) bool { return st != nil && st["deadline"] != nil }
func cleared(st map[string]any) bool {
	return st != nil && st["deadline"] == nil && st["match"] == nil && len(st["seen"].([]any)) > 0
}

// startStop runs a runner until the returned stop, which waits for Run.
func (h *harness) startStop(set *rulenode.RuleSet, opts ...rulenode.RunnerOption) (stop func()) {
	h.t.Helper()
	r := rulenode.NewRunner(h.js, h.cl, set, append(cloneOpts(fastRetries), opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("Run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			h.t.Errorf("runner did not stop")
		}
	}
}

// newClockedHarness is a harness whose store node goes by clock: the
// events' times, and so the temporal windows and deadlines, move only
// when the test advances it (runners get rulenode.WithClock(clock)).
func newClockedHarness(t *testing.T, clock *manualClock, defs ...events.BucketDef) *harness {
	t.Helper()
	return newHarnessWith(t, []storenode.Option{storenode.WithClock(clock.Now)}, defs...)
}

// An order confirmed and not shipped within the window is flagged once,
// at the deadline and not a millisecond before; one shipped in time is
// not: its state is cancelled, with no deadline left for any runner to
// fire.
func TestTemporalAbsence(t *testing.T) {
	clock := newManualClock()
	h := newClockedHarness(t, clock, ordersDef, flagsDef)
	h.run(loadYAML(t, strings.Replace(notShippedRules, "WITHIN", "3s", 1)), rulenode.WithClock(clock))
	shipped := h.insert("orders", events.Record{"userId": "u", "total": 1.0})["id"]
	late := h.insert("orders", events.Record{"userId": "u", "total": 1.0})["id"]

	h.update("orders", shipped, events.Record{"status": "confirmed"})
	h.update("orders", shipped, events.Record{"status": "shipped"})
	h.update("orders", late, events.Record{"status": "confirmed"})
	h.settle("late")
	h.waitState("late", "not-shipped", "2", "pending", pending)

	clock.Advance(3*time.Second - time.Millisecond)
	h.settle("late")
	if got := h.flags(); len(got) != 0 {
		t.Fatalf("flags a millisecond before the deadline = %q, want none", got)
	}
	if st := h.temporalState("late", "not-shipped", "2"); !pending(st) {
		t.Fatalf("state a millisecond before the deadline = %v, want pending", st)
	}
	clock.Advance(time.Millisecond)
	h.waitFlags("late 2")
	if st := h.waitState("late", "not-shipped", "1", "cancelled", cleared); len(st["seen"].([]any)) != 2 {
		t.Errorf("state of the shipped order = %v, want both events seen", st)
	}
	h.waitState("late", "not-shipped", "2", "cleared after firing", cleared)
	h.settle("late")
	h.waitFlags("late 2")
	if got := h.get("flags", 1.0)["n"]; got != 1.0 {
		t.Errorf("size(match) = %v, want 1 (the after event)", got)
	}
}

// A pending deadline is in the bucket, not in a runner: the runner that
// saw the after event stops before the deadline, two others start, and
// the order is flagged exactly once.
func TestTemporalAbsenceSurvivesRunnerRestart(t *testing.T) {
	clock := newManualClock()
	h := newClockedHarness(t, clock, ordersDef, flagsDef)
	set := func() *rulenode.RuleSet { return loadYAML(t, strings.Replace(notShippedRules, "WITHIN", "5s", 1)) }
	stop := h.startStop(set(), rulenode.WithClock(clock))
	id := h.insert("orders", events.Record{"userId": "u", "total": 1.0})["id"]
	h.update("orders", id, events.Record{"status": "confirmed"})
	h.waitState("late", "not-shipped", "1", "pending", pending)
	stop()
	if got := h.flags(); len(got) != 0 {
		t.Fatalf("flags before the deadline = %q, want none", got)
	}

	clock.Advance(5 * time.Second)
	h.run(set(), rulenode.WithClock(clock))
	h.run(set(), rulenode.WithClock(clock))
	h.waitState("late", "not-shipped", "1", "cleared after firing", cleared)
	h.waitFlags("late 1")
}

// N events of a key within a sliding window fire once, on the Nth; events
// older than the window do not count.
func TestTemporalCount(t *testing.T) {
	clock := newManualClock()
	h := newClockedHarness(t, clock, ordersDef, flagsDef)
	h.run(loadYAML(t, `
name: bursts
rules:
  - id: three-orders
    count:
      on: bucket.orders.inserted
      key: ${event.record.userId}
      atLeast: 3
      within: 3s
    then:
      - insert: { bucket: flags, record: { what: "burst ${event.record.userId}", n: "${size(match)}" } }
`))
	for _, u := range []string{"a", "a", "b", "a", "b"} {
		h.insert("orders", events.Record{"userId": u, "total": 1.0})
	}
	// Orders of different records run concurrently: whichever is
	// applied third completes the match.
	h.waitFlags("burst a")
	if got := h.get("flags", 1.0)["n"]; got != 3.0 {
		t.Errorf("size(match) = %v, want 3", got)
	}

	// c: two orders, then the window passes: the third starts afresh.
	h.insert("orders", events.Record{"userId": "c", "total": 1.0})
	h.insert("orders", events.Record{"userId": "c", "total": 1.0})
	h.settle("bursts")
	clock.Advance(3 * time.Second) // the store's clock: the next order's time
	h.insert("orders", events.Record{"userId": "c", "total": 1.0})
	h.settle("bursts")
	h.waitFlags("burst a")
	st := h.temporalState("bursts", "three-orders", "c")
	if m, _ := st["match"].([]any); len(m) != 1 {
		t.Errorf("c's match = %v, want only the order after the window", st["match"])
	}
}

// Steps in order within the window fire once with the matched events; a
// sequence left half-way does not.
func TestTemporalSequence(t *testing.T) {
	h := newHarness(t, ordersDef, flagsDef)
	h.run(loadYAML(t, `
name: flow
rules:
  - id: paid-then-confirmed
    sequence:
      steps:
        - { on: bucket.orders.inserted }
        - { on: bucket.orders.updated, when: "event.newRecord.status == 'paid'" }
        - { on: bucket.orders.updated, when: "event.newRecord.status == 'confirmed'" }
      key: ${event.key}
      within: 1m
    when: match[0].record.total >= 10
    then:
      - insert: { bucket: flags, record: { what: "flow ${event.key} ${match[1].newRecord.status}", n: "${size(match)}" } }
`))
	full := h.insert("orders", events.Record{"userId": "u", "total": 10.0})["id"]
	half := h.insert("orders", events.Record{"userId": "u", "total": 10.0})["id"]
	small := h.insert("orders", events.Record{"userId": "u", "total": 1.0})["id"]
	for _, id := range []any{full, small} {
		h.update("orders", id, events.Record{"status": "paid"})
		h.update("orders", id, events.Record{"status": "confirmed"})
	}
	h.update("orders", half, events.Record{"status": "paid"})
	h.settle("flow")
	h.waitFlags("flow 1 paid")
	if got := h.get("flags", 1.0)["n"]; got != 3.0 {
		t.Errorf("size(match) = %v, want 3", got)
	}
	if m, _ := h.temporalState("flow", "paid-then-confirmed", "2")["buffer"].([]any); len(m) != 2 {
		t.Errorf("half-way buffer = %v, want 2 steps", m)
	}
}

// Two runners of the set share the work: the steps of one order are
// handled by either, in whatever order they finish, and every order's
// sequence fires exactly once (one flag each).
func TestTemporalSequenceTwoRunners(t *testing.T) {
	const orders = 30
	h := newHarness(t, ordersDef, flagsDef)
	set := func() *rulenode.RuleSet {
		return loadYAML(t, `
name: flow
rules:
  - id: paid-then-confirmed
    sequence:
      steps:
        - { on: bucket.orders.inserted }
        - { on: bucket.orders.updated, when: "event.newRecord.status == 'paid'" }
        - { on: bucket.orders.updated, when: "event.newRecord.status == 'confirmed'" }
      key: ${event.key}
      within: 1m
    then:
      - insert: { bucket: flags, record: { what: "flow ${event.key}", n: "${size(match)}" } }
`)
	}
	h.run(set(), rulenode.WithConcurrency(4))
	h.run(set(), rulenode.WithConcurrency(4))
	var want []string
	for range orders {
		id := h.insert("orders", events.Record{"userId": "u", "total": 1.0})["id"]
		h.update("orders", id, events.Record{"status": "paid"})
		h.update("orders", id, events.Record{"status": "confirmed"})
		want = append(want, fmt.Sprint("flow ", id))
	}
	slices.Sort(want)
	h.settle("flow")
	h.waitFlags(want...)
}

// Bad temporal triggers are validation errors with their lines.
func TestTemporalLoadErrors(t *testing.T) {
	_, err := rulenode.Load(strings.NewReader(`name: bad
rules:
  - id: r
    on: [bucket.a.inserted]
    count: { on: bucket.a.inserted, key: "${event.key}", atLeast: 0, within: soon }
    then: [ { log: { message: x } } ]
  - id: s
    sequence: { steps: [ { on: bucket.a.inserted } ], within: 1s }
    then: [ { log: { message: x } } ]
  - id: t
    absence: { after: { on: x }, expect: { on: y, when: "event.nope(" }, key: k, within: 1s }
    sequence: { steps: [ { on: a }, { on: b } ], key: k, within: 1s }
    then: [ { log: { message: "${match[0].key}" } } ]
  - id: u
    on: [bucket.a.inserted]
    when: size(match) > 1
    then: [ { log: { message: x } } ]
`), "bad.yaml")
	if !errors.Is(err, events.ErrValidation) {
		t.Fatalf("err = %v, want validation", err)
	}
	want := []string{
		`bad.yaml:4: rule "r": on: a rule with a count trigger has no on: its steps say which events it sees`,
		`bad.yaml:5: rule "r": count.atLeast: want a whole number from 1 to 1000`,
		`bad.yaml:5: rule "r": count.within: want a duration from 1ms to 720h0m0s (like 2s, 30m), got "soon"`,
		`bad.yaml:8: rule "s": sequence.steps: want a list of 2 to 16 steps`,
		`bad.yaml:8: rule "s": sequence.key: required: the ${} expression that groups events into matches`,
		`bad.yaml:12: rule "t": sequence: a rule has one trigger: absence and sequence exclude each other`,
		`bad.yaml:11: rule "t": absence.expect.when: column 12: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', ')', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}`,
		`bad.yaml:16: rule "u": when: column 6: undeclared reference to 'match' (did you mean 'matches'?)`,
	}
	var errs rulenode.LoadErrors
	if !errors.As(err, &errs) {
		t.Fatalf("err = %T, want LoadErrors", err)
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A deadline whose firing the store refuses is dead-lettered (reason
// rejected, the after event's sequence) and cleared, not retried forever.
func TestTemporalAbsenceRejectedFiring(t *testing.T) {
	clock := newManualClock()
	h := newClockedHarness(t, clock, ordersDef, flagsDef)
	h.run(loadYAML(t, strings.Replace(strings.Replace(notShippedRules, "WITHIN", "1s", 1), `n: "${size(match)}"`, `n: "not a number"`, 1)), rulenode.WithClock(clock))
	id := h.insert("orders", events.Record{"userId": "u", "total": 1.0})["id"]
	h.update("orders", id, events.Record{"status": "confirmed"})
	h.settle("late")
	clock.Advance(time.Second)
	h.waitState("late", "not-shipped", "1", "cleared after the dead letter", cleared)
	// The firing is cleared before its completing event is dead-lettered.
	dls := h.waitDeadLetters("late", 1)
	if len(dls) != 1 || dls[0].Reason != rulenode.ReasonRejected || dls[0].RuleID != "not-shipped" ||
		dls[0].StreamSeq != h.events("bucket.orders.updated")[0].Meta.Seq || !strings.Contains(dls[0].Error, "validation") {
		t.Fatalf("dead letters = %+v, want one, rejected, of the confirming event", dls)
	}
	if got := h.flags(); len(got) != 0 {
		t.Errorf("flags = %q, want none", got)
	}
}

// A count whose window holds more large events than the temporal bucket
// takes in one value (the NATS max payload) does not retry a write that
// cannot succeed: each event that would grow the state past the limit is
// dead-lettered on its first delivery (reason rejected, the limit named),
// and the events that fit stay counted.
func TestTemporalStateTooLarge(t *testing.T) {
	const n = 8 // of 200 KiB each: past the default 1 MB max payload at the 5th
	h := newHarness(t, ordersDef, flagsDef)
	h.run(loadYAML(t, `
name: big
rules:
  - id: many
    count: { on: bucket.orders.inserted, key: "${event.record.userId}", atLeast: 1000, within: 1h }
    then:
      - insert: { bucket: flags, record: { what: "many" } }
`), rulenode.WithConcurrency(1)) // one key: concurrent workers would only retry each other's megabyte writes
	sku := strings.Repeat("x", 200<<10)
	for range n {
		h.insert("orders", events.Record{"userId": "u", "total": 1.0, "sku": sku})
	}
	// Megabyte states are slow to decode under the race detector: a
	// generous deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := h.cl.Settle(ctx, client.SettleRuleSets("big")); err != nil {
		t.Fatalf("settle: %v", err)
	}
	dls := h.deadLetters("big")
	kept, _ := h.temporalState("big", "many", "u")["match"].([]any)
	if len(dls) == 0 || len(kept) == 0 || len(kept)+len(dls) != n {
		t.Fatalf("%d events counted, %d dead-lettered; want both, %d in all", len(kept), len(dls), n)
	}
	for _, dl := range dls {
		if dl.Reason != rulenode.ReasonRejected || dl.RuleID != "many" || dl.Deliveries != 1 || !strings.Contains(dl.Error, "over the limit of") {
			t.Fatalf("dead letter %+v, want rejected on the first delivery, naming the limit", dl)
		}
	}
	if got := h.flags(); len(got) != 0 {
		t.Errorf("flags = %q, want none", got)
	}
}
