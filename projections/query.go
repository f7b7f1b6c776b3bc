package projections

import (
	"cmp"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"

	"github.com/storeloop/storeloop/events"
)

// Page sizes of Query.
const (
	DefaultQueryLimit = 1000
	MaxQueryLimit     = 10000
)

// Aggregate functions.
const (
	AggSum = "sum"
	AggAvg = "avg"
	AggMin = "min"
	AggMax = "max"
)

// Query returns the records matching w in key order (see CompareKeys), at
// most limit of them (limit <= 0 means DefaultQueryLimit; more than
// MaxQueryLimit is bad_request), starting strictly after the cursor after
// ("" starts at the beginning). nextCursor is "" when no match follows the
// page, else the cursor to pass as after for the next page. A cursor names a
// key, not a position, so paging neither loses nor repeats records that stay
// in place while other records come and go.
//
// The records are the bucket's own and must not be modified.
func (b *Bucket) Query(w events.Where, limit int, after string) (records []events.Record, nextCursor string, err error) {
	f, err := CompileWhere(w)
	if err != nil {
		return nil, "", err
	}
	return b.Scan(f).Query(limit, after)
}

// Query is Bucket.Query on the scan's filter.
func (s *Scan) Query(limit int, after string) (records []events.Record, nextCursor string, err error) {
	switch {
	case limit <= 0:
		limit = DefaultQueryLimit
	case limit > MaxQueryLimit:
		return nil, "", events.Errorf(events.CodeBadRequest, "limit %d is above the maximum %d", limit, MaxQueryLimit)
	}
	var start *keyOrder
	if after != "" {
		k, err := decodeCursor(after)
		if err != nil {
			return nil, "", err
		}
		start = &k
	}
	var keys []keyOrder
	s.each(func(k string, _ events.Record) {
		ko := orderOf(k)
		if start == nil || compareOrder(ko, *start) > 0 {
			keys = append(keys, ko)
		}
	})
	slices.SortFunc(keys, compareOrder)
	if len(keys) > limit {
		keys = keys[:limit]
		nextCursor = Cursor(keys[limit-1].key)
	}
	records = make([]events.Record, len(keys))
	for i, k := range keys {
		records[i] = s.b.records[k.key]
	}
	return records, nextCursor, nil
}

// Count returns the number of records matching w.
func (b *Bucket) Count(w events.Where) (int, error) {
	f, err := CompileWhere(w)
	if err != nil {
		return 0, err
	}
	return b.Scan(f).Count(), nil
}

// Count is Bucket.Count on the scan's filter.
func (s *Scan) Count() int {
	if s.f.matchesAll() {
		return len(s.b.records)
	}
	n := 0
	s.each(func(string, events.Record) { n++ })
	return n
}

// Aggregate computes fn (sum, avg, min or max) over the numeric values of
// field (a dot path is allowed) in the records matching w; records where the
// field is missing or not a number are skipped. The sum of no values is 0;
// avg, min and max of no values are nil. The result is a float64 or nil.
func (b *Bucket) Aggregate(fn, field string, w events.Where) (any, error) {
	f, err := CompileWhere(w)
	if err != nil {
		return nil, err
	}
	return b.Scan(f).Aggregate(fn, field)
}

// Aggregate is Bucket.Aggregate on the scan's filter.
func (s *Scan) Aggregate(fn, field string) (any, error) {
	switch fn {
	case AggSum, AggAvg, AggMin, AggMax:
	default:
		return nil, events.Errorf(events.CodeBadRequest, "aggregate: unknown fn %q (want sum, avg, min or max)", fn)
	}
	if field == "" {
		return nil, events.Errorf(events.CodeBadRequest, "aggregate: field is required")
	}
	path := strings.Split(field, ".")
	var sum, lo, hi float64
	n := 0
	s.each(func(_ string, r events.Record) {
		v, _ := lookup(r, path)
		x, ok := asNumber(v)
		if !ok {
			return
		}
		if n == 0 || x < lo {
			lo = x
		}
		if n == 0 || x > hi {
			hi = x
		}
		sum += x
		n++
	})
	switch {
	case fn == AggSum:
		return sum, nil
	case n == 0:
		return nil, nil
	case fn == AggAvg:
		return sum / float64(n), nil
	case fn == AggMin:
		return lo, nil
	}
	return hi, nil
}

