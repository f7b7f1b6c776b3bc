package projections

import (
	"cmp"
	"slices"
	"sort"
	"strings"

	"github.com/storeloop/storeloop/events"
)

// Index maps the values of one top-level field to the keys of the records
// holding them, for equality lookups (strings, numbers, booleans) and ordered
// range scans (numbers, strings). Values that are not strings, numbers or
// booleans (objects, arrays, null, a missing field, NaN) are not indexed.
//
// Equality and range follow the where semantics (see CompileWhere): values
// of different types never compare, so a numeric range never returns keys of
// string values and the other way round.
//
// Numbers and strings are kept as (value, key) entries in one ordered set
// per type: an equality lookup is the run of entries of one value. Unlike
// a map from each value to a set of keys, this costs no allocation per
// distinct value, so an index on a field with a distinct value per record
// (an email, a name) is cheap to build at load: one sort, or none when a
// snapshot gives the order (see index_order.go).
type Index struct {
	Field string
	nums  sortedSet[entry[float64]]
	strs  sortedSet[entry[string]]
	bools [2]keySet
}

// entry is one indexed record: its value and its key.
type entry[V cmp.Ordered] struct {
	v   V
	key string
}

// compareEntries orders entries by value, then key.
func compareEntries[V cmp.Ordered](a, b entry[V]) int {
	if c := cmp.Compare(a.v, b.v); c != 0 {
		return c
	}
	return strings.Compare(a.key, b.key)
}

// keySet is the set of record keys sharing one boolean value.
type keySet map[string]struct{}

// NewIndex returns an empty index on field.
func NewIndex(field string) *Index {
	return &Index{Field: field, nums: sortedSet[entry[float64]]{cmp: compareEntries[float64]},
		strs: sortedSet[entry[string]]{cmp: compareEntries[string]}}
}

// Add records that the record under key has value.
func (ix *Index) Add(value any, key string) {
	if n, ok := indexNumber(value); ok {
		ix.nums.insert(entry[float64]{n, key})
		return
	}
	switch v := value.(type) {
	case string:
		ix.strs.insert(entry[string]{v, key})
	case bool:
		i := boolIndex(v)
		if ix.bools[i] == nil {
			ix.bools[i] = keySet{}
		}
		ix.bools[i][key] = struct{}{}
	}
}

// indexNumber returns value as the number an index keeps, if it keeps one:
// NaN equals nothing and has no place in the order; -0 is 0.
func indexNumber(value any) (float64, bool) {
	n, ok := asNumber(value)
	if !ok || n != n {
		return 0, false
	}
	return normZero(n), true
}

// newIndexOf builds the index on field of records with one sort.
func newIndexOf(field string, records map[string]events.Record) *Index {
	ix := NewIndex(field)
	var nums []entry[float64]
	var strs []entry[string]
	for k, r := range records {
		v := r[field]
		if n, ok := indexNumber(v); ok {
			nums = append(nums, entry[float64]{n, k})
			continue
		}
		if s, ok := v.(string); ok {
			strs = append(strs, entry[string]{s, k})
			continue
		}
		ix.Add(v, k)
	}
	slices.SortFunc(nums, compareEntries[float64])
	slices.SortFunc(strs, compareEntries[string])
	ix.nums.fill(nums)
	ix.strs.fill(strs)
	return ix
}

// Remove forgets that the record under key has value.
func (ix *Index) Remove(value any, key string) {
	if n, ok := indexNumber(value); ok {
		ix.nums.remove(entry[float64]{n, key})
		return
	}
	switch v := value.(type) {
	case string:
		ix.strs.remove(entry[string]{v, key})
	case bool:
		delete(ix.bools[boolIndex(v)], key)
	}
}

// Equal returns the keys of the records whose field equals value, in no
// particular order.
func (ix *Index) Equal(value any) []string {
	if n, ok := asNumber(value); ok {
		return equalKeys(&ix.nums, normZero(n))
	}
	switch v := value.(type) {
	case string:
		return equalKeys(&ix.strs, v)
	case bool:
		return appendKeys(nil, ix.bools[boolIndex(v)])
	}
	return nil
}

// equalKeys returns the keys of the run of entries of value v.
func equalKeys[V cmp.Ordered](s *sortedSet[entry[V]], v V) []string {
	var out []string
	s.ascend(&entry[V]{v: v}, func(e entry[V]) bool {
		if e.v != v {
			return false
		}
		out = append(out, e.key)
		return true
	})
	return out
}

