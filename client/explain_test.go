package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
)

// Explain returns the writes since the record's last insert, newest first,
// each with its cause chain; a deleted record is not_found.
func TestExplain(t *testing.T) {
	c := newStore(t, ordersDef, loyaltyDef)
	ctx := ctxT(t)
	loyalty := c.Bucket("loyalty")
	points := func(ctx context.Context, n float64) {
		t.Helper()
		if _, err := loyalty.Upsert(ctx, "alice", events.Record{}, client.Increment(map[string]float64{"points": n})); err != nil {
			t.Fatal(err)
		}
	}
	points(ctx, 5)
	if _, err := loyalty.Delete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Explain(ctx, "loyalty", "alice", ""); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("explain of a deleted record: %v, want not_found", err)
	}
	points(ctx, 7) // inserted again: the chain starts here
	order := insertOrders(t, c, "alice")[0]

	// A write as a rule makes it, caused by the order's event.
	writes, err := c.Explain(ctx, "orders", order["id"], "")
	if err != nil || len(writes) != 1 || !writes[0].Outside() {
		t.Fatalf("explain of the order: %v, %v", writes, err)
	}
	orderEvent := writes[0].Event
	points(client.WithCause(ctx, client.CausalContext{
		CorrelationID: orderEvent.Meta.CorrelationID, CausationID: orderEvent.Meta.EventID, Hop: 1, RuleID: "award"}), 1)
	// A rule's write whose cause is not in the stream (trimmed, or not an event).
	points(client.WithCause(ctx, client.CausalContext{CorrelationID: "x", CausationID: "gone", Hop: 2, RuleID: "other"}), 1)

	summary := func(ws []*client.Write) string {
		var s string
		for _, w := range ws {
			s += fmt.Sprintf("[%s hop=%d rule=%s outside=%t", w.Subject, w.Event.Meta.Hop, w.Event.Meta.RuleID, w.Outside())
			for c := w.Cause; c != nil; c = c.Cause {
				s += fmt.Sprintf(" <- %s key=%v seq=%d", c.Subject, c.Event.Key, c.Event.Meta.Seq)
			}
			s += "]"
		}
		return s
	}
	award := fmt.Sprintf("[bucket.loyalty.updated hop=1 rule=award outside=false <- bucket.orders.inserted key=%v seq=%d]", order["id"], orderEvent.Meta.Seq)
	inserted := "[bucket.loyalty.inserted hop=0 rule= outside=true]"
	other := "[bucket.loyalty.updated hop=2 rule=other outside=false]"
	tests := []struct {
		field, want string
	}{
		{"", other + award + inserted},
		{"points", other + award + inserted},
		{"userId", inserted},
		{"nope", ""},
	}
	for _, tt := range tests {
		ws, err := c.Explain(ctx, "loyalty", "alice", tt.field)
		if err != nil || summary(ws) != tt.want {
			t.Errorf("Explain(loyalty, alice, %q) = %s, %v\nwant %s", tt.field, summary(ws), err, tt.want)
		}
	}
	ws, err := c.Explain(ctx, "loyalty", "alice", "")
	if err != nil || !strings.Contains(ws[0].String(), " cause=gone (not in the stream) ") {
		t.Errorf("newest write: %v, %v; want its cause gone, not in the stream", ws[0], err)
	}
	if _, err := c.Explain(ctx, "loyalty", nil, ""); !errors.Is(err, events.ErrBadRequest) {
		t.Errorf("explain with no key: %v, want bad_request", err)
	}
}

// A write of a deployed rule set's rule names the version after the rule.
func TestWriteStringRuleVersion(t *testing.T) {
	w := &client.Write{Subject: "bucket.loyalty.updated", Event: &events.Event{Key: "alice", Meta: events.Meta{
		Seq: 7, Time: 0, Hop: 1, RuleID: "loyalty-on-ship", RuleVersion: 3, CausationID: "e1", CommandID: "c1", CorrelationID: "k1"}}}
	want := "seq=7 time=1970-01-01T00:00:00.000Z bucket.loyalty.updated key=alice hop=1 rule=loyalty-on-ship@v3 cause=e1 (not in the stream) command=c1 correlation=k1"
	if got := w.String(); got != want {
		t.Fatalf("String() =\n%s\nwant\n%s", got, want)
	}
}
