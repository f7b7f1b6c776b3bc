package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/examples"
	"github.com/storeloop/storeloop/rulenode"
	"github.com/storeloop/storeloop/storenode"
)

// A rule node on rulenode.creds runs a rule set with budgets: it opens
// the KV buckets of cascades and rule states, counts, quarantines a rule
// over budget, and follows a resume by an admin, without a permission
// violation.
func TestRuleNodeBudgets(t *testing.T) {
	if auth.RuleStateBucket != rulenode.RuleStateBucket || auth.CascadeBucket != rulenode.CascadeBucket {
		t.Fatalf("auth's KV bucket names %s, %s differ from rulenode's", auth.RuleStateBucket, auth.CascadeBucket)
	}
	s := startSecured(t, storenode.EmbeddedConfig{}, auth.ConnConfig{})
	ctx := ctxT(t)
	cl, runner, errs := runExampleOnRuleNodeCreds(t, s, "runaway")

	for _, u := range []string{"u1", "u2", "u3", "u4"} {
		if _, err := cl.Bucket("users").Insert(ctx, events.Record{"id": u}); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []string{"a1", "a2", "a3"} {
		if _, err := cl.Bucket("announcements").Insert(ctx, events.Record{"id": a}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.Settle(ctx, client.SettleRuleSets("runaway")); err != nil {
		select {
		case e := <-errs:
			t.Fatalf("%v (rule node: %v)", err, e)
		default:
		}
		t.Fatal(err)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s", what)
			}
		}
	}
	waitFor("notify quarantined", func() bool { return runner.Quarantined("notify") })
	if n, err := cl.Bucket("audit").Count(ctx, nil); err != nil || n != 3 {
		t.Errorf("audit: %d, %v; want 3", n, err)
	}
	if err := rulenode.Resume(ctx, s.js, "runaway", "notify"); err != nil {
		t.Fatal(err)
	}
	waitFor("notify resumed", func() bool { return !runner.Quarantined("notify") })
	select {
	case err := <-errs:
		t.Fatalf("rule node: %v", err)
	default:
	}
}

// runExampleOnRuleNodeCreds defines the example's
// buckets as a client and runs its rules on rulenode.creds until the test
// ends. It returns the client, the runner and the permission errors of the
// rule node's connection.
func runExampleOnRuleNodeCreds(t *testing.T, s *secured, name string) (*client.Client, *rulenode.Runner, chan error) {
	t.Helper()
	sc, err := examples.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	cnc, _ := s.as(t, auth.RoleClient)
	cl := s.client(t, cnc)
	if err := sc.Define(ctxT(t), cl); err != nil {
		t.Fatal(err)
	}
	rnc, errs := s.as(t, auth.RoleRuleNode)
	js, err := jetstream.New(rnc)
	if err != nil {
		t.Fatal(err)
	}
	runner := rulenode.NewRunner(js, s.client(t, rnc), sc.Rules)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runner.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("runner: %v", err)
		}
	})
	return cl, runner, errs
}