// ScanCost is how many records Query, MatchKeys or Aggregate visit for a
// filter f: the candidates its indexes give, else every record. A count of
// everything visits none. It lets a caller refuse a costly scan before
// running it.
func (b *Bucket) ScanCost(f *Filter, counting bool) int { return b.Scan(f).Cost(counting) }

// MatchKeys returns the canonical keys (events.KeyString) of the records
// matching f, in key order. A transaction uses it to check that a query's
// result set is still what the caller saw.
func (b *Bucket) MatchKeys(f *Filter) []string {
	var keys []keyOrder
	b.Scan(f).each(func(k string, _ events.Record) { keys = append(keys, orderOf(k)) })
	return sortedKeyStrings(keys)
}

// Keys returns the canonical keys of every record, in key order.
func (b *Bucket) Keys() []string {
	keys := make([]keyOrder, 0, len(b.records))
	for k := range b.records {
		keys = append(keys, orderOf(k))
	}
	return sortedKeyStrings(keys)
}

// CompareKeys orders canonical keys (events.KeyString): numeric keys first,
// ascending, then string keys in byte order. It is a total order (number
// keys are canonical: no two distinct ones are equal numbers).
func CompareKeys(a, b string) int { return compareOrder(orderOf(a), orderOf(b)) }

// keyOrder is a canonical key with its number parsed once for sorting.
type keyOrder struct {
	key string
	num bool
	n   float64
}

func orderOf(k string) keyOrder {
	if strings.HasPrefix(k, "n:") {
		if n, err := strconv.ParseFloat(k[2:], 64); err == nil {
			return keyOrder{key: k, num: true, n: n}
		}
	}
	return keyOrder{key: k}
}

func compareOrder(a, b keyOrder) int {
	switch {
	case a.num && !b.num:
		return -1
	case !a.num && b.num:
		return 1
	case a.num:
		if c := cmp.Compare(a.n, b.n); c != 0 {
			return c
		}
	}
	return strings.Compare(a.key, b.key)
}

func sortedKeyStrings(keys []keyOrder) []string {
	slices.SortFunc(keys, compareOrder)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.key
	}
	return out
}

// Cursor is the query cursor that starts a page right after the canonical
// key k (see events.KeyString).
func Cursor(k string) string { return base64.RawURLEncoding.EncodeToString([]byte(k)) }

// CursorLen is len(Cursor(k)).
func CursorLen(k string) int { return base64.RawURLEncoding.EncodedLen(len(k)) }

// decodeCursor accepts only what encodeCursor makes: a valid key in its
// canonical form.
func decodeCursor(c string) (keyOrder, error) {
	data, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		var key any
		if key, err = events.ParseKeyString(string(data)); err == nil {
			var canon string
			if canon, err = events.KeyString(key); err == nil && canon == string(data) {
				return orderOf(canon), nil
			}
		}
	}
	return keyOrder{}, events.Errorf(events.CodeBadRequest, "after: %q is not a query cursor", c)
}

