package projections

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/storeloop/storeloop/events"
)

func ordersDef() events.BucketDef {
	return events.BucketDef{Bucket: "orders", Key: "id", Schema: map[string]events.FieldDef{
		"id": {Type: events.TypeNumber}, "userId": {Type: events.TypeString},
		"total": {Type: events.TypeNumber}, "status": {Type: events.TypeString},
	}}
}

func statsDef(name string) events.BucketDef {
	return events.BucketDef{Bucket: name, Key: "userId", View: &events.ViewDef{
		From: "orders", GroupBy: "userId", Where: events.Where{"status": map[string]any{"$neq": "shipped"}},
		Fields: map[string]events.ViewField{
			"n": {Fn: events.ViewCount}, "sum": {Fn: events.ViewSum, Field: "total"}, "avg": {Fn: events.ViewAvg, Field: "total"},
			"min": {Fn: events.ViewMin, Field: "total"}, "max": {Fn: events.ViewMax, Field: "total"}, "last": {Fn: events.ViewLast, Field: "id"},
		},
	}}
}

func mustDefine(t testing.TB, s *State, def events.BucketDef) *Bucket {
	t.Helper()
	b, err := s.Define(def)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func viewRecords(b *Bucket, meta bool) map[string]events.Record {
	out := map[string]events.Record{}
	for k, r := range b.records {
		r = maps.Clone(r)
		if !meta {
			delete(r, events.FieldVersion)
			delete(r, events.FieldCreatedAt)
			delete(r, events.FieldUpdatedAt)
		}
		out[k] = r
	}
	return out
}

// TestViewFoldMatchesRecomputeAndReplay: under random inserts, updates
// and deletes, some of them reverted (a transaction that failed), the
// maintained view equals a view computed afresh from the source's
// records, and a state that replays only the events kept has the same
// view, meta fields included.
func TestViewFoldMatchesRecomputeAndReplay(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	live := NewState()
	mustDefine(t, live, ordersDef())
	mustDefine(t, live, statsDef("stats"))
	var kept []*events.Event
	now, nextID := int64(1000), 0
	randomEvent := func() *events.Event {
		orders := live.Bucket("orders")
		if rng.IntN(10) < 2 {
			now++ // else the same millisecond: ties must be ordered too
		}
		user := fmt.Sprint("u", rng.IntN(4))
		total := float64(rng.IntN(20))
		status := []string{"pending", "paid", "shipped"}[rng.IntN(3)]
		keys := orders.Keys()
		if len(keys) == 0 || rng.IntN(3) == 0 {
			nextID++
			r := events.Record{"id": float64(nextID), "userId": user, "total": total, "status": status,
				events.FieldVersion: 1.0, events.FieldCreatedAt: float64(now), events.FieldUpdatedAt: float64(now)}
			return &events.Event{Type: events.OpInserted, Bucket: "orders", Key: float64(nextID), Record: r}
		}
		k := keys[rng.IntN(len(keys))]
		old, _ := orders.Get(k)
		key, _ := events.ParseKeyString(k)
		if rng.IntN(3) == 0 {
			return &events.Event{Type: events.OpDeleted, Bucket: "orders", Key: key, Record: old}
		}
		r := maps.Clone(old)
		switch rng.IntN(3) {
		case 0:
			r["total"] = total
		case 1:
			r["userId"] = user
		default:
			r["status"] = status
		}
		r[events.FieldVersion] = old[events.FieldVersion].(float64) + 1
		r[events.FieldUpdatedAt] = float64(now)
		return &events.Event{Type: events.OpUpdated, Bucket: "orders", Key: key, OldRecord: old, NewRecord: r}
	}
	for step := range 3000 {
		live.Settle()
		n := 1 + rng.IntN(3)
		var tx []*events.Event
		for range n {
			ev := randomEvent()
			if err := live.Apply(ev); err != nil {
				t.Fatal(err)
			}
			tx = append(tx, ev)
		}
		if rng.IntN(4) == 0 {
			for i := len(tx) - 1; i >= 0; i-- {
				live.Revert(tx[i])
			}
		} else {
			kept = append(kept, tx...)
		}
		if step%100 == 0 {
			fresh := NewState()
			mustDefine(t, fresh, ordersDef())
			for _, ev := range kept {
				if err := fresh.ApplyDecoded(uint64(step), Message{Event: ev}); err != nil {
					t.Fatal(err)
				}
			}
			mustDefine(t, fresh, statsDef("stats"))
			if got, want := viewRecords(live.Bucket("stats"), false), viewRecords(fresh.Bucket("stats"), false); !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d: maintained view\n%v\nrecomputed\n%v", step, got, want)
			}
		}
	}
	replayed := NewState()
	mustDefine(t, replayed, ordersDef())
	mustDefine(t, replayed, statsDef("stats"))
	for i, ev := range kept {
		if err := replayed.ApplyDecoded(uint64(i+1), Message{Event: ev}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := viewRecords(live.Bucket("stats"), true), viewRecords(replayed.Bucket("stats"), true); !reflect.DeepEqual(got, want) {
		t.Fatalf("live view\n%v\nreplayed\n%v", got, want)
	}
	if len(viewRecords(live.Bucket("stats"), true)) == 0 {
		t.Fatal("the view is empty: the test proves nothing")
	}
}

// TestViewErrors: a view needs a defined bucket as its source and a where
// that compiles; a view is defined once.
func TestViewErrors(t *testing.T) {
	s := NewState()
	if _, err := s.Define(statsDef("stats")); err == nil {
		t.Fatal("view of an undefined bucket defined")
	}
	mustDefine(t, s, ordersDef())
	bad := statsDef("stats")
	bad.View.Where = events.Where{"total": map[string]any{"$near": 1}}
	if _, err := s.Define(bad); err == nil {
		t.Fatal("view with a bad where defined")
	}
	mustDefine(t, s, statsDef("stats"))
	if _, err := s.Define(statsDef("stats")); err == nil {
		t.Fatal("view defined twice")
	}
	ofView := statsDef("meta")
	ofView.View.From = "stats"
	if _, err := s.Define(ofView); err == nil {
		t.Fatal("view of a view defined")
	}
}
