package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
	"github.com/storeloop/storeloop/storenode"
)

// runRules runs set on nc until the test ends or stop is called.
func runRules(t *testing.T, nc *nats.Conn, set *rulenode.RuleSet, opts ...rulenode.RunnerOption) (stop func()) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// One attempt per delivery, two deliveries: a refused command fails
	// the event in about a second, not in the defaults' minutes.
	cl, err := client.New(nc, client.WithScopedSubjects(), client.WithTimeout(500*time.Millisecond), client.WithRetries(0), client.WithFailoverWait(0))
	if err != nil {
		t.Fatal(err)
	}
	runner := rulenode.NewRunner(js, cl, set, append(opts, rulenode.WithMaxDeliver(2), rulenode.WithRetryBackoff(100*time.Millisecond))...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runner: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// A rule node on the credentials of one rule set (derived from its rules)
// runs the e-commerce rules on scoped subjects without a violation. After
// a rule is edited to write to a bucket the rules never named, NATS
// refuses its command: the request gets no reply, every delivery of the
// event fails, and the event is dead-lettered with reason failed after
// the last one; the bucket stays empty and the other rules keep working.
func TestRuleSetCredentials(t *testing.T) {
	s := startSecured(t, storenode.EmbeddedConfig{}, auth.ConnConfig{})
	ctx := ctxT(t)
	yaml, err := os.ReadFile("../examples/ecommerce/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := rulenode.Load(strings.NewReader(string(yaml)), "rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	needs, err := set.Needs()
	if err != nil {
		t.Fatal(err)
	}
	path, err := auth.AddUser(s.dir, auth.RoleRuleNode, "ecommerce",
		auth.WithRuleSetScope(auth.RuleSetScope{Set: set.Name, Commands: needs.Commands, Publish: needs.Publish}))
	if err != nil {
		t.Fatal(err)
	}
	admin := s.client(t, s.admin)
	for _, d := range []events.BucketDef{
		{Bucket: "orders", Key: "id", Schema: map[string]events.FieldDef{"id": {Type: "number", Generated: "autoincrement"},
			"userId": {Type: "string"}, "sku": {Type: "string"}, "qty": {Type: "number"}, "total": {Type: "number"}, "status": {Type: "string"}}},
		{Bucket: "inventory", Key: "sku", Schema: map[string]events.FieldDef{"sku": {Type: "string"}, "quantity": {Type: "number"}}},
		{Bucket: "loyalty", Key: "userId", Schema: map[string]events.FieldDef{"userId": {Type: "string"}, "points": {Type: "number", Default: 0.0}}},
		{Bucket: "rewards", Key: "userId", Schema: map[string]events.FieldDef{"userId": {Type: "string"}, "points": {Type: "number", Default: 0.0}}},
	} {
		if err := admin.Define(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.Bucket("inventory").Insert(ctx, events.Record{"sku": "kb", "quantity": 10.0}); err != nil {
		t.Fatal(err)
	}
	order := func(user string) any {
		t.Helper()
		rec, err := admin.Bucket("orders").Insert(ctx, events.Record{"userId": user, "sku": "kb", "qty": 2.0, "total": 120.0, "status": "pending"})
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range []string{"confirmed", "shipped"} {
			if _, err := admin.Bucket("orders").Update(ctx, rec["id"], events.Record{"status": st}); err != nil {
				t.Fatal(err)
			}
		}
		return rec["id"]
	}
	settle := func() {
		t.Helper()
		if err := admin.Settle(ctx, client.SettleRuleSets(set.Name)); err != nil {
			t.Fatal(err)
		}
	}
	get := func(bucket string, key any) events.Record {
		t.Helper()
		r, err := admin.Bucket(bucket).Get(ctx, key)
		if err != nil && !errors.Is(err, events.ErrNotFound) {
			t.Fatal(err)
		}
		return r
	}

	errs := make(chan error, 16)
	stop := runRules(t, s.dial(t, auth.ConnConfig{Creds: path}, errs), set)
	order("alice")
	settle()
	if inv, pts := get("inventory", "kb"), get("loyalty", "alice"); inv["quantity"] != 8.0 || pts["points"] != 12.0 {
		t.Fatalf("inventory %v, loyalty %v; want quantity 8, points 12", inv, pts)
	}
	select {
	case err := <-errs:
		t.Fatalf("rule node on its rule set's credentials: %v", err)
	default:
	}
	stop()

	edited, err := rulenode.Load(strings.NewReader(strings.Replace(string(yaml), "bucket: loyalty", "bucket: rewards", 1)), "rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	runRules(t, s.dial(t, auth.ConnConfig{Creds: path}, errs), edited)
	order("bob")
	settle()
	wantViolation(t, errs, "publish", "store.upsert.rewards")
	if inv, pts := get("inventory", "kb"), get("rewards", "bob"); inv["quantity"] != 6.0 || pts != nil {
		t.Fatalf("inventory %v, rewards %v; want quantity 6, no rewards", inv, pts)
	}
	dlq, err := s.js.Stream(ctx, events.DefaultDeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := dlq.GetLastMsgForSubject(ctx, rulenode.DeadLetterSubject(set.Name, rulenode.ReasonFailed))
	if err != nil {
		t.Fatal(err)
	}
	var dl rulenode.DeadLetter
	if err := json.Unmarshal(msg.Data, &dl); err != nil {
		t.Fatal(err)
	}
	if dl.RuleID != "loyalty-on-ship" || dl.Subject != "bucket.orders.updated" || dl.Deliveries != 2 || !strings.Contains(dl.Error, "no reply") {
		t.Fatalf("dead letter %+v; want loyalty-on-ship's shipped update after 2 deliveries, no reply", dl)
	}
}

// A scope names one rule set and well-formed scoped commands.
func TestRuleSetScopeRefused(t *testing.T) {
	for _, sc := range []auth.RuleSetScope{
		{Set: "a.b", Commands: []string{"insert.orders"}},
		{Set: "s", Commands: []string{"insert"}},
		{Set: "s", Commands: []string{"insert.orders.users"}},
		{Set: "s", Commands: []string{"status.orders"}},
		{Set: "s", Commands: []string{"batch.orders"}},
		{Set: "s", Commands: []string{"insert.*"}},
		{Set: "s", Commands: []string{"tx.users.orders"}},
		{Set: "s", Commands: []string{"tx.orders.orders"}},
		{Set: "s", Publish: []string{"store.insert.orders"}},
	} {
		if _, err := auth.Rules(auth.WithRuleSetScope(sc)); err == nil {
			t.Errorf("scope %+v accepted", sc)
		}
	}
	table, err := auth.Rules(auth.WithRuleSetScope(auth.RuleSetScope{Set: "s", Commands: []string{"tx.orders.users"}}))
	if err != nil {
		t.Fatal(err)
	}
	if p := table[1]; p.Role != auth.RoleRuleNode || p.Publish[0] != "store.tx.orders.users" || p.Publish[1] != "storeloop.dlq.s.>" {
		t.Fatalf("rule node publish %v", p.Publish)
	}
}