// candidates returns, without duplicates, a superset of the keys of the
// records matching f taken from indexes, and true; or false when no index
// narrows f and the bucket must be scanned. Among the conjuncts that an index
// can answer (an equality, $in, or the combined range bounds on one indexed
// top-level field, a nested $and, an $or whose every branch is answerable),
// it picks the smallest candidate set.
func (b *Bucket) candidates(f *Filter) ([]string, bool) {
	if f == nil {
		return nil, false
	}
	var best []string
	found := false
	consider := func(keys []string) {
		if !found || len(keys) < len(best) {
			best, found = keys, true
		}
	}
	ranges := map[rangeKey]*span{}
	var order []rangeKey // ranges in condition order, for determinism
	for i := range f.conds {
		c := &f.conds[i]
		ix := b.indexes[c.field]
		if ix == nil || len(c.path) != 1 {
			continue
		}
		switch c.op {
		case OpEq:
			if indexable(c.arg) {
				consider(ix.Equal(c.arg))
			}
		case OpIn:
			if keys, ok := inCandidates(ix, c.list); ok {
				consider(keys)
			}
		case OpGt, OpGte, OpLt, OpLte, OpBetween:
			operand := c.arg
			if c.op == OpBetween {
				operand = c.list[0]
			}
			rk := rangeKey{c.field, isString(operand)}
			s := ranges[rk]
			if s == nil {
				s = &span{}
				ranges[rk] = s
				order = append(order, rk)
			}
			s.add(c)
		}
	}
	for _, rk := range order {
		s := ranges[rk]
		consider(b.indexes[rk.field].Range(s.lo, s.hi, s.loIncl, s.hiIncl))
	}
	for _, a := range f.and {
		if keys, ok := b.candidates(a); ok {
			consider(keys)
		}
	}
	if len(f.or) > 0 {
		parts := make([][]string, 0, len(f.or))
		for _, o := range f.or {
			keys, ok := b.candidates(o)
			if !ok {
				parts = nil
				break
			}
			parts = append(parts, keys)
		}
		if parts != nil {
			consider(union(parts))
		}
	}
	return best, found
}

func inCandidates(ix *Index, list []any) ([]string, bool) {
	parts := make([][]string, 0, len(list))
	for _, v := range list {
		if !indexable(v) {
			return nil, false
		}
		parts = append(parts, ix.Equal(v))
	}
	return union(parts), true
}

// union merges key lists without duplicates.
func union(parts [][]string) []string {
	if len(parts) == 1 {
		return parts[0]
	}
	seen := map[string]struct{}{}
	var out []string
	for _, p := range parts {
		for _, k := range p {
			if _, dup := seen[k]; !dup {
				seen[k] = struct{}{}
				out = append(out, k)
			}
		}
	}
	return out
}

// indexable reports whether an index holds the records equal to v.
func indexable(v any) bool {
	switch x := v.(type) {
	case string, bool:
		return true
	case float64:
		return x == x // NaN is not indexed
	}
	return false
}

func isString(v any) bool {
	_, ok := v.(string)
	return ok
}

// rangeKey groups the range conditions on one field and operand type.
type rangeKey struct {
	field  string
	string bool
}

// span is the intersection of range conditions of one type on one field.
type span struct {
	lo, hi         any
	loIncl, hiIncl bool
}

func (s *span) add(c *cond) {
	switch c.op {
	case OpGt:
		s.raise(c.arg, false)
	case OpGte:
		s.raise(c.arg, true)
	case OpLt:
		s.lower(c.arg, false)
	case OpLte:
		s.lower(c.arg, true)
	case OpBetween:
		s.raise(c.list[0], true)
		s.lower(c.list[1], true)
	}
}

// raise tightens the lower bound to v.
func (s *span) raise(v any, incl bool) {
	n, _ := compare(v, s.lo)
	if s.lo == nil || n > 0 || n == 0 && !incl {
		s.lo, s.loIncl = v, incl
	}
}

// lower tightens the upper bound to v.
func (s *span) lower(v any, incl bool) {
	n, _ := compare(v, s.hi)
	if s.hi == nil || n < 0 || n == 0 && !incl {
		s.hi, s.hiIncl = v, incl
	}
}

// matchesAll reports whether f has no condition at all.
func (f *Filter) matchesAll() bool {
	return f == nil || len(f.conds) == 0 && len(f.and) == 0 && len(f.or) == 0
}
