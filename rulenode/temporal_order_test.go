package rulenode

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// TestSequenceAcrossRunners: two engines of one rule set share the
// temporal bucket of a real store, as two rule nodes do. The steps of
// each key are split between them (the later steps to one, in reverse,
// the first step to the other) and applied concurrently, so that a key's
// steps reach the bucket in every order. Each key's sequence fires, with
// the steps in stream order, on its last step only: the command ids of
// any repeat firing are the same, which the store answers once.
func TestSequenceAcrossRunners(t *testing.T) {
	const keys = 60
	nc, err := nats.Connect(storetest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), events.TemporalBucket)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Load(strings.NewReader("name: s\nrules:\n  - id: r\n"+threeSteps+"    then: [ { log: { message: x } } ]\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	fired := map[any]map[uint64][]uint64{} // key → completing seq → match seqs
	fire := func(_ context.Context, _ *Rule, ev *events.Event, match []*events.Event) error {
		var seqs []uint64
		for _, m := range match {
			seqs = append(seqs, m.Meta.Seq)
		}
		mu.Lock()
		defer mu.Unlock()
		if fired[ev.Key] == nil {
			fired[ev.Key] = map[uint64][]uint64{}
		}
		fired[ev.Key][ev.Meta.Seq] = seqs
		return nil
	}
	step := func(k int, i uint64, status string) *events.Event {
		return &events.Event{Type: events.OpUpdated, Bucket: "orders", Key: float64(k),
			NewRecord: events.Record{"status": status}, Meta: events.Meta{Seq: uint64(3*k) + i, Time: int64(100 * i)}}
	}
	var first, later []*events.Event
	for k := range keys {
		first = append(first, step(k, 1, "pending"))
		later = append(later, step(k, 3, "confirmed"), step(k, 2, "paid"))
	}
	var wg sync.WaitGroup
	for _, evs := range [][]*events.Event{first, later} {
		eng := &temporalEngine{r: &Runner{set: rs}, kv: kv, limit: stateLimit(nc.MaxPayload())}
		wg.Go(func() {
			for _, ev := range evs {
				if err := eng.apply(t.Context(), rs.Rules[0], &evalEvent{ev: ev}, fire); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for k := range keys {
		want := map[uint64][]uint64{uint64(3*k) + 3: {uint64(3*k) + 1, uint64(3*k) + 2, uint64(3*k) + 3}}
		got := fired[float64(k)]
		if len(got) != 1 || !slices.Equal(got[uint64(3*k)+3], want[uint64(3*k)+3]) {
			t.Errorf("key %d fired %v, want %v", k, got, want)
		}
	}
}
