package projections

import (
	"cmp"
	"slices"
	"sort"

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
type Index struct {
	Field string
	nums  map[float64]keySet
	strs  map[string]keySet
	bools [2]keySet
	// Distinct values in order, for Range.
	numOrder sortedSet[float64]
	strOrder sortedSet[string]
}

// keySet is the set of record keys sharing one value.
type keySet map[string]struct{}

// NewIndex returns an empty index on field.
func NewIndex(field string) *Index {
	return &Index{Field: field, nums: map[float64]keySet{}, strs: map[string]keySet{}}
}

// Add records that the record under key has value.
func (ix *Index) Add(value any, key string) { ix.add(value, key, true) }

// add is Add; without ordered, a new value is left out of the order
// (newIndexOf sorts them all at once).
func (ix *Index) add(value any, key string, ordered bool) {
	if n, ok := asNumber(value); ok {
		if n != n { // NaN equals nothing and has no place in the order
			return
		}
		n = normZero(n)
		if addKey(ix.nums, n, key) && ordered {
			ix.numOrder.insert(n)
		}
		return
	}
	switch v := value.(type) {
	case string:
		if addKey(ix.strs, v, key) && ordered {
			ix.strOrder.insert(v)
		}
	case bool:
		i := boolIndex(v)
		if ix.bools[i] == nil {
			ix.bools[i] = keySet{}
		}
		ix.bools[i][key] = struct{}{}
	}
}

// newIndexOf builds the index on field of records.
func newIndexOf(field string, records map[string]events.Record) *Index {
	ix := NewIndex(field)
	for k, r := range records {
		ix.add(r[field], k, false)
	}
	ix.numOrder, ix.strOrder = sortedSetOf(ix.nums), sortedSetOf(ix.strs)
	return ix
}

// Remove forgets that the record under key has value.
func (ix *Index) Remove(value any, key string) {
	if n, ok := asNumber(value); ok {
		n = normZero(n)
		if removeKey(ix.nums, n, key) {
			ix.numOrder.remove(n)
		}
		return
	}
	switch v := value.(type) {
	case string:
		if removeKey(ix.strs, v, key) {
			ix.strOrder.remove(v)
		}
	case bool:
		delete(ix.bools[boolIndex(v)], key)
	}
}

// Equal returns the keys of the records whose field equals value, in no
// particular order.
func (ix *Index) Equal(value any) []string {
	if n, ok := asNumber(value); ok {
		return appendKeys(nil, ix.nums[normZero(n)])
	}
	switch v := value.(type) {
	case string:
		return appendKeys(nil, ix.strs[v])
	case bool:
		return appendKeys(nil, ix.bools[boolIndex(v)])
	}
	return nil
}

// Range returns the keys of the records whose field lies between lo and hi,
// in no particular order. A nil bound is open; loIncl and hiIncl make the
// bounds inclusive. The bounds' type (float64 or string) selects the values
// considered: a numeric range returns only numeric values. With both bounds
// nil, every numeric and string value is in range. Bounds of different or
// other types return nil.
func (ix *Index) Range(lo, hi any, loIncl, hiIncl bool) []string {
	var out []string
	switch {
	case lo == nil && hi == nil:
		ix.numOrder.ascend(nil, nil, false, false, func(v float64) { out = appendKeys(out, ix.nums[v]) })
		ix.strOrder.ascend(nil, nil, false, false, func(v string) { out = appendKeys(out, ix.strs[v]) })
	case isType[float64](lo, hi):
		l, h := bound[float64](lo), bound[float64](hi)
		if l != nil {
			*l = normZero(*l)
		}
		if h != nil {
			*h = normZero(*h)
		}
		ix.numOrder.ascend(l, h, loIncl, hiIncl, func(v float64) { out = appendKeys(out, ix.nums[v]) })
	case isType[string](lo, hi):
		ix.strOrder.ascend(bound[string](lo), bound[string](hi), loIncl, hiIncl, func(v string) { out = appendKeys(out, ix.strs[v]) })
	}
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

// addKey adds key to m[v] and reports whether v is a new value.
func addKey[T comparable](m map[T]keySet, v T, key string) bool {
	set, ok := m[v]
	if !ok {
		set = keySet{}
		m[v] = set
	}
	set[key] = struct{}{}
	return !ok
}

// removeKey removes key from m[v] and reports whether v is gone.
func removeKey[T comparable](m map[T]keySet, v T, key string) bool {
	set, ok := m[v]
	if !ok {
		return false
	}
	delete(set, key)
	if len(set) > 0 {
		return false
	}
	delete(m, v)
	return true
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
// blocks. A lookup is two binary searches, O(log n); an insert or remove also
// moves at most one block (O(blockSize)) and, when a block splits or empties,
// the block list (O(n/blockSize)). A single sorted slice would make each
// insert O(n), which is quadratic when a unique field is replayed in random
// order.
type sortedSet[T cmp.Ordered] struct {
	blocks [][]T
}

// find returns the position of the first value >= v: block bi (len(blocks)
// when there is none) and offset i within it.
func (s *sortedSet[T]) find(v T) (bi, i int) {
	bi = sort.Search(len(s.blocks), func(j int) bool {
		b := s.blocks[j]
		return b[len(b)-1] >= v
	})
	if bi < len(s.blocks) {
		i, _ = slices.BinarySearch(s.blocks[bi], v)
	}
	return bi, i
}

// sortedSetOf returns the set of the keys of m, sorted once: what a
// rebuild does instead of inserting them one by one.
func sortedSetOf[T cmp.Ordered](m map[T]keySet) sortedSet[T] {
	vs := make([]T, 0, len(m))
	for v := range m {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	var s sortedSet[T]
	for len(vs) > 0 {
		n := min(len(vs), blockSize)
		s.blocks = append(s.blocks, vs[:n:n]) // capped: a block's growth never overwrites the next
		vs = vs[n:]
	}
	return s
}

func (s *sortedSet[T]) insert(v T) {
	if len(s.blocks) == 0 {
		s.blocks = [][]T{{v}}
		return
	}
	bi, i := s.find(v)
	if bi == len(s.blocks) {
		bi = len(s.blocks) - 1
		i = len(s.blocks[bi])
	} else if s.blocks[bi][i] == v {
		return
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
	bi, i := s.find(v)
	if bi == len(s.blocks) || s.blocks[bi][i] != v {
		return
	}
	b := slices.Delete(s.blocks[bi], i, i+1)
	if len(b) == 0 {
		s.blocks = slices.Delete(s.blocks, bi, bi+1)
		return
	}
	s.blocks[bi] = b
}

// ascend calls fn for each value between lo and hi in ascending order; a nil
// bound is open.
func (s *sortedSet[T]) ascend(lo, hi *T, loIncl, hiIncl bool, fn func(T)) {
	bi, i := 0, 0
	if lo != nil {
		bi, i = s.find(*lo)
	}
	for ; bi < len(s.blocks); bi, i = bi+1, 0 {
		for _, v := range s.blocks[bi][i:] {
			if lo != nil && !loIncl && v == *lo {
				continue
			}
			if hi != nil && (v > *hi || (!hiIncl && v == *hi)) {
				return
			}
			fn(v)
		}
	}
}