// Range returns the keys of the records whose field lies between lo and hi,
// in no particular order. A nil bound is open; loIncl and hiIncl make the
// bounds inclusive. The bounds' type (float64 or string) selects the values
// considered: a numeric range returns only numeric values. With both bounds
// nil, every numeric and string value is in range. Bounds of different or
// other types return nil.
func (ix *Index) Range(lo, hi any, loIncl, hiIncl bool) []string {
	switch {
	case lo == nil && hi == nil:
		out := rangeKeys(&ix.nums, nil, nil, false, false, nil)
		return rangeKeys(&ix.strs, nil, nil, false, false, out)
	case isType[float64](lo, hi):
		l, h := bound[float64](lo), bound[float64](hi)
		if l != nil {
			*l = normZero(*l)
		}
		if h != nil {
			*h = normZero(*h)
		}
		return rangeKeys(&ix.nums, l, h, loIncl, hiIncl, nil)
	case isType[string](lo, hi):
		return rangeKeys(&ix.strs, bound[string](lo), bound[string](hi), loIncl, hiIncl, nil)
	}
	return nil
}

// rangeKeys appends to out the keys of the entries between lo and hi (nil:
// open), in order.
func rangeKeys[V cmp.Ordered](s *sortedSet[entry[V]], lo, hi *V, loIncl, hiIncl bool, out []string) []string {
	var from *entry[V]
	if lo != nil {
		from = &entry[V]{v: *lo}
	}
	s.ascend(from, func(e entry[V]) bool {
		if lo != nil && !loIncl && e.v == *lo {
			return true
		}
		if hi != nil && (e.v > *hi || !hiIncl && e.v == *hi) {
			return false
		}
		out = append(out, e.key)
		return true
	})
	return out
}

// isType reports whether every non-nil bound is a T.
func isType[T any](bounds ...any) bool {
	for _, b := range bounds {
		if _, ok := b.(T); b != nil && !ok {
			return false
		}
	}
	return true
}

func bound[T any](b any) *T {
	if v, ok := b.(T); ok {
		return &v
	}
	return nil
}

// normZero maps -0 to 0: they are equal numbers and must share one entry.
func normZero(v float64) float64 {
	if v == 0 {
		return 0
	}
	return v
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

func appendKeys(out []string, set keySet) []string {
	for k := range set {
		out = append(out, k)
	}
	return out
}

// blockSize bounds the blocks of a sortedSet: a block holds at most
// 2*blockSize values.
const blockSize = 256

// sortedSet is an ordered set of distinct values kept as a list of sorted
// blocks, ordered by cmp. A lookup is two binary searches, O(log n); an
// insert or remove also moves at most one block (O(blockSize)) and, when a
// block splits or empties, the block list (O(n/blockSize)). A single sorted
// slice would make each insert O(n), which is quadratic when a unique field
// is replayed in random order.
type sortedSet[T any] struct {
	blocks [][]T
	cmp    func(a, b T) int
}

// find returns the position of the first value >= v: block bi (len(blocks)
// when there is none) and offset i within it, and whether v is there.
func (s *sortedSet[T]) find(v T) (bi, i int, found bool) {
	bi = sort.Search(len(s.blocks), func(j int) bool {
		b := s.blocks[j]
		return s.cmp(b[len(b)-1], v) >= 0
	})
	if bi < len(s.blocks) {
		i, found = slices.BinarySearchFunc(s.blocks[bi], v, s.cmp)
	}
	return bi, i, found
}

// fill replaces the set's values with sorted, distinct values vs: what a
// rebuild does instead of inserting them one by one. The set keeps vs.
func (s *sortedSet[T]) fill(vs []T) {
	s.blocks = s.blocks[:0]
	for len(vs) > 0 {
		n := min(len(vs), blockSize)
		s.blocks = append(s.blocks, vs[:n:n]) // capped: a block's growth never overwrites the next
		vs = vs[n:]
	}
}

func (s *sortedSet[T]) insert(v T) {
	if len(s.blocks) == 0 {
		s.blocks = [][]T{{v}}
		return
	}
	bi, i, found := s.find(v)
	if found {
		return
	}
	if bi == len(s.blocks) {
		bi = len(s.blocks) - 1
		i = len(s.blocks[bi])
	}
	b := slices.Insert(s.blocks[bi], i, v)
	if len(b) <= 2*blockSize {
		s.blocks[bi] = b
		return
	}
	// Split; the left half is capped so that its growth never overwrites the
	// right half.
	right := slices.Clone(b[blockSize:])
	s.blocks[bi] = b[:blockSize:blockSize]
	s.blocks = slices.Insert(s.blocks, bi+1, right)
}

func (s *sortedSet[T]) remove(v T) {
	bi, i, found := s.find(v)
	if !found {
		return
	}
	b := slices.Delete(s.blocks[bi], i, i+1)
	if len(b) == 0 {
		s.blocks = slices.Delete(s.blocks, bi, bi+1)
		return
	}
	s.blocks[bi] = b
}

// ascend calls fn for each value from the first >= from (nil: the first
// of all) in ascending order, until fn returns false.
func (s *sortedSet[T]) ascend(from *T, fn func(T) bool) {
	bi, i := 0, 0
	if from != nil {
		bi, i, _ = s.find(*from)
	}
	for ; bi < len(s.blocks); bi, i = bi+1, 0 {
		for _, v := range s.blocks[bi][i:] {
			if !fn(v) {
				return
			}
		}
	}
}
