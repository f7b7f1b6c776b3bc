package projections

import (
	"encoding/json"
	"testing"

	"github.com/storeloop/storeloop/events"
)

// newBucket defines bucket "b" keyed by "id" with the given indexes and
// inserts the records (JSON objects) through the real fold.
func newBucket(t testing.TB, indexes []string, records ...string) (*State, *Bucket) {
	t.Helper()
	s := NewState()
	b, _ := s.Define(events.BucketDef{Bucket: "b", Key: "id", Schema: map[string]events.FieldDef{}, Indexes: indexes})
	for _, r := range records {
		insert(t, s, decodeRecord(t, r))
	}
	return s, b
}

func decodeRecord(t testing.TB, js string) events.Record {
	t.Helper()
	var r events.Record
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatalf("decode %s: %v", js, err)
	}
	return r
}

func insert(t testing.TB, s *State, r events.Record) {
	t.Helper()
	if err := s.Apply(&events.Event{Type: events.OpInserted, Bucket: "b", Key: r["id"], Record: r}); err != nil {
		t.Fatal(err)
	}
}

func update(t testing.TB, s *State, old, r events.Record) {
	t.Helper()
	if err := s.Apply(&events.Event{Type: events.OpUpdated, Bucket: "b", Key: r["id"], OldRecord: old, NewRecord: r}); err != nil {
		t.Fatal(err)
	}
}

func remove(t testing.TB, s *State, r events.Record) {
	t.Helper()
	if err := s.Apply(&events.Event{Type: events.OpDeleted, Bucket: "b", Key: r["id"], Record: r}); err != nil {
		t.Fatal(err)
	}
}

// keysOf returns the ids of records as canonical keys.
func keysOf(t testing.TB, records []events.Record) []string {
	t.Helper()
	out := make([]string, len(records))
	for i, r := range records {
		out[i] = mustKey(t, r["id"])
	}
	return out
}

func mustKey(t testing.TB, id any) string {
	t.Helper()
	k, err := events.KeyString(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCompile(t testing.TB, w events.Where) *Filter {
	t.Helper()
	f, err := CompileWhere(w)
	if err != nil {
		t.Fatalf("CompileWhere(%v): %v", w, err)
	}
	return f
}
