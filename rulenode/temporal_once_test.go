package rulenode

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// onceHarness is a real store with a flags bucket and its temporal KV
// bucket, shared by engines as by rule nodes of one set.
type onceHarness struct {
	t  *testing.T
	nc *nats.Conn
	cl *client.Client
	kv jetstream.KeyValue
}

func newOnceHarness(t *testing.T) *onceHarness {
	t.Helper()
	nc, err := nats.Connect(storetest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	cl, err := client.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Define(t.Context(), events.BucketDef{Bucket: "flags", Key: "id", Schema: map[string]events.FieldDef{
		"id": {Type: events.TypeString, Generated: "uuid"}, "n": {Type: events.TypeNumber}}}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), events.TemporalBucket)
	if err != nil {
		t.Fatal(err)
	}
	return &onceHarness{t: t, nc: nc, cl: cl, kv: kv}
}

// engine is one runner's temporal engine of the set.
func (h *onceHarness) engine(rs *RuleSet) *temporalEngine {
	return &temporalEngine{r: &Runner{set: rs}, kv: h.kv, limit: stateLimit(h.nc.MaxPayload())}
}

// fire inserts a flag with the command id of a rule acting on the
// completing event, as a rule node's firing does: a firing repeated with
// the same completing event writes once.
func (h *onceHarness) fire(ctx context.Context, rule *Rule, ev *events.Event, match []*events.Event) error {
	st := newStoreClient(h.cl, "s", rule.ID, ev.Meta.Seq)
	_, err := st.Insert(withPath(ctx, "0"), "flags", events.Record{"n": float64(len(match))})
	return err
}

