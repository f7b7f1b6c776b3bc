package projections

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/snapcodec"
)

// sameIndex fails t unless a and b hold the same entries.
func sameIndex(t *testing.T, when string, a, b *Index) {
	t.Helper()
	if !slices.Equal(slices.Concat(a.nums.blocks...), slices.Concat(b.nums.blocks...)) ||
		!slices.Equal(slices.Concat(a.strs.blocks...), slices.Concat(b.strs.blocks...)) ||
		!reflect.DeepEqual(a.bools, b.bools) {
		t.Fatalf("index %s differs %s", a.Field, when)
	}
}

// TestSnapshotIndexOrder: the indexes a snapshot load fills from the
// order it carries are those a rebuild from the records gives, for every
// kind of value (distinct strings, repeated numbers, -0, NaN, booleans,
// values not indexed, missing fields), and they go on working.
func TestSnapshotIndexOrder(t *testing.T) {
	s := NewState()
	def := events.BucketDef{Bucket: "items", Key: "id", Indexes: []string{"n", "v"}, Schema: map[string]events.FieldDef{
		"id": {Type: events.TypeNumber}, "email": {Type: events.TypeString, Unique: true}}}
	if _, err := s.Define(def); err != nil {
		t.Fatal(err)
	}
	values := []any{1.0, "a", true, false, math.Copysign(0, -1), 0.0, math.NaN(), nil, map[string]any{"x": 1.0}, []any{"a"}, "", -3.5}
	for i := range 500 {
		r := events.Record{"id": float64(i), "email": fmt.Sprintf("u%03d@x", 499-i), "n": float64(i % 7)}
		if v := values[i%len(values)]; i%13 != 0 {
			r["v"] = v
		}
		if err := s.Apply(&events.Event{Type: events.OpInserted, Bucket: "items", Key: float64(i), Record: r}); err != nil {
			t.Fatal(err)
		}
	}
	w := &snapcodec.Writer{}
	if err := s.Capture().Encode(w); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeState(snapcodec.NewReader(w.Buf))
	if err != nil {
		t.Fatal(err)
	}
	b := got.Bucket("items")
	for _, f := range []string{"email", "n", "v"} {
		sameIndex(t, "after a load", b.Index(f), newIndexOf(f, b.records))
		sameIndex(t, "from the original", b.Index(f), s.Bucket("items").Index(f))
	}
	if keys := b.Index("email").Equal("u000@x"); !slices.Equal(keys, []string{"n:499"}) {
		t.Fatalf("email u000@x: %v, want [n:499]", keys)
	}
	// Both go on the same way.
	for _, st := range []*State{s, got} {
		r := events.Record{"id": 600.0, "email": "a@x", "n": 3.0, "v": "b"}
		if err := st.Apply(&events.Event{Type: events.OpInserted, Bucket: "items", Key: 600.0, Record: r}); err != nil {
			t.Fatal(err)
		}
		if err := st.Apply(&events.Event{Type: events.OpDeleted, Bucket: "items", Key: 1.0, Record: st.Bucket("items").records["n:1"]}); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"email", "n", "v"} {
		sameIndex(t, "after changes", got.Bucket("items").Index(f), s.Bucket("items").Index(f))
	}
}

// TestSnapshotIndexOrderRefused: an order that does not fit the records
// it lists is refused, whatever is wrong with it.
func TestSnapshotIndexOrderRefused(t *testing.T) {
	keys := []string{"n:0", "n:1", "n:2", "n:3"}
	recs := []events.Record{{"v": 2.0}, {"v": 1.0}, {"v": "a"}, {"v": true}}
	cases := []struct {
		name  string
		lists [4][]uint64 // numbers, strings, false, true
		want  string
	}{
		{"valid", [4][]uint64{{1, 0}, {2}, nil, {3}}, ""},
		{"out of order", [4][]uint64{{0, 1}, {2}, nil, {3}}, "out of order"},
		{"repeated", [4][]uint64{{1, 1}, {2}, nil, {3}}, "out of order"},
		{"ordinal out of range", [4][]uint64{{1, 4}, {2}, nil, {3}}, "ordinal 4"},
		{"string listed as number", [4][]uint64{{1, 2}, nil, nil, {3}}, "holds no"},
		{"number listed as string", [4][]uint64{{1, 0}, {0}, nil, {3}}, "holds no"},
		{"a number left out", [4][]uint64{{1}, {2}, nil, {3}}, "1 entries listed of 2"},
		{"a true left out", [4][]uint64{{1, 0}, {2}, nil, nil}, "0 records holding true listed of 1"},
		{"true listed as false", [4][]uint64{{1, 0}, {2}, {3}, nil}, "boolean entry 3"},
		{"count past the input", [4][]uint64{{1, 0}, {2}, nil, {3}}, "corrupt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := &snapcodec.Writer{}
			for i, l := range c.lists {
				n := uint64(len(l))
				if c.name == "count past the input" && i == 0 {
					n = 1000
				}
				w.Uvarint(n)
				for _, o := range l {
					w.Uvarint(o)
				}
			}
			ix, err := readIndexOrder(snapcodec.NewReader(w.Buf), "v", keys, recs)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				sameIndex(t, "read", ix, newIndexOf("v", map[string]events.Record{"n:0": recs[0], "n:1": recs[1], "n:2": recs[2], "n:3": recs[3]}))
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one saying %q", err, c.want)
			}
		})
	}
}
