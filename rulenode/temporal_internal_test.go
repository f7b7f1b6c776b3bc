package rulenode

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
)

// advanceAll applies events (subject, record status, time) to one key's
// state as the engine would, and returns the final state and the sizes
// of the matches fired.
func advanceAll(t *testing.T, trigger string, evs ...*events.Event) (*temporalState, []int) {
	t.Helper()
	rs, err := Load(strings.NewReader("name: s\nrules:\n  - id: r\n"+trigger+"    then: [ { log: { message: x } } ]\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tr := rs.Rules[0].Temporal
	st := &temporalState{}
	var fired []int
	for _, ev := range evs {
		next, match, err := tr.advance(context.Background(), "r", &evalEvent{ev: ev}, st)
		if err != nil {
			t.Fatal(err)
		}
		if match != nil {
			fired = append(fired, len(match))
		}
		if next == nil {
			next = &temporalState{}
		}
		st = next
	}
	return st, fired
}

func orderEvent(seq uint64, status string, at int64) *events.Event {
	return &events.Event{Type: events.OpUpdated, Bucket: "orders", Key: 1.0,
		NewRecord: events.Record{"status": status}, Meta: events.Meta{Seq: seq, Time: at}}
}

const absenceTrigger = `    absence:
      after: { on: bucket.orders.updated, when: "event.newRecord.status == 'confirmed'" }
      expect: { on: bucket.orders.updated, when: "event.newRecord.status == 'shipped'" }
      key: ${event.key}
      within: 1s
`

// The window is judged on the events' store times, not on when a runner
// applies them: an expect event applied before its after event (another
// runner had it) still cancels it; one past the window does not.
func TestAbsenceAdvance(t *testing.T) {
	st, _ := advanceAll(t, absenceTrigger, orderEvent(2, "shipped", 1500), orderEvent(1, "confirmed", 1000))
	if len(st.Match) != 0 || st.Deadline != 0 {
		t.Errorf("shipped applied first: state %+v, want nothing pending", st)
	}
	st, _ = advanceAll(t, absenceTrigger, orderEvent(2, "shipped", 2001), orderEvent(1, "confirmed", 1000))
	if len(st.Match) != 1 || st.Deadline != 2000 {
		t.Errorf("shipped too late: state %+v, want pending until 2000", st)
	}
	st, _ = advanceAll(t, absenceTrigger, orderEvent(1, "confirmed", 1000), orderEvent(2, "shipped", 2000))
	if len(st.Match) != 0 || st.Deadline != 0 {
		t.Errorf("shipped at the deadline: state %+v, want cancelled", st)
	}
	st, _ = advanceAll(t, absenceTrigger, orderEvent(1, "confirmed", 1000), orderEvent(2, "confirmed", 1200))
	if st.Deadline != 2000 {
		t.Errorf("confirmed twice: deadline %d, want the first's 2000", st.Deadline)
	}
}

func TestCountAdvance(t *testing.T) {
	trigger := "    count: { on: bucket.orders.updated, key: \"${event.key}\", atLeast: 3, within: 1s }\n"
	// 0 and 500 fall out of the window of 1600; 1600, 1700, 1800 fire;
	// the window starts afresh after a firing.
	st, fired := advanceAll(t, trigger, orderEvent(1, "a", 0), orderEvent(2, "a", 500), orderEvent(3, "a", 1600),
		orderEvent(4, "a", 1700), orderEvent(5, "a", 1800), orderEvent(6, "a", 1900))
	if len(fired) != 1 || fired[0] != 3 || len(st.Match) != 1 {
		t.Errorf("fired %v, state %+v; want one firing of 3 and one event left", fired, st)
	}
}

// An old event applied after newer ones does not stretch the window.
func TestCountAdvanceOutOfOrder(t *testing.T) {
	trigger := "    count: { on: bucket.orders.updated, key: \"${event.key}\", atLeast: 3, within: 1s }\n"
	st, fired := advanceAll(t, trigger, orderEvent(2, "a", 1500), orderEvent(3, "a", 1600), orderEvent(1, "a", 0))
	if len(fired) != 0 || len(st.Match) != 2 {
		t.Errorf("fired %v, state %+v; want no firing, the two events in the window", fired, st)
	}
	st, fired = advanceAll(t, trigger, orderEvent(2, "a", 1500), orderEvent(3, "a", 1600), orderEvent(1, "a", 700))
	if len(fired) != 1 || fired[0] != 3 {
		t.Errorf("fired %v, state %+v; want one firing of 3", fired, st)
	}
}

func TestSequenceAdvance(t *testing.T) {
	trigger := `    sequence:
      steps:
        - { on: bucket.orders.updated, when: "event.newRecord.status == 'pending'" }
        - { on: bucket.orders.updated, when: "event.newRecord.status == 'confirmed'" }
      key: ${event.key}
      within: 1s
`
	// A first step past the window is dropped; a new first step restarts.
	st, fired := advanceAll(t, trigger, orderEvent(1, "pending", 0), orderEvent(2, "confirmed", 1001),
		orderEvent(3, "pending", 1100), orderEvent(4, "pending", 1200), orderEvent(5, "confirmed", 2200))
	if len(fired) != 1 || fired[0] != 2 || len(st.Buffer) != 0 {
		t.Errorf("fired %v, state %+v; want one firing of 2", fired, st)
	}
}

const threeSteps = `    sequence:
      steps:
        - { on: bucket.orders.updated, when: "event.newRecord.status == 'pending'" }
        - { on: bucket.orders.updated, when: "event.newRecord.status == 'paid'" }
        - { on: bucket.orders.updated, when: "event.newRecord.status == 'confirmed'" }
      key: ${event.key}
      within: 1s
`

// Steps applied in any order (runners of a set handle the events of one
// key concurrently) complete the sequence of their stream order once.
func TestSequenceAdvanceOutOfOrder(t *testing.T) {
	steps := []*events.Event{orderEvent(1, "pending", 0), orderEvent(2, "paid", 100), orderEvent(3, "confirmed", 200)}
	for _, order := range [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}} {
		var evs []*events.Event
		for _, i := range order {
			evs = append(evs, steps[i])
		}
		st, fired := advanceAll(t, threeSteps, evs...)
		if len(fired) != 1 || fired[0] != 3 || len(st.Buffer) != 0 {
			t.Errorf("order %v: fired %v, buffer %d; want one firing of 3, nothing left", order, fired, len(st.Buffer))
		}
	}
	// Out of stream order, the steps are not a sequence: paid before
	// pending does not fire whatever order they are applied in.
	st, fired := advanceAll(t, threeSteps, orderEvent(3, "confirmed", 200), orderEvent(1, "paid", 0), orderEvent(2, "pending", 100))
	if len(fired) != 0 || len(st.Buffer) != 3 {
		t.Errorf("paid, pending, confirmed: fired %v, buffer %d; want no firing, 3 events kept", fired, len(st.Buffer))
	}
	// A partial match kept before the buffer existed is completed.
	rs, err := Load(strings.NewReader("name: s\nrules:\n  - id: r\n"+threeSteps+"    then: [ { log: { message: x } } ]\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	old := &temporalState{Match: []*events.Event{orderEvent(1, "pending", 0), orderEvent(2, "paid", 100)}}
	st, match, err := rs.Rules[0].Temporal.advance(context.Background(), "r", &evalEvent{ev: orderEvent(3, "confirmed", 200)}, old)
	if err != nil || len(match) != 3 || st.Match != nil || len(st.Buffer) != 0 {
		t.Errorf("old partial match completed: match %d, state %+v, err %v; want a firing of 3, nothing left", len(match), st, err)
	}
	// A late first step past the window of the others completes nothing.
	_, fired = advanceAll(t, threeSteps, orderEvent(2, "paid", 1100), orderEvent(3, "confirmed", 1200), orderEvent(1, "pending", 0))
	if len(fired) != 0 {
		t.Errorf("first step 1.2s before the last: fired %v, want none", fired)
	}
}

// memKV is the part of a KV bucket that casUpdate uses, in memory.
type memKV struct {
	jetstream.KeyValue
	vals map[string][]byte
	revs map[string]uint64
}

type memEntry struct {
	jetstream.KeyValueEntry
	val []byte
	rev uint64
}

func (e memEntry) Value() []byte    { return e.val }
func (e memEntry) Revision() uint64 { return e.rev }

func (kv *memKV) Get(_ context.Context, key string) (jetstream.KeyValueEntry, error) {
	v, ok := kv.vals[key]
	if !ok {
		return nil, jetstream.ErrKeyNotFound
	}
	return memEntry{val: v, rev: kv.revs[key]}, nil
}

func (kv *memKV) Create(ctx context.Context, key string, v []byte, _ ...jetstream.KVCreateOpt) (uint64, error) {
	if _, ok := kv.vals[key]; ok {
		return 0, jetstream.ErrKeyExists
	}
	return kv.Update(ctx, key, v, 0)
}

func (kv *memKV) Update(_ context.Context, key string, v []byte, rev uint64) (uint64, error) {
	if kv.revs[key] != rev {
		return 0, jetstream.ErrKeyRevisionMismatch
	}
	kv.vals[key], kv.revs[key] = v, rev+1
	return rev + 1, nil
}

// A key whose events leave no partial match (here later steps after the
// first one's window) keeps at most maxSeen sequences: its state does not grow
// with every such event until it is too big to write.
func TestTemporalSeenBounded(t *testing.T) {
	rs, err := Load(strings.NewReader(`name: s
rules:
  - id: r
    sequence:
      steps:
        - { on: bucket.orders.updated, when: "event.newRecord.status == 'pending'" }
        - { on: bucket.orders.updated, when: "event.newRecord.status == 'confirmed'" }
      key: ${event.key}
      within: 1s
    then: [ { log: { message: x } } ]
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kv := &memKV{vals: map[string][]byte{}, revs: map[string]uint64{}}
	eng := &temporalEngine{r: &Runner{set: rs}, kv: kv, limit: 1 << 20}
	noFire := func(context.Context, *Rule, *events.Event, []*events.Event) error {
		t.Fatal("fired without a first step")
		return nil
	}
	// A first step, then later steps past its window: the match is
	// dropped and every event after leaves the state empty.
	evs := []*events.Event{orderEvent(1, "pending", 0)}
	for seq := uint64(2); seq <= maxSeen+10; seq++ {
		evs = append(evs, orderEvent(seq, "confirmed", 2000+int64(seq)))
	}
	for _, ev := range evs {
		if err := eng.apply(context.Background(), rs.Rules[0], &evalEvent{ev: ev}, noFire); err != nil {
			t.Fatal(err)
		}
	}
	if len(kv.vals) != 1 {
		t.Fatalf("%d states, want 1", len(kv.vals))
	}
	for _, v := range kv.vals {
		var st temporalState
		if err := json.Unmarshal(v, &st); err != nil {
			t.Fatal(err)
		}
		if len(st.Seen) != maxSeen || st.Seen[maxSeen-1] != maxSeen+10 {
			t.Errorf("state remembers %d sequences (last %v), want the last %d", len(st.Seen), st.Seen[len(st.Seen)-1:], maxSeen)
		}
	}
}
