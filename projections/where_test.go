package projections

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/storeloop/storeloop/events"
)

// people is the data set of the operator tests; ids 1..7.
var people = []string{
	`{"id":1,"name":"alice","age":30,"tags":["a","b"],"address":{"city":"Paris","zip":"75001"},"active":true,"score":10}`,
	`{"id":2,"name":"bob","age":"30","tags":[],"address":{"city":"Berlin"},"active":false,"nick":null}`,
	`{"id":3,"name":"carol","age":45,"tags":["b"],"address":"nowhere","score":-0}`,
	`{"id":4,"name":"dave"}`,
	`{"id":5,"name":"eve","age":18,"nick":"e","tags":["a",1],"address":{"city":"Paris"},"score":2.5}`,
	`{"id":6,"name":"Zed","age":-3.5,"tags":"a,b","address":{"city":{"name":"Paris"}}}`,
	`{"id":7,"name":"","age":null,"active":"true"}`,
}

// peopleFields are the top-level fields of people, all indexed in the
// indexed variant of the operator tests.
var peopleFields = []string{"name", "age", "tags", "address", "active", "score", "nick"}

func TestWhereOperators(t *testing.T) {
	cases := []struct {
		name  string
		where string
		want  []float64 // ids in key order
	}{
		{"nil where", `null`, []float64{1, 2, 3, 4, 5, 6, 7}},
		{"empty where", `{}`, []float64{1, 2, 3, 4, 5, 6, 7}},
		{"literal number", `{"age":30}`, []float64{1}},
		{"literal string is not the number", `{"age":"30"}`, []float64{2}},
		{"literal true", `{"active":true}`, []float64{1}},
		{"literal false", `{"active":false}`, []float64{2}},
		{"literal null matches only null", `{"nick":null}`, []float64{2}},
		{"$eq null", `{"age":{"$eq":null}}`, []float64{7}},
		{"literal empty string", `{"name":""}`, []float64{7}},
		{"literal object deep equal", `{"address":{"city":"Berlin"}}`, []float64{2}},
		{"literal object needs all fields", `{"address":{"city":"Paris"}}`, []float64{5}},
		{"literal array", `{"tags":["a","b"]}`, []float64{1}},
		{"literal empty array", `{"tags":[]}`, []float64{2}},
		{"two fields AND", `{"age":30,"name":"alice"}`, []float64{1}},
		{"two fields AND no match", `{"age":30,"name":"bob"}`, nil},
		{"negative zero equals zero", `{"score":0}`, []float64{3}},
		{"dot path", `{"address.city":"Paris"}`, []float64{1, 5}},
		{"dot path through non-object", `{"address.city":{"$exists":true}}`, []float64{1, 2, 5, 6}},
		{"deep dot path", `{"address.city.name":"Paris"}`, []float64{6}},
		{"dot path missing is $neq", `{"address.zip":{"$neq":"75001"}}`, []float64{2, 3, 4, 5, 6, 7}},
		{"$eq", `{"name":{"$eq":"bob"}}`, []float64{2}},
		{"$neq matches missing and other types", `{"age":{"$neq":30}}`, []float64{2, 3, 4, 5, 6, 7}},
		{"$gt number skips string", `{"age":{"$gt":20}}`, []float64{1, 3}},
		{"$gte", `{"age":{"$gte":30}}`, []float64{1, 3}},
		{"$lt", `{"age":{"$lt":30}}`, []float64{5, 6}},
		{"$lte", `{"age":{"$lte":30}}`, []float64{1, 5, 6}},
		{"$lte zero and negative zero", `{"score":{"$lte":0}}`, []float64{3}},
		{"$gt string skips numbers", `{"age":{"$gt":""}}`, []float64{2}},
		{"$gt string lexical bytewise", `{"name":{"$gt":"bob"}}`, []float64{3, 4, 5}},
		{"$lt string uppercase first", `{"name":{"$lt":"a"}}`, []float64{6, 7}},
		{"range from two operators", `{"age":{"$gt":18,"$lt":45}}`, []float64{1}},
		{"empty range", `{"age":{"$gt":30,"$lt":30}}`, nil},
		{"$between numbers inclusive", `{"age":{"$between":[18,30]}}`, []float64{1, 5}},
		{"$between strings", `{"name":{"$between":["b","d"]}}`, []float64{2, 3}},
		{"$between reversed is empty", `{"age":{"$between":[30,18]}}`, nil},
		{"$in mixed types", `{"age":{"$in":[30,"30"]}}`, []float64{1, 2}},
		{"$in empty", `{"age":{"$in":[]}}`, nil},
		{"$in null", `{"nick":{"$in":[null]}}`, []float64{2}},
		{"$in objects", `{"address":{"$in":[{"city":"Berlin"},"nowhere"]}}`, []float64{2, 3}},
		{"$nin matches missing", `{"age":{"$nin":[30,45,null]}}`, []float64{2, 4, 5, 6}},
		{"$nin empty matches all", `{"age":{"$nin":[]}}`, []float64{1, 2, 3, 4, 5, 6, 7}},
		{"$contains substring", `{"name":{"$contains":"li"}}`, []float64{1}},
		{"$contains empty substring", `{"name":{"$contains":""}}`, []float64{1, 2, 3, 4, 5, 6, 7}},
		{"$contains array element", `{"tags":{"$contains":"a"}}`, []float64{1, 5, 6}},
		{"$contains array number element", `{"tags":{"$contains":1}}`, []float64{5}},
		{"$contains number on string field", `{"tags":{"$contains":2}}`, nil},
		{"$contains on number field", `{"age":{"$contains":3}}`, nil},
		{"$startsWith", `{"name":{"$startsWith":"ca"}}`, []float64{3}},
		{"$startsWith case-sensitive", `{"name":{"$startsWith":"z"}}`, nil},
		{"$startsWith on non-string", `{"age":{"$startsWith":"3"}}`, []float64{2}},
		{"$endsWith", `{"name":{"$endsWith":"e"}}`, []float64{1, 4, 5}},
		{"$exists true", `{"nick":{"$exists":true}}`, []float64{5}},
		{"$exists false matches missing and null", `{"nick":{"$exists":false}}`, []float64{1, 2, 3, 4, 6, 7}},
		{"$exists false nested", `{"address.zip":{"$exists":false}}`, []float64{2, 3, 4, 5, 6, 7}},
		{"$or", `{"$or":[{"age":30},{"name":"dave"}]}`, []float64{1, 4}},
		{"$or single branch", `{"$or":[{"age":45}]}`, []float64{3}},
		{"$or with empty branch matches all", `{"$or":[{"age":45},{}]}`, []float64{1, 2, 3, 4, 5, 6, 7}},
		{"$and", `{"$and":[{"age":{"$gte":18}},{"age":{"$lt":45}}]}`, []float64{1, 5}},
		{"$or ANDed with fields", `{"name":{"$startsWith":"a"},"$or":[{"age":30},{"age":45}]}`, []float64{1}},
		{"$and and $or together", `{"$and":[{"tags":{"$contains":"a"}}],"$or":[{"age":18},{"age":-3.5}]}`, []float64{5, 6}},
		{"nested $or in $and", `{"$and":[{"$or":[{"age":30},{"age":45}]},{"$or":[{"name":"carol"},{"name":"dave"}]}]}`, []float64{3}},
		{"nested $and in $or", `{"$or":[{"$and":[{"age":{"$gt":0}},{"age":{"$lt":20}}]},{"name":""}]}`, []float64{5, 7}},
		{"string true is not true", `{"active":"true"}`, []float64{7}},
	}
	indexed := []struct {
		name    string
		indexes []string
	}{{"scan", nil}, {"indexed", peopleFields}}
	for _, ix := range indexed {
		_, b := newBucket(t, ix.indexes, people...)
		for _, c := range cases {
			t.Run(ix.name+"/"+c.name, func(t *testing.T) {
				var w events.Where
				if err := json.Unmarshal([]byte(c.where), &w); err != nil {
					t.Fatal(err)
				}
				got := b.MatchKeys(mustCompile(t, w))
				want := []string{}
				for _, id := range c.want {
					want = append(want, mustKey(t, id))
				}
				if !slices.Equal(got, want) {
					t.Errorf("where %s: got %v, want %v", c.where, got, want)
				}
			})
		}
	}
}

