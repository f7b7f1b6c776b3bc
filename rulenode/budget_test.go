package rulenode_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
)

// idDef is a bucket keyed by a string id, with a number n.
func idDef(bucket string) events.BucketDef {
	return events.BucketDef{Bucket: bucket, Key: "id", Schema: map[string]events.FieldDef{
		"id": {Type: events.TypeString, Required: true},
		"n":  {Type: events.TypeNumber},
	}}
}

// fanOutRules: on each announcement, notify writes a note per user (a
// fan-out capped at 3 writes per event) and audit one audit record.
const fanOutRules = `
name: fanout
rules:
  - id: notify
    on: [bucket.announcements.inserted]
    maxWritesPerEvent: 3
    then:
      - forEach:
          query: { bucket: users }
          as: u
          key: id
          do:
            - insert: { bucket: notes, record: { id: "${event.record.id + '-' + u.id}" } }
  - id: audit
    on: [bucket.announcements.inserted]
    then:
      - insert: { bucket: audit, record: { id: "${event.record.id}" } }
`

func (h *harness) count(bucket string) int {
	h.t.Helper()
	n, err := h.cl.Bucket(bucket).Count(h.ctx(), nil)
	if err != nil {
		h.t.Fatalf("count %s: %v", bucket, err)
	}
	return n
}

// wantBudgetLetters checks that the dead letters of set are exactly one
// per event at seqs, reason budget, for rule.
func (h *harness) wantBudgetLetters(set, rule string, seqs ...uint64) {
	h.t.Helper()
	dls := h.deadLetters(set)
	if len(dls) != len(seqs) {
		h.t.Fatalf("%d dead letters, want %d: %+v", len(dls), len(seqs), dls)
	}
	for i, d := range dls {
		if d.Reason != rulenode.ReasonBudget || d.RuleID != rule || d.StreamSeq != seqs[i] || d.Deliveries != 1 {
			h.t.Errorf("dead letter %d = %+v, want reason budget of rule %s for event #%d, on its first delivery", i, d, rule, seqs[i])
		}
	}
}

// seqOf is the stream sequence of the event of bucket and key.
func (h *harness) seqOf(bucket, key string) uint64 {
	h.t.Helper()
	for _, ev := range h.events("bucket." + bucket + ".inserted") {
		if ev.Key == key {
			return ev.Meta.Seq
		}
	}
	h.t.Fatalf("no insert of %s %s", bucket, key)
	return 0
}

// A fan-out over more records than maxWritesPerEvent writes nothing for
// that event and dead-letters it at once (reason budget); within the cap
// it writes them all, and the set's other rule acts on every event.
func TestBudgetFanOutCap(t *testing.T) {
	h := newHarness(t, idDef("users"), idDef("notes"), idDef("announcements"), idDef("audit"))
	h.run(load(t, fanOutRules))
	for _, u := range []string{"u1", "u2", "u3"} {
		h.insert("users", events.Record{"id": u})
	}
	h.insert("announcements", events.Record{"id": "a1"})
	h.settle("fanout")
	if n := h.count("notes"); n != 3 {
		t.Fatalf("%d notes after a fan-out of 3, want 3", n)
	}

	h.insert("users", events.Record{"id": "u4"})
	h.insert("announcements", events.Record{"id": "a2"})
	h.settle("fanout")
	if n := h.count("notes"); n != 3 {
		t.Errorf("%d notes after a fan-out of 4 over the cap of 3, want still 3", n)
	}
	if n := h.count("audit"); n != 2 {
		t.Errorf("%d audit records, want 2 (one per announcement)", n)
	}
	h.wantBudgetLetters("fanout", "notify", h.seqOf("announcements", "a2"))
}

