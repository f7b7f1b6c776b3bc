package projections

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/storeloop/storeloop/events"
)

// Limits of a where object, so that one request cannot make the store spend
// unbounded time compiling or matching.
const (
	// MaxWhereDepth is how deeply $or / $and may nest.
	MaxWhereDepth = 16
	// MaxWhereConditions caps the where objects plus field conditions in one
	// where.
	MaxWhereConditions = 1000
)

// Operators of a where object.
const (
	OpEq         = "$eq"
	OpNeq        = "$neq"
	OpGt         = "$gt"
	OpGte        = "$gte"
	OpLt         = "$lt"
	OpLte        = "$lte"
	OpIn         = "$in"
	OpNin        = "$nin"
	OpContains   = "$contains"
	OpStartsWith = "$startsWith"
	OpEndsWith   = "$endsWith"
	OpExists     = "$exists"
	OpBetween    = "$between"
	OpOr         = "$or"
	OpAnd        = "$and"
)

// Filter is a compiled where object; Match tests a record against it. The
// zero Filter and a nil *Filter match every record. A Filter is immutable and
// safe for concurrent use.
type Filter struct {
	conds []cond    // all must match
	and   []*Filter // all must match
	or    []*Filter // when present, at least one must match
}

// cond is one field condition.
type cond struct {
	field string
	path  []string // field split at dots
	op    string
	arg   any   // the operand, normalized to JSON types
	list  []any // the elements of $in, $nin and $between
}

// CompileWhere compiles a where object: the query filter of store.query,
// store.count, store.aggregate and rule queries.
//
// A where object maps field names to conditions; all of them must hold. A
// condition is a literal (equality) or an operator object such as
// {"$gte": 18, "$lt": 65}, whose operators must all hold. The keys "$or" and
// "$and" take a non-empty array of where objects (nesting up to
// MaxWhereDepth): "$or" holds when at least one does, "$and" when all do.
//
// A field name may be a dot path into nested objects ("address.city"); a dot
// always separates path segments. A field is missing when the record, or an
// object on the path, lacks it.
//
// Semantics:
//   - Equality ($eq and literals, $in, $neq, $nin): values of different JSON
//     types are never equal (1 is not "1"); numbers compare as float64;
//     arrays and objects compare deeply; null equals only null. A missing
//     field equals nothing, so $neq and $nin match it.
//   - Ordering ($gt $gte $lt $lte, $between with two inclusive bounds):
//     numbers compare numerically and strings byte-wise; a value of another
//     type than the operand never matches. The operand must be a number or a
//     string.
//   - $contains: substring for a string field (operand a string), element
//     equality for an array field; any other field does not match.
//   - $startsWith, $endsWith: string prefix or suffix; the operand must be a
//     string and a non-string field does not match.
//   - $exists: true matches a present, non-null field; false matches a
//     missing or null field.
//
// A nil or empty where matches every record. A malformed where (unknown
// operator, wrong operand type, operators mixed with plain fields in one
// object, limits exceeded) is an *events.Error with code bad_request naming
// the field and operator.
func CompileWhere(w events.Where) (*Filter, error) {
	v, err := normalize(w)
	if err != nil {
		return nil, badWhere("where is not JSON: %v", err)
	}
	m, _ := v.(map[string]any) // a nil Where normalizes to nil: match all
	c := compiler{}
	return c.where(m, 0)
}

// compiler counts conditions across one CompileWhere.
type compiler struct{ n int }

func (c *compiler) count() error {
	c.n++
	if c.n > MaxWhereConditions {
		return badWhere("more than %d conditions", MaxWhereConditions)
	}
	return nil
}

func (c *compiler) where(w map[string]any, depth int) (*Filter, error) {
	if depth > MaxWhereDepth {
		return nil, badWhere("$or/$and nested deeper than %d", MaxWhereDepth)
	}
	if err := c.count(); err != nil {
		return nil, err
	}
	f := &Filter{}
	for _, k := range sortedKeys(w) {
		v := w[k]
		switch {
		case k == OpOr || k == OpAnd:
			subs, err := c.list(k, v, depth+1)
			if err != nil {
				return nil, err
			}
			if k == OpOr {
				f.or = subs
			} else {
				f.and = subs
			}
		case strings.HasPrefix(k, "$"):
			return nil, badWhere("unknown top-level operator %s (want a field, $or or $and)", k)
		default:
			conds, err := c.field(k, v)
			if err != nil {
				return nil, err
			}
			f.conds = append(f.conds, conds...)
		}
	}
	return f, nil
}

// list compiles the operand of $or / $and.
func (c *compiler) list(op string, v any, depth int) ([]*Filter, error) {
	arr, ok := v.([]any)
	if !ok || len(arr) == 0 {
		return nil, badWhere("%s wants a non-empty array of where objects", op)
	}
	out := make([]*Filter, 0, len(arr))
	for i, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, badWhere("%s[%d] is not a where object", op, i)
		}
		f, err := c.where(m, depth)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// field compiles the condition on one field: a literal or an operator object.
func (c *compiler) field(name string, v any) ([]cond, error) {
	path := strings.Split(name, ".")
	if slices.Contains(path, "") {
		return nil, badWhere("field %q: empty path segment", name)
	}
	m, isObj := v.(map[string]any)
	if !isObj || !hasOperator(m) {
		if err := c.count(); err != nil {
			return nil, err
		}
		return []cond{{field: name, path: path, op: OpEq, arg: v}}, nil
	}
	var out []cond
	for _, op := range sortedKeys(m) {
		if !strings.HasPrefix(op, "$") {
			return nil, badWhere("field %q: operator object mixes operators and the plain field %q", name, op)
		}
		if err := c.count(); err != nil {
			return nil, err
		}
		cd, err := compileOp(name, path, op, m[op])
		if err != nil {
			return nil, err
		}
		out = append(out, cd)
	}
	return out, nil
}

