package storenode_test

import (
	"testing"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// TestBatchCommandRuleVersion: a batch command's ruleVersion goes into its
// events' meta with its rule; a command naming its own rule does not take
// the batch's version; a version without a rule, or below 1, fails that
// command alone with bad_request.
func TestBatchCommandRuleVersion(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef())
	seq := lastSeq(t, nc)
	order := func(user string) events.Record { return events.Record{"userId": user, "total": 1.0} }
	cmds := []events.BatchCommand{
		{Cmd: "insert", CommandID: "v0", Bucket: "orders", Record: order("a")},
		{Cmd: "insert", CommandID: "v1", Bucket: "orders", Record: order("b"), Rule: "r2", RuleVersion: 5},
		{Cmd: "insert", CommandID: "v2", Bucket: "orders", Record: order("c"), Rule: "r3"},
		{Cmd: "insert", CommandID: "v3", Bucket: "orders", Record: order("d"), Rule: "r4", RuleVersion: -1},
	}
	results, e := batchCall(t, nc, cmds, events.HeaderRule, "batch-rule", events.HeaderRuleVersion, "3")
	if e != nil {
		t.Fatal(e)
	}
	for i := range 3 {
		var rec events.Record
		wantResult(t, i, results[i], &rec)
	}
	wantReplyCode(t, 3, results[3], events.CodeBadRequest)

	results, e = batchCall(t, nc, []events.BatchCommand{
		{Cmd: "insert", CommandID: "v4", Bucket: "orders", Record: order("e"), RuleVersion: 2},
	})
	if e != nil {
		t.Fatal(e)
	}
	wantReplyCode(t, 0, results[0], events.CodeBadRequest)

	msgs := streamAfter(t, nc, seq)
	want := []struct {
		cmdID, rule string
		version     int
	}{{"v0", "batch-rule", 3}, {"v1", "r2", 5}, {"v2", "r3", 0}}
	if len(msgs) != len(want) {
		t.Fatalf("%d events appended, want %d", len(msgs), len(want))
	}
	for i, w := range want {
		m := msgs[i].Event.Meta
		if m.CommandID != w.cmdID || m.RuleID != w.rule || m.RuleVersion != w.version {
			t.Fatalf("event %d meta %+v, want %+v", i, m, w)
		}
	}
}
