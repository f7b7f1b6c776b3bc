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
// type, each list strictly ascending and as long as the records of its
// type — and refuses a snapshot that breaks one, so an order can never
// make an index disagree with the records.

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

// fieldValues is one field of every record, by ordinal, as an index
// keeps it: read in record order, once, so that filling the index in its
// own order looks values up in arrays, not in records scattered in memory.
type fieldValues struct {
	kind  []valueKind
	nums  []float64
	strs  []string
	count [kindTrue + 1]int // records per kind: each list must hold them all
}

type valueKind uint8

const (
	kindNone valueKind = iota
	kindNumber
	kindString
	kindFalse
	kindTrue
)

func valuesOf(field string, recs []events.Record) *fieldValues {
	fv := &fieldValues{kind: make([]valueKind, len(recs)), nums: make([]float64, len(recs)), strs: make([]string, len(recs))}
	for i, r := range recs {
		v := r[field]
		switch v := v.(type) {
		case string:
			fv.kind[i], fv.strs[i] = kindString, v
		case bool:
			fv.kind[i] = kindFalse + valueKind(boolIndex(v))
		default:
			if n, ok := indexNumber(v); ok {
				fv.kind[i], fv.nums[i] = kindNumber, n
			}
		}
		fv.count[fv.kind[i]]++
	}
	return fv
}

// readIndexOrder reads what writeIndexOrder wrote into the index on field.
func readIndexOrder(r *snapcodec.Reader, field string, keys []string, recs []events.Record) (*Index, error) {
	ix := NewIndex(field)
	fv := valuesOf(field, recs)
	nums, err := readRanked(r, field, keys, fv, kindNumber, fv.nums)
	if err != nil {
		return nil, err
	}
	strs, err := readRanked(r, field, keys, fv, kindString, fv.strs)
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
			if o >= uint64(len(recs)) || fv.kind[o] != kindFalse+valueKind(b) {
				return nil, fmt.Errorf("index %s: boolean entry %d is not a record holding %v", field, o, b == 1)
			}
			ix.bools[b][keys[o]] = struct{}{}
		}
		if want := fv.count[kindFalse+valueKind(b)]; n != want && r.Err() == nil {
			return nil, fmt.Errorf("index %s: %d records holding %v listed of %d", field, n, b == 1, want)
		}
	}
	if r.Err() == nil && r.Len() != 0 {
		return nil, fmt.Errorf("index %s: %d bytes after its order", field, r.Len())
	}
	return ix, r.Err()
}

// readRanked reads one list of ordinals as index entries of the records
// whose value is of kind, vals[ordinal].
func readRanked[V cmp.Ordered](r *snapcodec.Reader, field string, keys []string, fv *fieldValues, kind valueKind, vals []V) ([]entry[V], error) {
	n := r.Count(1)
	es := make([]entry[V], n)
	for i := range es {
		o := r.Uvarint()
		if o >= uint64(len(keys)) {
			return nil, fmt.Errorf("index %s: ordinal %d of %d records", field, o, len(keys))
		}
		if fv.kind[o] != kind {
			return nil, fmt.Errorf("index %s: record %s holds no %T", field, keys[o], vals[o])
		}
		es[i] = entry[V]{vals[o], keys[o]}
		if i > 0 && compareEntries(es[i-1], es[i]) >= 0 {
			return nil, fmt.Errorf("index %s: entries out of order at %d", field, i)
		}
	}
	if n != fv.count[kind] && r.Err() == nil {
		return nil, fmt.Errorf("index %s: %d entries listed of %d", field, n, fv.count[kind])
	}
	return es, r.Err()
}