func compileOp(name string, path []string, op string, arg any) (cond, error) {
	cd := cond{field: name, path: path, op: op, arg: arg}
	bad := func(want string) (cond, error) {
		return cond{}, badWhere("field %q: %s wants %s, got %s", name, op, want, jsonText(arg))
	}
	switch op {
	case OpEq, OpNeq, OpContains:
	case OpGt, OpGte, OpLt, OpLte:
		if !orderable(arg) {
			return bad("a number or a string")
		}
	case OpIn, OpNin:
		arr, ok := arg.([]any)
		if !ok {
			return bad("an array")
		}
		cd.list = arr
	case OpBetween:
		arr, ok := arg.([]any)
		if !ok || len(arr) != 2 || !orderable(arr[0]) || !sameType(arr[0], arr[1]) {
			return bad("an array of two numbers or two strings")
		}
		cd.list = arr
	case OpStartsWith, OpEndsWith:
		if _, ok := arg.(string); !ok {
			return bad("a string")
		}
	case OpExists:
		if _, ok := arg.(bool); !ok {
			return bad("a boolean")
		}
	default:
		return cond{}, badWhere("field %q: unknown operator %s", name, op)
	}
	return cd, nil
}

// Match reports whether r satisfies the filter.
func (f *Filter) Match(r events.Record) bool {
	if f == nil {
		return true
	}
	for i := range f.conds {
		if !f.conds[i].match(r) {
			return false
		}
	}
	for _, a := range f.and {
		if !a.Match(r) {
			return false
		}
	}
	if len(f.or) == 0 {
		return true
	}
	for _, o := range f.or {
		if o.Match(r) {
			return true
		}
	}
	return false
}

func (c *cond) match(r events.Record) bool {
	v, ok := lookup(r, c.path)
	switch c.op {
	case OpEq:
		return ok && equal(v, c.arg)
	case OpNeq:
		return !ok || !equal(v, c.arg)
	case OpIn:
		return ok && containsEqual(c.list, v)
	case OpNin:
		return !ok || !containsEqual(c.list, v)
	case OpGt, OpGte, OpLt, OpLte:
		n, comparable := compare(v, c.arg)
		if !ok || !comparable {
			return false
		}
		switch c.op {
		case OpGt:
			return n > 0
		case OpGte:
			return n >= 0
		case OpLt:
			return n < 0
		}
		return n <= 0
	case OpBetween:
		lo, okLo := compare(v, c.list[0])
		hi, okHi := compare(v, c.list[1])
		return ok && okLo && okHi && lo >= 0 && hi <= 0
	case OpContains:
		switch x := v.(type) {
		case string:
			s, isStr := c.arg.(string)
			return isStr && strings.Contains(x, s)
		case []any:
			return containsEqual(x, c.arg)
		}
		return false
	case OpStartsWith:
		s, isStr := v.(string)
		return isStr && strings.HasPrefix(s, c.arg.(string))
	case OpEndsWith:
		s, isStr := v.(string)
		return isStr && strings.HasSuffix(s, c.arg.(string))
	case OpExists:
		return (ok && v != nil) == c.arg.(bool)
	}
	return false
}

// lookup follows a dot path into r.
func lookup(r map[string]any, path []string) (any, bool) {
	var v any = r
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[p]; !ok {
			return nil, false
		}
	}
	return v, true
}

// equal is JSON value equality: same type and same value, deeply.
func equal(a, b any) bool {
	if x, ok := asNumber(a); ok {
		y, ok := asNumber(b)
		return ok && x == y
	}
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case []any:
		y, ok := b.([]any)
		return ok && slices.EqualFunc(x, y, equal)
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !equal(xv, yv) {
				return false
			}
		}
		return true
	}
	return false
}

func containsEqual(list []any, v any) bool {
	return slices.ContainsFunc(list, func(e any) bool { return equal(e, v) })
}

// compare orders two numbers or two strings; ok is false for anything else.
func compare(a, b any) (n int, ok bool) {
	if x, ok := asNumber(a); ok {
		y, ok := asNumber(b)
		if !ok || x != x || y != y {
			return 0, false
		}
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	}
	x, okA := a.(string)
	y, okB := b.(string)
	if !okA || !okB {
		return 0, false
	}
	return strings.Compare(x, y), true
}

// asNumber accepts the numeric types a record built in Go may hold besides
// JSON's float64.
func asNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float32:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

func orderable(v any) bool {
	switch v.(type) {
	case float64, string:
		return true
	}
	return false
}

func sameType(a, b any) bool {
	_, aNum := a.(float64)
	_, bNum := b.(float64)
	_, aStr := a.(string)
	_, bStr := b.(string)
	return aNum == bNum && aStr == bStr
}

func hasOperator(m map[string]any) bool {
	for k := range m {
		if strings.HasPrefix(k, "$") {
			return true
		}
	}
	return false
}

// normalize turns a where built in Go (ints, []string, nested events.Where)
// into the JSON types that decoding a request yields, so that compiling and
// matching deal with one representation.
func normalize(v any) (any, error) {
	switch x := v.(type) {
	case nil, string, bool, float64:
		return v, nil
	case map[string]any:
		if x == nil {
			return nil, nil
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(data, &out)
	return out, err
}

// jsonText renders an operand for an error message, shortened.
func jsonText(v any) string {
	data, _ := json.Marshal(v)
	if len(data) > 40 {
		return string(data[:40]) + "…"
	}
	return string(data)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func badWhere(format string, args ...any) *events.Error {
	return events.Errorf(events.CodeBadRequest, "where: %s", fmt.Sprintf(format, args...))
}
