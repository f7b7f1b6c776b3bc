package storenode_test

import (
	"testing"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// Storeloop-Rule-Version goes into the meta of the command's events as
// ruleVersion; a version that is not a number from 1, or one without
// Storeloop-Rule, is bad_request and appends nothing.
func TestRuleVersionHeader(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, loyaltyDef())
	seq := lastSeq(t, nc)
	c := ruleCause("c1")
	upsert := events.UpsertRequest{Bucket: "loyalty", Key: "alice", Record: events.Record{"userId": "alice"}}
	for _, h := range [][]string{
		append(c.headers(), events.HeaderRuleVersion, "0"),
		append(c.headers(), events.HeaderRuleVersion, "v2"),
		append(c.headers(), events.HeaderRuleVersion, "-1"),
		append(ruleCause("c2").headers()[:2], events.HeaderRuleVersion, "2"), // a command id only, no rule
	} {
		wantCode(t, call(t, nc, events.CmdUpsert, upsert, nil, h...), events.CodeBadRequest)
	}
	wantNoNewEvents(t, nc, seq)

	mustCall(t, nc, events.CmdUpsert, upsert, nil, append(c.headers(), events.HeaderRuleVersion, "2")...)
	msgs := streamAfter(t, nc, seq)
	if len(msgs) != 1 {
		t.Fatalf("appended %d events, want 1", len(msgs))
	}
	if m := msgs[0].Event.Meta; m.RuleVersion != 2 || m.RuleID != c.rule {
		t.Fatalf("meta %+v; want rule %s version 2", m, c.rule)
	}
}
