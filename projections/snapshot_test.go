package projections

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/snapcodec"
)

// TestIndexOfMatchesAdds: an index built at once (a rebuild) answers as
// one built record by record.
func TestIndexOfMatchesAdds(t *testing.T) {
	records := map[string]events.Record{}
	added := NewIndex("v")
	for i := range 3000 {
		var v any
		switch i % 5 {
		case 0:
			v = float64(i % 700)
		case 1:
			v = fmt.Sprint("s", i%900)
		case 2:
			v = i%2 == 0
		case 3:
			v = -0.0
		}
		k := fmt.Sprint("k", i)
		records[k] = events.Record{"v": v}
		added.Add(v, k)
	}
	built := newIndexOf("v", records)
	same := func(when string) {
		t.Helper()
		if !slices.Equal(slices.Concat(built.nums.blocks...), slices.Concat(added.nums.blocks...)) ||
			!slices.Equal(slices.Concat(built.strs.blocks...), slices.Concat(added.strs.blocks...)) ||
			!reflect.DeepEqual(built.bools, added.bools) {
			t.Fatalf("indexes differ %s", when)
		}
	}
	same("once built")
	// Both keep working as inserts and removes go on.
	for _, ix := range []*Index{built, added} {
		ix.Add("s0", "new")
		ix.Add(1e9, "new")
		ix.Remove(0.0, "k3")
	}
	same("after changes")
}

// TestSnapshotKeepsViewsAndAges: a state decoded from its snapshot has
// the same view records (versions and times included), keeps maintaining
// the view as the original does, and expires the same record first.
func TestSnapshotKeepsViewsAndAges(t *testing.T) {
	s := NewState()
	orders := ordersDef()
	orders.TTL = "1h"
	mustDefine(t, s, orders)
	// Defined before its source sorts first: decoding must define sources first.
	mustDefine(t, s, statsDef("aStats"))
	now := float64(time.Now().UnixMilli())
	for i := 1; i <= 40; i++ {
		apply(t, s, events.OpInserted, nil, events.Record{"id": float64(i), "userId": fmt.Sprint("u", i%3), "total": float64(i * 10),
			"status": "new", events.FieldVersion: 1.0, events.FieldCreatedAt: now + float64(i), events.FieldUpdatedAt: now + float64(i)})
	}
	old := s.Bucket("orders").records["n:1"]
	apply(t, s, events.OpUpdated, old, events.Record{"id": 1.0, "userId": "u1", "total": 999.0, "status": "new",
		events.FieldVersion: 2.0, events.FieldCreatedAt: old[events.FieldCreatedAt], events.FieldUpdatedAt: now + 100})
	s.Settle()
	w := &snapcodec.Writer{}
	if err := s.Capture().Encode(w); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeState(snapcodec.NewReader(w.Buf))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(viewRecords(got.Bucket("aStats"), true), viewRecords(s.Bucket("aStats"), true)) {
		t.Fatalf("view after decode = %v, want %v", viewRecords(got.Bucket("aStats"), true), viewRecords(s.Bucket("aStats"), true))
	}
	_, k1, at1, ok1 := s.NextExpiry()
	_, k2, at2, ok2 := got.NextExpiry()
	if k1 != k2 || !at1.Equal(at2) || ok1 != ok2 || k1 != "n:2" {
		t.Fatalf("next expiry after decode = %q %v %v, want %q %v %v (key 2)", k2, at2, ok2, k1, at1, ok1)
	}
	// Both go on the same way: the decoded view is maintained.
	for _, st := range []*State{s, got} {
		apply(t, st, events.OpInserted, nil, events.Record{"id": 41.0, "userId": "u2", "total": 5.0, "status": "new",
			events.FieldVersion: 1.0, events.FieldCreatedAt: now + 200, events.FieldUpdatedAt: now + 200})
		st.Settle()
	}
	if !reflect.DeepEqual(viewRecords(got.Bucket("aStats"), true), viewRecords(s.Bucket("aStats"), true)) {
		t.Fatal("views differ after an insert following the decode")
	}
}

// apply folds an insert (old nil) or update of an order.
func apply(t *testing.T, s *State, op events.Op, old, r events.Record) {
	t.Helper()
	e := &events.Event{Type: op, Bucket: "orders", Key: r["id"], Record: r}
	if old != nil {
		e.Record, e.OldRecord, e.NewRecord = nil, old, r
	}
	if err := s.Apply(e); err != nil {
		t.Fatal(err)
	}
}