func (h *onceHarness) flags() int {
	h.t.Helper()
	n, err := h.cl.Bucket("flags").Count(h.t.Context(), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

// state is the stored state of rule r for match key 1.
func (h *onceHarness) state() temporalState {
	h.t.Helper()
	e, err := h.kv.Get(h.t.Context(), temporalKey("s", "r", "1"))
	if err != nil {
		h.t.Fatal(err)
	}
	var st temporalState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		h.t.Fatal(err)
	}
	return st
}

func loadOnce(t *testing.T, trigger string) *RuleSet {
	t.Helper()
	rs, err := Load(strings.NewReader("name: s\nrules:\n  - id: r\n"+trigger+"    then: [ { log: { message: x } } ]\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestTemporalFiresOnceWhenItsWriteLosesARace forces the race of two
// runners completing a match of one key with different events: runner A
// applies its event to the state, completes the match and, while it
// fires, runner B applies its own event to the state A read, completes
// the match too and writes first. Each firing alone has its completing
// event's command ids, so two firings would be two effects: exactly one
// flag must reach the store, and the state must be left with nothing
// pending.
func TestTemporalFiresOnceWhenItsWriteLosesARace(t *testing.T) {
	for _, tc := range []struct {
		name, trigger string
		before        []*events.Event // applied first, by either runner
		a, b          *events.Event   // each completes the match
	}{
		{"count", "    count: { on: bucket.orders.updated, key: \"${event.key}\", atLeast: 5, within: 1s }\n",
			[]*events.Event{orderEvent(1, "a", 100), orderEvent(2, "a", 200), orderEvent(3, "a", 300), orderEvent(4, "a", 400)},
			orderEvent(5, "a", 500), orderEvent(6, "a", 600)},
		{"sequence", threeSteps,
			[]*events.Event{orderEvent(1, "pending", 100), orderEvent(2, "paid", 200)},
			orderEvent(3, "confirmed", 300), orderEvent(4, "confirmed", 400)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newOnceHarness(t)
			rs := loadOnce(t, tc.trigger)
			rule := rs.Rules[0]
			a, b := h.engine(rs), h.engine(rs)
			for _, ev := range tc.before {
				if err := a.apply(t.Context(), rule, &evalEvent{ev: ev}, h.fire); err != nil {
					t.Fatal(err)
				}
			}
			raced := false
			fireA := func(ctx context.Context, rule *Rule, ev *events.Event, match []*events.Event) error {
				if !raced {
					raced = true
					if err := b.apply(ctx, rule, &evalEvent{ev: tc.b}, h.fire); err != nil {
						return err
					}
				}
				return h.fire(ctx, rule, ev, match)
			}
			if err := a.apply(t.Context(), rule, &evalEvent{ev: tc.a}, fireA); err != nil {
				t.Fatal(err)
			}
			if !raced {
				t.Fatal("runner A never fired: the race was not forced")
			}
			if n := h.flags(); n != 1 {
				t.Errorf("%d flags written, want 1: the match fired more than once", n)
			}
			if st := h.state(); st.Pending != nil || !st.seen(tc.a.Meta.Seq) || !st.seen(tc.b.Meta.Seq) {
				t.Errorf("state %+v: want no pending firing, both events seen", st)
			}
		})
	}
}

// A firing that fails and may succeed later stays pending in the state:
// the next event of the key (on any runner) fires it first, with its
// completing event's command ids, then counts afresh; the completing
// event redelivered changes nothing. A firing that fails for good is
// cleared and its error returned, for its event's dead letter.
func TestTemporalPendingFiringFailed(t *testing.T) {
	h := newOnceHarness(t)
	rs := loadOnce(t, "    count: { on: bucket.orders.updated, key: \"${event.key}\", atLeast: 2, within: 1s }\n")
	rule := rs.Rules[0]
	a, b := h.engine(rs), h.engine(rs)
	down := errors.New("store unreachable")
	failing := func(context.Context, *Rule, *events.Event, []*events.Event) error { return down }
	var fired []uint64 // completing events' sequences
	record := func(ctx context.Context, rule *Rule, ev *events.Event, match []*events.Event) error {
		fired = append(fired, ev.Meta.Seq)
		return h.fire(ctx, rule, ev, match)
	}
	if err := a.apply(t.Context(), rule, &evalEvent{ev: orderEvent(1, "a", 100)}, failing); err != nil {
		t.Fatal(err)
	}
	if err := a.apply(t.Context(), rule, &evalEvent{ev: orderEvent(2, "a", 200)}, failing); !errors.Is(err, down) {
		t.Fatalf("apply with the firing failing = %v, want %v", err, down)
	}
	if st := h.state(); st.Pending == nil || st.Pending.Seq != 2 || len(st.Pending.Match) != 2 || len(st.Match) != 0 {
		t.Fatalf("state after the failed firing %+v: want the match of 2 pending on event 2", st)
	}
	if err := b.apply(t.Context(), rule, &evalEvent{ev: orderEvent(3, "a", 300)}, record); err != nil {
		t.Fatal(err)
	}
	if err := a.apply(t.Context(), rule, &evalEvent{ev: orderEvent(2, "a", 200)}, record); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fired, []uint64{2}) || h.flags() != 1 {
		t.Errorf("fired on %v, %d flags; want once, on event 2", fired, h.flags())
	}
	if st := h.state(); st.Pending != nil || len(st.Match) != 1 || st.Match[0].Meta.Seq != 3 {
		t.Errorf("state %+v: want nothing pending, event 3 counted afresh", st)
	}

	bad := &EvalError{RuleID: "r", Expr: "x", Err: errors.New("no such key")}
	rejecting := func(context.Context, *Rule, *events.Event, []*events.Event) error { return bad }
	if err := a.apply(t.Context(), rule, &evalEvent{ev: orderEvent(4, "a", 400)}, rejecting); !errors.Is(err, bad) {
		t.Fatalf("apply with the firing rejected = %v, want %v", err, bad)
	}
	if st := h.state(); st.Pending != nil || len(st.Match) != 0 || !st.seen(4) {
		t.Errorf("state after the rejected firing %+v: want it cleared, event 4 seen", st)
	}
	if err := b.apply(t.Context(), rule, &evalEvent{ev: orderEvent(5, "a", 500)}, record); err != nil || len(fired) != 1 {
		t.Errorf("next event: err %v, fired on %v; want no firing", err, fired)
	}
}
