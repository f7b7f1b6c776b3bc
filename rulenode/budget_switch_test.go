package rulenode_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
)

// budgetedRules is version source of the deployed set "budgeted": notify
// writes a note per user on each announcement, under budget (YAML keys of
// the rule, "" for none).
func budgetedRules(budget string) string {
	return fmt.Sprintf(`name: budgeted
rules:
  - id: notify
    on: [bucket.announcements.inserted]
%s
    then:
      - forEach:
          query: { bucket: users }
          as: u
          key: id
          do:
            - insert: { bucket: notes, record: { id: "${event.record.id + '-' + u.id}" } }
`, budget)
}

// A deployed rule set's budget guard follows the version in force: from a
// version without budgets to one with a per-event cap and a rate (the cap
// refuses the fan-out, the rate is the new one), to another rate, and back
// by a rollback.
func TestBudgetGuardFollowsVersionSwitch(t *testing.T) {
	h := newHarness(t, idDef("users"), idDef("notes"), idDef("announcements"))
	ctx := h.ctx()
	reg, err := rulenode.OpenRegistry(ctx, h.js, events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	deploy := func(budget string) {
		t.Helper()
		if _, _, err := reg.Deploy(ctx, []byte(budgetedRules(budget)), "test"); err != nil {
			t.Fatal(err)
		}
	}
	deploy("")
	r, err := rulenode.NewDeployedRunner(ctx, h.js, h.cl, "budgeted", cloneOpts(fastRetries)...)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	for _, u := range []string{"u1", "u2", "u3"} {
		h.insert("users", events.Record{"id": u})
	}
	announce := func(id string) {
		t.Helper()
		h.insert("announcements", events.Record{"id": id})
		h.settle("budgeted")
	}

	announce("a1") // version 1: no budgets
	if n := h.count("notes"); n != 3 || r.RateOf("notify") != 0 {
		t.Fatalf("version 1: %d notes, rate %v; want 3 notes, no rate", n, r.RateOf("notify"))
	}

	deploy("    maxWritesPerEvent: 2\n    rate: 1000")
	announce("a2")
	if n := h.count("notes"); n != 3 {
		t.Fatalf("version 2: %d notes, want a2's fan-out of 3 refused by its cap of 2", n)
	}
	h.wantBudgetLetters("budgeted", "notify", h.seqOf("announcements", "a2"))
	if got := r.RateOf("notify"); got != 1000 {
		t.Fatalf("version 2's rate %v, want 1000", got)
	}

	deploy("    rate: 7")
	announce("a3")
	if n, got := h.count("notes"), r.RateOf("notify"); n != 6 || got != 7 {
		t.Fatalf("version 3: %d notes, rate %v; want 6 notes, rate 7", n, got)
	}

	if _, err := reg.Rollback(ctx, "budgeted", 2, "test"); err != nil {
		t.Fatal(err)
	}
	announce("a4")
	if n, got := h.count("notes"), r.RateOf("notify"); n != 6 || got != 1000 {
		t.Fatalf("rollback to version 2: %d notes, rate %v; want 6 notes (a4 refused), rate 1000", n, got)
	}
	h.wantBudgetLetters("budgeted", "notify", h.seqOf("announcements", "a2"), h.seqOf("announcements", "a4"))
}
