package rulenode_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/examples"
	"github.com/storeloop/storeloop/rulenode"
)

// The commands a rule set can send are read from its actions: writes,
// forEach queries, a tx on the subject of each set of buckets it may
// touch (a bucket written only in a forEach may be missing), and literal
// publish subjects.
func TestNeeds(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       rulenode.Needs
	}{
		{"ecommerce", "", rulenode.Needs{Commands: []string{"update.inventory", "upsert.loyalty"}}},
		{"archive", "", rulenode.Needs{Commands: []string{"query.orders", "tx.archivedOrders.orders.sessions", "tx.sessions"}}},
		{"inline", `name: x
rules:
  - id: a
    on: [bucket.orders.inserted]
    then:
      - insert: { bucket: audit, record: { k: "${event.key}" } }
      - publish: { subject: alerts.new }
      - forEach:
          query: { bucket: items, where: { order: "${event.key}" } }
          as: it
          do:
            - delete: { bucket: items, key: "${it.id}" }
      - tx:
          - update: { bucket: orders, key: "${event.key}", changes: { s: x } }
          - forEach:
              query: { bucket: lines }
              as: l
              do:
                - insert: { bucket: archive, record: { l: "${l.id}" } }
                - update: { bucket: orders, key: "${l.id}", changes: { s: y } }
`, rulenode.Needs{Commands: []string{"delete.items", "insert.audit", "query.items", "query.lines", "tx.archive.orders", "tx.orders"},
			Publish: []string{"alerts.new"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rs *rulenode.RuleSet
			var err error
			if tc.yaml == "" {
				sc, lerr := examples.Load(tc.name)
				rs, err = sc.Rules, lerr
			} else {
				rs, err = rulenode.Load(strings.NewReader(tc.yaml), "inline.yaml")
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := rs.Needs()
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Needs() = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// What the rules cannot say is refused: a publish subject computed from
// the event, a Go rule.
func TestNeedsRefused(t *testing.T) {
	rs, err := rulenode.Load(strings.NewReader(`name: x
rules:
  - id: fwd
    on: [bucket.orders.inserted]
    then:
      - publish: { subject: "${event.newRecord.to}" }
`), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Needs(); err == nil || !strings.Contains(err.Error(), `rule "fwd" line 6: the publish subject is an expression`) {
		t.Fatalf("Needs() = %v, want the expression refused", err)
	}
	gors, err := rulenode.NewRuleSet("go", &rulenode.Rule{ID: "h", On: []string{"bucket.orders.inserted"},
		Handler: func(context.Context, *events.Event, *rulenode.Env) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gors.Needs(); err == nil || !strings.Contains(err.Error(), "is a Go rule") {
		t.Fatalf("Needs() of Go rules = %v, want refused", err)
	}
}
