package examples_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
)

// sell sells one WIDGET n times at once and returns how many sales the
// store took; the others must be validation errors (stock is at least 0).
func (s *scenario) sellConcurrently(n int) int {
	s.t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.cl.Bucket("inventory").Update(s.ctx, "WIDGET", nil,
				client.Increment(map[string]float64{"quantity": -1}))
		})
	}
	wg.Wait()
	sold := 0
	for _, err := range errs {
		switch {
		case err == nil:
			sold++
		case !errors.Is(err, events.ErrValidation):
			s.t.Fatalf("sale: %v, want success or a validation error", err)
		}
	}
	return sold
}

// reorderOutcome checks the end state every run of the reorder rule must
// reach from 12 WIDGETs sold out: one request, the item at 0 and flagged
// by one tx (its version: the insert, 12 sales, the flag), caused by the
// newest sale that was not flagged yet. It returns the causing sale.
func (s *scenario) reorderOutcome() *events.Event {
	s.t.Helper()
	wantRecords(s.t, "reorderRequests", s.records("reorderRequests", nil, "createdAt"), []events.Record{
		{"id": 1.0, "sku": "WIDGET", "quantity": 100.0, events.FieldVersion: 1.0},
	})
	wantRecords(s.t, "inventory", s.records("inventory", nil), []events.Record{
		{"sku": "WIDGET", "quantity": 0.0, "reorder": true, events.FieldVersion: 14.0},
	})
	s.noDeadLetters()

	var flag *events.Event
	byID := map[string]*events.Event{}
	for _, ev := range s.events("bucket.inventory.updated") {
		byID[ev.Meta.EventID] = ev
		if ev.Meta.RuleID != "" {
			if flag != nil {
				s.t.Fatalf("two rule writes to inventory: %s", dump([]*events.Event{flag, ev}))
			}
			flag = ev
		}
	}
	if flag == nil || flag.Meta.TxID == "" {
		s.t.Fatalf("no flag written in a tx: %s", dump([]*events.Event{flag}))
	}
	cause := byID[flag.Meta.CausationID]
	if cause == nil || cause.NewRecord[events.FieldVersion] != flag.OldRecord[events.FieldVersion] ||
		cause.NewRecord["reorder"] != false || cause.NewRecord["quantity"].(float64) >= 10 {
		s.t.Errorf("flag %s caused by %s, want the sale it directly follows, below 10 and not flagged",
			dump([]*events.Event{flag}), dump([]*events.Event{cause}))
	}
	return cause
}

// Twenty customers buy one WIDGET each at the same time, 12 in stock, the
// rule running: the stock crosses 10 while several sales are stored and
// their events in flight, each of them "below 10, not flagged". The tx
// expects the version its event carries, so the rule commits once, for
// the newest unflagged sale, and skips the stale ones: one reorder request.
func TestReorderConcurrentSales(t *testing.T) {
	s := start(t, "reorder")
	s.insert("inventory", events.Record{"sku": "WIDGET", "quantity": 12.0})
	if sold := s.sellConcurrently(20); sold != 12 {
		t.Fatalf("%d sales taken, want 12", sold)
	}
	s.settle()
	s.reorderOutcome()
}

// The same sales made while no rule node runs: when it starts, the ten
// events from 9 down to 0 are all unflagged and below 10. The first nine
// are stale when their tx reaches the store and are skipped, not retried
// nor dead-lettered; the sale to 0 flags the item.
func TestReorderBacklog(t *testing.T) {
	s := startStore(t, "reorder")
	s.insert("inventory", events.Record{"sku": "WIDGET", "quantity": 12.0})
	if sold := s.sellConcurrently(20); sold != 12 {
		t.Fatalf("%d sales taken, want 12", sold)
	}
	s.runRules()
	s.settle()
	if cause := s.reorderOutcome(); cause.NewRecord["quantity"] != 0.0 {
		t.Errorf("the flag was caused by the sale to %v, want the last one, to 0", cause.NewRecord["quantity"])
	}
}
