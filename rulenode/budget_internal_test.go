package rulenode

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/storeloop/storeloop/events"
)

func TestBudgetKeys(t *testing.T) {
	rs, err := Load(strings.NewReader(`
name: b
maxWritesPerEvent: 10
rate: 2.5
rules:
  - id: own
    on: [bucket.a.inserted]
    maxWritesPerEvent: 3
    maxCascadeWrites: 100
    rate: 50
    then: [ { log: { message: x } } ]
  - id: inherits
    on: [bucket.a.inserted]
    then: [ { log: { message: x } } ]
`), "b.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rs.BudgetOf(rs.Rules[0]), (Budget{MaxWritesPerEvent: 3, MaxCascadeWrites: 100, Rate: 50}); got != want {
		t.Errorf("own budget %+v, want %+v", got, want)
	}
	if got, want := rs.BudgetOf(rs.Rules[1]), (Budget{MaxWritesPerEvent: 10, Rate: 2.5}); got != want {
		t.Errorf("inherited budget %+v, want %+v", got, want)
	}
	if !rs.hasBudgets() {
		t.Error("hasBudgets is false")
	}
}

func TestBudgetKeysInvalid(t *testing.T) {
	const writes = "want a whole number from 1 to 1073741824"
	const rate = "want a number of writes per second above 0, at most 1e+06"
	tests := []struct {
		name, set, rule, want string
	}{
		{"zero writes", "maxWritesPerEvent: 0", "", "b.yaml:2: maxWritesPerEvent: " + writes},
		{"negative cascade", "maxCascadeWrites: -1", "", "b.yaml:2: maxCascadeWrites: " + writes},
		{"fractional writes", "", "maxWritesPerEvent: 1.5", `b.yaml:7: rule "r": maxWritesPerEvent: ` + writes},
		{"string writes", "", `maxCascadeWrites: "10"`, `b.yaml:7: rule "r": maxCascadeWrites: ` + writes},
		{"zero rate", "rate: 0", "", "b.yaml:2: rate: " + rate},
		{"text rate", "", "rate: fast", `b.yaml:7: rule "r": rate: ` + rate},
		{"huge rate", "", "rate: 1e7", `b.yaml:7: rule "r": rate: ` + rate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "name: b\n" + tt.set + "\nrules:\n  - id: r\n    on: [bucket.a.inserted]\n    then: [ { log: { message: x } } ]\n    " + tt.rule + "\n"
			_, err := Load(strings.NewReader(src), "b.yaml")
			if err == nil || err.Error() != tt.want || !errors.Is(err, events.ErrValidation) {
				t.Fatalf("Load: %v\nwant: %s", err, tt.want)
			}
		})
	}
}

// plannedWrites counts a forEach's items (and a tx's ops) without writing.
func TestPlannedWrites(t *testing.T) {
	rs := loadTestdata(t, "archive-on-delete.yaml")
	st := &fakeStore{records: map[string][]events.Record{"orders": {
		{"id": 1.0, "userId": "u", "total": 5.0}, {"id": 2.0, "userId": "u", "total": 7.0},
	}}}
	ev := &events.Event{Type: events.OpDeleted, Bucket: "users", Key: "u", Record: events.Record{"id": "u"}}
	n, err := plannedWrites(context.Background(), rs.Rules[0], &evalEvent{ev: ev}, st)
	if err != nil || n != 5 {
		t.Fatalf("planned %d writes, %v; want 5 (an insert and a delete per order, a delete)", n, err)
	}
	for _, c := range st.calls {
		if c.Op != "query" {
			t.Errorf("planning made a %s", c)
		}
	}
}

// A token bucket lets a burst through, then spaces waiters at 1/rate, in
// arrival order, and refills while idle.
func TestTokenBucket(t *testing.T) {
	now := time.Unix(0, 0)
	b := newTokenBucket(4)
	b.now = func() time.Time { return now }
	var waits []time.Duration
	for range 7 {
		waits = append(waits, b.reserve(1))
	}
	want := []time.Duration{0, 0, 0, 0, 250 * time.Millisecond, 500 * time.Millisecond, 750 * time.Millisecond}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
	now = now.Add(10 * time.Second) // idle: full again, no more than the burst
	if d := b.reserve(4); d != 0 {
		t.Errorf("after idling, a burst of 4 waits %s", d)
	}
	if d := b.reserve(2); d != 500*time.Millisecond {
		t.Errorf("past the burst, 2 writes wait %s, want 500ms", d)
	}
}
