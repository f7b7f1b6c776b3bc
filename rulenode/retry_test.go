package rulenode_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
)

// auditRules awards a point, then writes an audit record: with a total
// outside the audit schema (brokenAudit) the second action is rejected
// after the first was applied.
const (
	auditRules = `
name: audited
rules:
  - id: award-and-audit
    on: [bucket.orders.inserted]
    then:
      - upsert:
          bucket: loyalty
          key: ${event.record.userId}
          record: { userId: "${event.record.userId}" }
          increment: { points: 1 }
      - insert: { bucket: audit, record: { order: "${event.key}", total: %s } }
`
	brokenAudit = `"${string(event.record.total)}"` // audit.total is a number
	fixedAudit  = `"${event.record.total}"`
)

var auditDef = events.BucketDef{
	Bucket: "audit",
	Key:    "order",
	Schema: map[string]events.FieldDef{
		"order": {Type: events.TypeNumber, Required: true},
		"total": {Type: events.TypeNumber},
	},
}

// A rule rejected halfway is retried with a fixed rule file: its applied
// first action is not applied again, its second is, under a new command
// id. Retrying again changes nothing; retrying with the broken file fails
// as the original did and changes nothing either.
func TestRetry(t *testing.T) {
	h := newHarness(t, ordersDef, loyaltyDef, auditDef)
	h.run(load(t, strings.Replace(auditRules, "%s", brokenAudit, 1)))
	h.insert("orders", events.Record{"userId": "ann", "total": 7})
	h.settle("audited")
	dls := h.deadLetters("audited")
	if len(dls) != 1 || dls[0].Reason != rulenode.ReasonRejected || dls[0].RuleID != "award-and-audit" {
		t.Fatalf("dead letters = %+v, want one rejected", dls)
	}
	dl := dls[0]
	wantNumber(t, h.get("loyalty", "ann"), "points", 1)

	retry := func(src string) ([]string, error) {
		return rulenode.NewRunner(h.js, h.cl, load(t, strings.Replace(auditRules, "%s", src, 1))).Retry(h.ctx(), &dl)
	}
	if ran, err := retry(brokenAudit); !errors.Is(err, events.ErrValidation) || ran != nil {
		t.Fatalf("retry with the broken rules = %v, %v; want a validation error", ran, err)
	}
	for i := range 2 {
		ran, err := retry(fixedAudit)
		if err != nil || !reflect.DeepEqual(ran, []string{"award-and-audit"}) {
			t.Fatalf("retry %d = %v, %v", i+1, ran, err)
		}
		wantNumber(t, h.get("loyalty", "ann"), "points", 1)
		wantNumber(t, h.get("audit", 1.0), "total", 7)
		audits := h.events("bucket.audit.")
		if len(audits) != 1 {
			t.Fatalf("retry %d: %d audit events, want 1", i+1, len(audits))
		}
		m := audits[0].Meta
		if m.CausationID != dl.EventID || m.RuleID != "award-and-audit" || m.Hop != 1 ||
			!strings.HasPrefix(m.CommandID, rulenode.CommandID("audited", "award-and-audit", dl.StreamSeq, "1")+"~retry-") {
			t.Errorf("retry %d: audit event meta = %+v", i+1, m)
		}
	}
	if n := len(h.events("bucket.loyalty.")); n != 1 {
		t.Errorf("%d loyalty events, want 1", n)
	}

	cases := []struct {
		name string
		dl   rulenode.DeadLetter
	}{
		{"another rule set", rulenode.DeadLetter{RuleSet: "other", Reason: rulenode.ReasonFailed, Payload: dl.Payload}},
		{"undecodable", rulenode.DeadLetter{RuleSet: "audited", Reason: rulenode.ReasonUndecodable, PayloadBase64: []byte{0xff}}},
		{"unknown rule", rulenode.DeadLetter{RuleSet: "audited", RuleID: "gone", Reason: rulenode.ReasonFailed, Payload: dl.Payload}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			set := load(t, strings.Replace(auditRules, "%s", fixedAudit, 1))
			if ran, err := rulenode.NewRunner(h.js, h.cl, set).Retry(h.ctx(), &tc.dl); !errors.Is(err, rulenode.ErrNotRetryable) {
				t.Errorf("Retry = %v, %v; want ErrNotRetryable", ran, err)
			}
		})
	}
}
