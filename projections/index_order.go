package projections

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/snapcodec"
)

// A snapshot carries each index's order beside the records, so that a
// load fills the index without sorting (a sort of a million strings is
// most of the cost of an index on a field with a distinct value per
// record). The order is a list of record ordinals (their place in the
// snapshot) per value type: numbers and strings ascending as the index
// keeps them, then the records holding false and true. The reader checks
// what it is given — every ordinal in range, its value of the list's
// type, each list strictly ascending — and refuses a snapshot that breaks
// one, so an order can never make an index disagree with the records it
// lists.

// ranked is an index entry with the ordinal of its record.
type ranked[V cmp.Ordered] struct {
	e   entry[V]
	ord int
}

// writeIndexOrder appends the order of the index on field over recs
// (keys[i] is recs[i]'s key, in the order the records are written).
func writeIndexOrder(w *snapcodec.Writer, field string, keys []string, recs []events.Record) {
	var nums []ranked[float64]
	var strs []ranked[string]
	var bools [2][]int
	for i, r := range recs {
		v := r[field]
		if n, ok := indexNumber(v); ok {
			nums = append(nums, ranked[float64]{entry[float64]{n, keys[i]}, i})
			continue
		}
		switch v := v.(type) {
		case string:
			strs = append(strs, ranked[string]{entry[string]{v, keys[i]}, i})
		case bool:
			bools[boolIndex(v)] = append(bools[boolIndex(v)], i)
		}
	}
	writeRanked(w, nums)
	writeRanked(w, strs)
	for _, ords := range bools {
		w.Uvarint(uint64(len(ords)))
		for _, o := range ords {
			w.Uvarint(uint64(o))
		}
	}
}

func writeRanked[V cmp.Ordered](w *snapcodec.Writer, rs []ranked[V]) {
	slices.SortFunc(rs, func(a, b ranked[V]) int { return compareEntries(a.e, b.e) })
	w.Uvarint(uint64(len(rs)))
	for _, r := range rs {
		w.Uvarint(uint64(r.ord))
	}
}

// readIndexOrder reads what writeIndexOrder wrote into the index on field.
func readIndexOrder(r *snapcodec.Reader, field string, keys []string, recs []events.Record) (*Index, error) {
	ix := NewIndex(field)
	nums, err := readRanked(r, field, keys, recs, indexNumber)
	if err != nil {
		return nil, err
	}
	strs, err := readRanked(r, field, keys, recs, func(v any) (string, bool) { s, ok := v.(string); return s, ok })
	if err != nil {
		return nil, err
	}
	ix.nums.fill(nums)
	ix.strs.fill(strs)
	for b := range ix.bools {
		n := r.Count(1)
		if n > 0 {
			ix.bools[b] = make(keySet, n)
		}
		for range n {
			o := r.Uvarint()
			if o >= uint64(len(recs)) || recs[o][field] != (b == 1) {
				return nil, fmt.Errorf("index %s: boolean entry %d is not a record holding %v", field, o, b == 1)
			}
			ix.bools[b][keys[o]] = struct{}{}
		}
	}
	return ix, r.Err()
}

// readRanked reads one list of ordinals as index entries; value gives a
// record's value as the list's type.
func readRanked[V cmp.Ordered](r *snapcodec.Reader, field string, keys []string, recs []events.Record, value func(any) (V, bool)) ([]entry[V], error) {
	n := r.Count(1)
	es := make([]entry[V], n)
	for i := range es {
		o := r.Uvarint()
		if o >= uint64(len(recs)) {
			return nil, fmt.Errorf("index %s: ordinal %d of %d records", field, o, len(recs))
		}
		v, ok := value(recs[o][field])
		if !ok {
			return nil, fmt.Errorf("index %s: record %s holds no %T", field, keys[o], v)
		}
		es[i] = entry[V]{v, keys[o]}
		if i > 0 && compareEntries(es[i-1], es[i]) >= 0 {
			return nil, fmt.Errorf("index %s: entries out of order at %d", field, i)
		}
	}
	return es, r.Err()
}