// A where built in Go, with Go types, means the same as its JSON.
func TestWhereGoTypes(t *testing.T) {
	_, b := newBucket(t, nil, people...)
	cases := []struct {
		name  string
		where events.Where
		want  []string
	}{
		{"int literal", events.Where{"age": 30}, []string{"n:1"}},
		{"int operand", events.Where{"age": map[string]any{"$gte": int64(45)}}, []string{"n:3"}},
		{"typed slice $in", events.Where{"age": map[string]any{"$in": []int{18, 45}}}, []string{"n:3", "n:5"}},
		{"[]events.Where $or", events.Where{"$or": []events.Where{{"name": "bob"}, {"name": "eve"}}}, []string{"n:2", "n:5"}},
		{"typed []string literal", events.Where{"tags": []string{"a", "b"}}, []string{"n:1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := b.MatchKeys(mustCompile(t, c.where)); !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestFilterMatchNil(t *testing.T) {
	var f *Filter
	if !f.Match(events.Record{"a": 1.0}) || !f.Match(nil) {
		t.Error("nil filter must match every record")
	}
	if !mustCompile(t, nil).Match(nil) {
		t.Error("compiled nil where must match a nil record")
	}
	if mustCompile(t, events.Where{"a": 1.0}).Match(nil) {
		t.Error("condition matched a nil record")
	}
}

func TestCompileWhereErrors(t *testing.T) {
	deep := `{"a":1}`
	for range MaxWhereDepth + 1 {
		deep = `{"$or":[` + deep + `]}`
	}
	notTooDeep := `{"a":1}`
	for range MaxWhereDepth {
		notTooDeep = `{"$or":[` + notTooDeep + `]}`
	}
	// Each branch is a where object and a condition: two towards the limit,
	// plus one for the top-level object.
	many := make([]string, MaxWhereConditions/2)
	for i := range many {
		many[i] = fmt.Sprintf(`{"f%d":1}`, i)
	}
	cases := []struct {
		name  string
		where string
		want  []string // substrings of the message; nil: compiles
	}{
		{"unknown operator", `{"age":{"$like":"x"}}`, []string{`"age"`, "$like"}},
		{"unknown top-level operator", `{"$not":{"a":1}}`, []string{"$not"}},
		{"$in not an array", `{"age":{"$in":3}}`, []string{`"age"`, "$in", "array", "got 3"}},
		{"$nin not an array", `{"age":{"$nin":{"a":1}}}`, []string{`"age"`, "$nin"}},
		{"$between one element", `{"age":{"$between":[1]}}`, []string{`"age"`, "$between"}},
		{"$between three elements", `{"age":{"$between":[1,2,3]}}`, []string{"$between"}},
		{"$between mixed types", `{"age":{"$between":[1,"z"]}}`, []string{"$between"}},
		{"$between booleans", `{"age":{"$between":[true,false]}}`, []string{"$between"}},
		{"$between not an array", `{"age":{"$between":"1-2"}}`, []string{"$between"}},
		{"$exists not bool", `{"nick":{"$exists":"yes"}}`, []string{`"nick"`, "$exists", "boolean"}},
		{"$gt boolean", `{"age":{"$gt":true}}`, []string{`"age"`, "$gt"}},
		{"$lte null", `{"age":{"$lte":null}}`, []string{"$lte"}},
		{"$gte object", `{"age":{"$gte":{}}}`, []string{"$gte"}},
		{"$startsWith number", `{"name":{"$startsWith":1}}`, []string{`"name"`, "$startsWith", "string"}},
		{"$endsWith null", `{"name":{"$endsWith":null}}`, []string{"$endsWith"}},
		{"$or not an array", `{"$or":{"a":1}}`, []string{"$or", "non-empty array"}},
		{"$or empty", `{"$or":[]}`, []string{"$or"}},
		{"$or element not object", `{"$or":[{"a":1},2]}`, []string{"$or[1]"}},
		{"$and empty", `{"$and":[]}`, []string{"$and"}},
		{"$and element array", `{"$and":[[]]}`, []string{"$and[0]"}},
		{"nested error", `{"$or":[{"$and":[{"x":{"$in":"no"}}]}]}`, []string{`"x"`, "$in"}},
		{"mixes operators and fields", `{"age":{"$gt":1,"max":3}}`, []string{`"age"`, `"max"`, "mixes"}},
		{"empty field name", `{"":1}`, []string{"empty path segment"}},
		{"empty path segment", `{"a..b":1}`, []string{`"a..b"`}},
		{"trailing dot", `{"a.":1}`, []string{`"a."`}},
		{"too deep", deep, []string{"deeper than 16"}},
		{"deep within limit", notTooDeep, nil},
		{"too many conditions", `{"$or":[` + strings.Join(many, ",") + `]}`, []string{"more than 1000 conditions"}},
		{"many conditions within limit", `{"$or":[` + strings.Join(many[:len(many)-1], ",") + `]}`, nil},
		{"operator object with only $eq object", `{"a":{"$eq":{"$gt":1}}}`, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var w events.Where
			if err := json.Unmarshal([]byte(c.where), &w); err != nil {
				t.Fatal(err)
			}
			_, err := CompileWhere(w)
			if c.want == nil {
				if err != nil {
					t.Fatalf("want no error, got %v", err)
				}
				return
			}
			var e *events.Error
			if !errors.As(err, &e) || !errors.Is(err, events.ErrBadRequest) {
				t.Fatalf("want a bad_request *events.Error, got %v", err)
			}
			for _, s := range c.want {
				if !strings.Contains(e.Message, s) {
					t.Errorf("message %q lacks %q", e.Message, s)
				}
			}
		})
	}
}

// Go values that have no JSON form are bad requests, not panics.
func TestCompileWhereNotJSON(t *testing.T) {
	_, err := CompileWhere(events.Where{"a": make(chan int)})
	if !errors.Is(err, events.ErrBadRequest) {
		t.Fatalf("got %v, want bad_request", err)
	}
}

func FuzzCompileWhere(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"age":30}`, `{"age":{"$gt":1,"$lt":"x"}}`, `{"$or":[{"a.b":{"$in":[1,"1",null]}}]}`,
		`{"$and":[{"tags":{"$contains":"a"}},{"n":{"$between":[0,10]}}]}`, `{"x":{"$exists":false,"$nin":[]}}`,
	} {
		f.Add([]byte(s))
	}
	// Index-backed matching must agree with a scan, whatever the filter.
	_, scan := newBucket(f, nil, people...)
	_, indexed := newBucket(f, peopleFields, people...)
	records := make([]events.Record, len(people))
	for i, p := range people {
		records[i] = decodeRecord(f, p)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var w events.Where
		if json.Unmarshal(data, &w) != nil {
			return
		}
		flt, err := CompileWhere(w)
		if err != nil {
			if !errors.Is(err, events.ErrBadRequest) {
				t.Fatalf("error %v is not bad_request", err)
			}
			return
		}
		for _, r := range append(records, nil, events.Record{}) {
			flt.Match(r)
		}
		if a, b := scan.MatchKeys(flt), indexed.MatchKeys(flt); !slices.Equal(a, b) {
			t.Fatalf("where %s: scan %v, indexed %v", data, a, b)
		}
	})
}