// A cascade is stopped at maxCascadeWrites rule writes under its
// correlation id, wherever it is: the outside write does not count, and
// another correlation id has its own count.
func TestBudgetCascadeCap(t *testing.T) {
	h := newHarness(t, countersDef)
	h.run(load(t, `
name: cascade
maxHop: 100
maxCascadeWrites: 5
rules:
  - id: bump
    on: [bucket.counters.updated]
    then:
      - update: { bucket: counters, key: "${event.key}", increment: { n: 1 } }
`))
	h.insert("counters", events.Record{"id": "c"})
	for i, corr := range []string{"first", "second"} {
		ctx := client.WithCause(h.ctx(), client.CausalContext{CorrelationID: corr})
		if _, err := h.cl.Bucket("counters").Update(ctx, "c", events.Record{"go": corr == "first"}); err != nil {
			t.Fatal(err)
		}
		h.settle("cascade")
		wantNumber(t, h.get("counters", "c"), "n", float64(5*(i+1)))
	}

	// The sixth rule write of each cascade was refused: its cause, the
	// fifth, at hop 5, is the dead letter.
	var stopped []uint64
	for _, ev := range h.events("bucket.counters.updated") {
		if ev.Meta.Hop == 5 {
			stopped = append(stopped, ev.Meta.Seq)
		}
	}
	h.wantBudgetLetters("cascade", "bump", stopped...)
	kv, err := h.js.KeyValue(h.ctx(), rulenode.CascadeBucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, corr := range []string{"first", "second"} {
		e, err := kv.Get(h.ctx(), corr)
		if err != nil || string(e.Value()) != "5" {
			t.Errorf("cascade counter of %s: %v, %v; want 5", corr, e, err)
		}
	}
}

// A rule's rate paces its writes without dropping any: a fan-out of 12 at
// 4 writes/s (bursts of 4) writes all 12, in order, and cannot take less
// than the 2 s that 8 writes past the burst need.
func TestBudgetRateSmoothsBurst(t *testing.T) {
	h := newHarness(t, idDef("users"), idDef("notes"), idDef("announcements"))
	h.run(load(t, `
name: paced
rules:
  - id: notify
    on: [bucket.announcements.inserted]
    rate: 4
    then:
      - forEach:
          query: { bucket: users }
          as: u
          key: id
          do:
            - insert: { bucket: notes, record: { id: "${u.id}" } }
`))
	var want []any
	for i := range 12 {
		id := fmt.Sprintf("u%02d", i)
		h.insert("users", events.Record{"id": id})
		want = append(want, id)
	}
	start := time.Now()
	h.insert("announcements", events.Record{"id": "a"})
	h.settle("paced")
	elapsed := time.Since(start)

	var got []any
	for _, ev := range h.events("bucket.notes.inserted") {
		got = append(got, ev.Key)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("notes written %v, want %v", got, want)
	}
	if elapsed < 2*time.Second {
		t.Errorf("12 writes at 4/s with bursts of 4 took %s, less than 2s", elapsed)
	}
	if dls := h.deadLetters("paced"); len(dls) != 0 {
		t.Errorf("dead letters: %+v", dls)
	}
}

// A rule over its budget on 3 events within a minute is quarantined on
// every node of its set: it stops firing while the set's other rule keeps
// working, until Resume lifts it.
func TestBudgetQuarantine(t *testing.T) {
	h := newHarness(t, idDef("users"), idDef("notes"), idDef("announcements"), idDef("audit"))
	set := load(t, fanOutRules)
	nodes := []*rulenode.Runner{h.run(set), h.run(load(t, fanOutRules))}
	for _, u := range []string{"u1", "u2", "u3", "u4"} {
		h.insert("users", events.Record{"id": u})
	}
	announce := func(ids ...string) []uint64 {
		var seqs []uint64
		for _, id := range ids {
			h.insert("announcements", events.Record{"id": id})
			seqs = append(seqs, h.seqOf("announcements", id))
		}
		h.settle("fanout")
		return seqs
	}
	waitQuarantined := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			all := true
			for _, n := range nodes {
				all = all && n.Quarantined("notify") == want
			}
			if all {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("rule notify: quarantined is not %t on every node", want)
			}
			time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
		}
	}

	overruns := announce("a1", "a2", "a3")
	waitQuarantined(true)
	h.wantBudgetLetters("fanout", "notify", overruns...)
	states, err := rulenode.Quarantined(h.ctx(), h.js, "fanout")
	if err != nil || len(states) != 1 || states[0].Rule != "notify" || !states[0].Quarantined || len(states[0].Strikes) != 3 {
		t.Fatalf("Quarantined = %+v, %v; want notify with 3 strikes", states, err)
	}

	announce("a4", "a5")
	if n := h.count("audit"); n != 5 {
		t.Errorf("%d audit records, want 5: the set's other rule keeps working", n)
	}
	h.wantBudgetLetters("fanout", "notify", overruns...) // no more: notify does not fire

	if err := rulenode.Resume(h.ctx(), h.js, "fanout", "notify"); err != nil {
		t.Fatal(err)
	}
	waitQuarantined(false)
	if err := rulenode.Resume(h.ctx(), h.js, "fanout", "notify"); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("resume of a rule not quarantined: %v, want not_found", err)
	}
	if err := rulenode.Resume(h.ctx(), h.js, "fanout", "no such rule"); !errors.Is(err, events.ErrBadRequest) {
		t.Errorf("resume of an invalid rule id: %v, want bad_request", err)
	}
	h.insert("announcements", events.Record{"id": "a6"}) // notify fires again: over budget
	h.settle("fanout")
	h.wantBudgetLetters("fanout", "notify", append(overruns, h.seqOf("announcements", "a6"))...)
	if states, err := rulenode.Quarantined(h.ctx(), h.js, ""); err != nil || len(states) != 0 {
		t.Errorf("Quarantined after resume and one overrun = %+v, %v; want none", states, err)
	}
	if n := h.count("notes"); n != 0 {
		t.Errorf("%d notes, want 0", n)
	}
}
