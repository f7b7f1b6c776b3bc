package examples_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/examples"
	"github.com/storeloop/storeloop/internal/procs"
	"github.com/storeloop/storeloop/rulenode"
)

// The runaway example on real daemons: a storenode process and two
// rulenode processes of the set. notify fans out over 4 users against a
// maxWritesPerEvent of 3: each announcement is dead-lettered (budget) with
// no note written; at the third, notify is quarantined on both nodes while
// audit keeps working; after a resume, with 3 users, it fires again.
func TestMultiProcessRunaway(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemons")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := startDaemons(ctx, t, "runaway", "", 2)
	nodes, cl := d.nodes, d.cl
	js, err := jetstream.New(cl.Conn())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"u1", "u2", "u3", "u4"} {
		if _, err := cl.Bucket("users").Insert(ctx, events.Record{"id": u}); err != nil {
			t.Fatal(err)
		}
	}
	announce := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			if _, err := cl.Bucket("announcements").Insert(ctx, events.Record{"id": id}); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.Settle(ctx, client.SettleRuleSets("runaway")); err != nil {
			t.Fatal(err)
		}
	}
	count := func(bucket string, want int) {
		t.Helper()
		if n, err := cl.Bucket(bucket).Count(ctx, nil); err != nil || n != want {
			t.Errorf("%s: %d records, %v; want %d", bucket, n, err, want)
		}
	}
	budgetLetters := func(want int) {
		t.Helper()
		dls, err := examples.DeadLetters(ctx, js, "runaway")
		if err != nil || len(dls) != want {
			t.Fatalf("dead letters %+v, %v; want %d", dls, err, want)
		}
		for _, d := range dls {
			if d.Reason != rulenode.ReasonBudget || d.RuleID != "notify" {
				t.Errorf("dead letter %+v, want reason budget of notify", d)
			}
		}
	}

	announce("a1", "a2", "a3")
	budgetLetters(3)
	for _, n := range nodes {
		n.WaitLine(t, true, "not firing until resumed", 10*time.Second)
	}
	states, err := rulenode.Quarantined(ctx, js, "runaway")
	if err != nil || len(states) != 1 || states[0].Rule != "notify" {
		t.Fatalf("Quarantined = %+v, %v; want notify", states, err)
	}
	var quarantines float64
	for _, n := range nodes {
		body, err := n.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		quarantines += procs.Sum(body, "storeloop_rule_quarantines_total")
	}
	if quarantines != 1 {
		t.Errorf("storeloop_rule_quarantines_total over both nodes = %v, want 1", quarantines)
	}

	announce("a4", "a5")
	count("audit", 5)
	count("notes", 0)
	budgetLetters(3)

	if err := rulenode.Resume(ctx, js, "runaway", "notify"); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		n.WaitLine(t, true, "rule resumed", 10*time.Second)
	}
	if _, err := cl.Bucket("users").Delete(ctx, "u4"); err != nil {
		t.Fatal(err)
	}
	announce("a6")
	count("notes", 3)
	count("audit", 6)
	budgetLetters(3)
}
