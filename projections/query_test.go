package projections

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/storeloop/storeloop/events"
)

func TestKeyOrder(t *testing.T) {
	_, b := newBucket(t, nil,
		`{"id":10}`, `{"id":-1}`, `{"id":"b"}`, `{"id":2.5}`, `{"id":""}`, `{"id":"10"}`,
		`{"id":0}`, `{"id":"a"}`, `{"id":1e21}`, `{"id":"B"}`)
	want := []string{"n:-1", "n:0", "n:2.5", "n:10", "n:1e+21", "s:", "s:10", "s:B", "s:a", "s:b"}
	if got := b.Keys(); !slices.Equal(got, want) {
		t.Errorf("Keys: got %v, want %v", got, want)
	}
	records, next, err := b.Query(nil, 0, "")
	if err != nil || next != "" {
		t.Fatalf("Query: %v, next %q", err, next)
	}
	if got := keysOf(t, records); !slices.Equal(got, want) {
		t.Errorf("Query order: got %v, want %v", got, want)
	}
	for i := range want {
		for j := range want {
			if got := CompareKeys(want[i], want[j]); got != cmpInt(i, j) {
				t.Errorf("CompareKeys(%s, %s) = %d, want %d", want[i], want[j], got, cmpInt(i, j))
			}
		}
	}
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// numbered returns n records with mixed numeric and string ids and a field
// "n" = i.
func numbered(n int) []string {
	out := make([]string, n)
	for i := range out {
		if i%3 == 0 {
			out[i] = fmt.Sprintf(`{"id":"k%05d","n":%d}`, i, i)
		} else {
			out[i] = fmt.Sprintf(`{"id":%d,"n":%d}`, i, i)
		}
	}
	return out
}

// pageAll follows cursors to the end and returns every key seen and the
// page sizes.
func pageAll(t *testing.T, b *Bucket, w events.Where, limit int) (keys []string, sizes []int) {
	t.Helper()
	after := ""
	for range 10000 {
		records, next, err := b.Query(w, limit, after)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, keysOf(t, records)...)
		sizes = append(sizes, len(records))
		if next == "" {
			return keys, sizes
		}
		after = next
	}
	t.Fatal("paging did not end")
	return nil, nil
}

func TestQueryPagination(t *testing.T) {
	_, b := newBucket(t, []string{"n"}, numbered(2503)...)
	even := events.Where{"n": map[string]any{"$in": evenUpTo(2503)}}
	cases := []struct {
		name      string
		where     events.Where
		limit     int
		wantSizes []int
	}{
		{"limit 1 over 3", events.Where{"n": map[string]any{"$lt": 3}}, 1, []int{1, 1, 1}},
		{"exact multiple has no empty page", events.Where{"n": map[string]any{"$lt": 20}}, 10, []int{10, 10}},
		{"no match is one empty page", events.Where{"n": -1}, 10, []int{0}},
		{"default limit", nil, 0, []int{1000, 1000, 503}},
		{"negative limit is default", nil, -1, []int{1000, 1000, 503}},
		{"max limit", nil, MaxQueryLimit, []int{2503}},
		{"indexed filter limit 100", even, 100, []int{100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 52}},
		{"scan filter limit 7", events.Where{"id": map[string]any{"$startsWith": "k0000"}}, 7, []int{4}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			keys, sizes := pageAll(t, b, c.where, c.limit)
			if !slices.Equal(sizes, c.wantSizes) {
				t.Errorf("page sizes %v, want %v", sizes, c.wantSizes)
			}
			if want := b.MatchKeys(mustCompile(t, c.where)); !slices.Equal(keys, want) {
				t.Errorf("paged keys differ from MatchKeys: %d vs %d keys", len(keys), len(want))
			}
		})
	}
}

func evenUpTo(n int) []any {
	var out []any
	for i := 0; i < n; i += 2 {
		out = append(out, float64(i))
	}
	return out
}

// Records that stay in place are returned exactly once however the bucket
// changes between pages; records inserted ahead of the cursor are found and
// those behind it are not.
func TestQueryPagingWhileWriting(t *testing.T) {
	s, b := newBucket(t, nil)
	for i := range 100 {
		insert(t, s, events.Record{"id": float64(i * 10)})
	}
	seen := map[float64]int{}
	var order []float64
	deletedAhead := map[float64]bool{}
	insertedAhead, insertedBehind := map[float64]bool{}, map[float64]bool{}
	after := ""
	for {
		records, next, err := b.Query(nil, 7, after)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range records {
			id := r["id"].(float64)
			seen[id]++
			order = append(order, id)
		}
		if next == "" {
			break
		}
		after = next
		last := records[len(records)-1]
		l := last["id"].(float64)
		remove(t, s, last)
		if r, ok := b.Get(mustKey(t, l+20)); ok {
			remove(t, s, r)
			deletedAhead[l+20] = true
		}
		insert(t, s, events.Record{"id": l - 5})
		insertedBehind[l-5] = true
		insert(t, s, events.Record{"id": l + 5})
		insertedAhead[l+5] = true
	}
	if !slices.IsSorted(order) {
		t.Errorf("pages out of order: %v", order)
	}
	for i := range 100 {
		id := float64(i * 10)
		if want := map[bool]int{true: 0, false: 1}[deletedAhead[id]]; seen[id] != want {
			t.Errorf("record %v seen %d times, want %d", id, seen[id], want)
		}
	}
	for id := range insertedAhead {
		if seen[id] != 1 {
			t.Errorf("record %v inserted ahead of the cursor seen %d times", id, seen[id])
		}
	}
	for id := range insertedBehind {
		if seen[id] != 0 {
			t.Errorf("record %v inserted behind the cursor seen %d times", id, seen[id])
		}
	}
}

func TestQueryErrors(t *testing.T) {
	_, b := newBucket(t, nil, numbered(5)...)
	cursor := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	cases := []struct {
		name  string
		where events.Where
		limit int
		after string
	}{
		{"limit above max", nil, MaxQueryLimit + 1, ""},
		{"cursor not base64", nil, 0, "!!!"},
		{"cursor padded base64", nil, 0, base64.URLEncoding.EncodeToString([]byte("n:10"))},
		{"cursor not a key", nil, 0, cursor("x:1")},
		{"cursor non-canonical number", nil, 0, cursor("n:1.0")},
		{"cursor NaN", nil, 0, cursor("n:NaN")},
		{"cursor empty key text", nil, 0, cursor("n:")},
		{"bad where", events.Where{"n": map[string]any{"$in": 1}}, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := b.Query(c.where, c.limit, c.after)
			if !errors.Is(err, events.ErrBadRequest) {
				t.Errorf("got %v, want bad_request", err)
			}
		})
	}
	// A cursor names a key, which need not exist any more.
	records, _, err := b.Query(nil, 0, cursor("n:1.5"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keysOf(t, records), []string{"n:2", "n:4", "s:k00000", "s:k00003"}; !slices.Equal(got, want) {
		t.Errorf("after n:1.5: got %v, want %v", got, want)
	}
}

func TestCount(t *testing.T) {
	_, b := newBucket(t, []string{"age"}, people...)
	cases := []struct {
		name  string
		where events.Where
		want  int
	}{
		{"all", nil, 7},
		{"indexed equality", events.Where{"age": 30.0}, 1},
		{"range", events.Where{"age": map[string]any{"$gte": 18.0}}, 3},
		{"scan", events.Where{"address.city": "Paris"}, 2},
		{"none", events.Where{"name": "nobody"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := b.Count(c.where)
			if err != nil || got != c.want {
				t.Errorf("got %d, %v; want %d", got, err, c.want)
			}
		})
	}
	if _, err := b.Count(events.Where{"$or": []any{}}); !errors.Is(err, events.ErrBadRequest) {
		t.Errorf("bad where: got %v, want bad_request", err)
	}
}

func TestAggregate(t *testing.T) {
	_, b := newBucket(t, []string{"kind"},
		`{"id":1,"kind":"a","amount":10,"nested":{"n":1}}`,
		`{"id":2,"kind":"a","amount":20.5,"nested":{"n":2}}`,
		`{"id":3,"kind":"a","amount":"30"}`,
		`{"id":4,"kind":"b","amount":null}`,
		`{"id":5,"kind":"b"}`,
		`{"id":6,"kind":"b","amount":-4,"nested":{"n":-7}}`,
		`{"id":7,"kind":"c","amount":[1,2]}`,
	)
	cases := []struct {
		name  string
		fn    string
		field string
		where events.Where
		want  any
	}{
		{"sum all", AggSum, "amount", nil, 26.5},
		{"avg all", AggAvg, "amount", nil, 26.5 / 3},
		{"min all", AggMin, "amount", nil, -4.0},
		{"max all", AggMax, "amount", nil, 20.5},
		{"sum filtered", AggSum, "amount", events.Where{"kind": "a"}, 30.5},
		{"avg filtered", AggAvg, "amount", events.Where{"kind": "a"}, 15.25},
		{"min single", AggMin, "amount", events.Where{"kind": "b"}, -4.0},
		{"sum of nothing", AggSum, "amount", events.Where{"kind": "c"}, 0.0},
		{"avg of nothing", AggAvg, "amount", events.Where{"kind": "c"}, nil},
		{"min of nothing", AggMin, "amount", events.Where{"kind": "zzz"}, nil},
		{"max of nothing", AggMax, "missing", nil, nil},
		{"nested field", AggSum, "nested.n", nil, -4.0},
		{"nested max", AggMax, "nested.n", nil, 2.0},
		{"meta-like field", AggSum, "id", events.Where{"kind": map[string]any{"$in": []any{"b", "c"}}}, 22.0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := b.Aggregate(c.fn, c.field, c.where)
			if err != nil || got != c.want {
				t.Errorf("got %v (%T), %v; want %v (%T)", got, got, err, c.want, c.want)
			}
		})
	}
	errCases := []struct {
		name, fn, field string
		where           events.Where
	}{
		{"unknown fn", "median", "amount", nil},
		{"empty fn", "", "amount", nil},
		{"empty field", AggSum, "", nil},
		{"bad where", AggSum, "amount", events.Where{"kind": map[string]any{"$foo": 1}}},
	}
	for _, c := range errCases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := b.Aggregate(c.fn, c.field, c.where); !errors.Is(err, events.ErrBadRequest) {
				t.Errorf("got %v, want bad_request", err)
			}
		})
	}
}

// The planner answers from the index when it can: the candidate set is as
// small as the index allows, and results equal a scan's.
func TestQueryUsesIndex(t *testing.T) {
	var recs []string
	for i := range 1000 {
		recs = append(recs, fmt.Sprintf(`{"id":%d,"age":%d,"city":"c%d","name":"n%d"}`, i, i%100, i%10, i))
	}
	_, indexed := newBucket(t, []string{"age", "city"}, recs...)
	_, scan := newBucket(t, nil, recs...)
	const scanned = -1
	cases := []struct {
		name       string
		where      string
		candidates int
	}{
		{"equality", `{"age":5}`, 10},
		{"$eq", `{"city":{"$eq":"c3"}}`, 100},
		{"$in", `{"age":{"$in":[1,2,2]}}`, 20},
		{"$in with null scans", `{"age":{"$in":[1,null]}}`, scanned},
		{"range from two operators", `{"age":{"$gte":10,"$lt":20}}`, 100},
		{"$between", `{"age":{"$between":[0,4]}}`, 50},
		{"tighter lower bound wins", `{"age":{"$gte":90,"$gt":97}}`, 20},
		{"exclusive lower bound wins a tie", `{"age":{"$between":[90,95],"$gt":90}}`, 50},
		{"exclusive upper bound wins a tie", `{"age":{"$between":[0,5],"$lt":5}}`, 50},
		{"string range on number index", `{"age":{"$gt":"a"}}`, 0},
		{"smallest conjunct wins", `{"age":5,"city":"c5"}`, 10},
		{"indexed and scanned conjuncts", `{"age":7,"name":{"$startsWith":"n"}}`, 10},
		{"$and conjunct", `{"$and":[{"name":{"$exists":true}},{"age":{"$lt":3}}]}`, 30},
		{"$or of indexed branches", `{"$or":[{"age":1},{"city":"c2"}]}`, 110},
		{"$or with unindexed branch scans", `{"$or":[{"age":1},{"name":"n1"}]}`, scanned},
		{"unindexed field", `{"name":"n1"}`, scanned},
		{"$neq scans", `{"age":{"$neq":5}}`, scanned},
		{"null scans", `{"age":null}`, scanned},
		{"dot path scans", `{"age.x":1}`, scanned},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var w events.Where
			if err := json.Unmarshal([]byte(c.where), &w); err != nil {
				t.Fatal(err)
			}
			keys, ok := indexed.candidates(mustCompile(t, w))
			got := len(keys)
			if !ok {
				got = scanned
			}
			if got != c.candidates {
				t.Errorf("candidates %d, want %d", got, c.candidates)
			}
			assertSameQuery(t, indexed, scan, w)
		})
	}
}

// assertSameQuery checks that two buckets give the same Query, Count and
// Aggregate answers for w.
func assertSameQuery(t *testing.T, x, y *Bucket, w events.Where) {
	t.Helper()
	rx, nx, errx := x.Query(w, 0, "")
	ry, ny, erry := y.Query(w, 0, "")
	if errx != nil || erry != nil {
		t.Fatalf("Query: %v / %v", errx, erry)
	}
	if kx, ky := keysOf(t, rx), keysOf(t, ry); !slices.Equal(kx, ky) || nx != ny {
		t.Errorf("where %v: Query %v (next %q) vs %v (next %q)", w, kx, nx, ky, ny)
	}
	cx, _ := x.Count(w)
	cy, _ := y.Count(w)
	if cx != cy || cx != len(rx) && len(rx) < DefaultQueryLimit {
		t.Errorf("where %v: Count %d vs %d, %d records", w, cx, cy, len(rx))
	}
}

// Property: over random data, random writes and random filters, an indexed
// bucket answers exactly like an unindexed one.
func TestIndexMatchesScanRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	fields := []string{"a", "b", "c"}
	sIx, indexed := newBucket(t, fields)
	sScan, scan := newBucket(t, nil)
	live := map[float64]events.Record{}
	for step := range 3000 {
		id := float64(rng.IntN(400))
		r := randomRecord(rng, id)
		old, exists := live[id]
		switch {
		case exists && rng.IntN(4) == 0:
			remove(t, sIx, old)
			remove(t, sScan, old)
			delete(live, id)
		case exists:
			update(t, sIx, old, r)
			update(t, sScan, old, r)
			live[id] = r
		default:
			insert(t, sIx, r)
			insert(t, sScan, r)
			live[id] = r
		}
		if step%10 != 0 {
			continue
		}
		w := randomWhere(rng, fields, 0)
		f, err := CompileWhere(w)
		if err != nil {
			t.Fatalf("random where %v: %v", w, err)
		}
		if kx, ky := indexed.MatchKeys(f), scan.MatchKeys(f); !slices.Equal(kx, ky) {
			t.Fatalf("step %d where %v: indexed %v, scan %v", step, w, kx, ky)
		}
		for _, fn := range []string{AggSum, AggMin} {
			ax, _ := indexed.Aggregate(fn, "b", w)
			ay, _ := scan.Aggregate(fn, "b", w)
			if ax != ay {
				t.Fatalf("step %d where %v: %s indexed %v, scan %v", step, w, fn, ax, ay)
			}
		}
	}
	if indexed.Len() != len(live) || scan.Len() != len(live) {
		t.Fatalf("lengths %d/%d, want %d", indexed.Len(), scan.Len(), len(live))
	}
}

func randomValue(rng *rand.Rand) any {
	switch rng.IntN(8) {
	case 0:
		return nil
	case 1:
		return fmt.Sprintf("s%d", rng.IntN(10))
	case 2:
		return rng.IntN(2) == 0
	case 3:
		return float64(rng.IntN(5)) / 2
	}
	return float64(rng.IntN(20) - 5)
}

func randomRecord(rng *rand.Rand, id float64) events.Record {
	r := events.Record{"id": id}
	for _, f := range []string{"a", "b", "c"} {
		if rng.IntN(6) != 0 { // sometimes missing
			r[f] = randomValue(rng)
		}
	}
	return r
}

func randomWhere(rng *rand.Rand, fields []string, depth int) events.Where {
	w := events.Where{}
	for range 1 + rng.IntN(2) {
		f := fields[rng.IntN(len(fields))]
		switch op := rng.IntN(9); {
		case op == 0 && depth < 2:
			w["$or"] = []any{randomWhere(rng, fields, depth+1), randomWhere(rng, fields, depth+1)}
		case op == 1 && depth < 2:
			w["$and"] = []any{randomWhere(rng, fields, depth+1)}
		case op == 2:
			w[f] = randomValue(rng)
		case op == 3:
			w[f] = map[string]any{"$in": []any{randomValue(rng), randomValue(rng)}}
		case op == 4:
			lo, hi := rangeOperand(rng), rangeOperand(rng)
			if !sameType(lo, hi) {
				hi = lo
			}
			w[f] = map[string]any{"$between": []any{lo, hi}}
		default:
			ops := []string{OpGt, OpGte, OpLt, OpLte, OpNeq, OpEq}
			cond := map[string]any{}
			for range 1 + rng.IntN(2) {
				cond[ops[rng.IntN(len(ops))]] = rangeOperand(rng)
			}
			w[f] = cond
		}
	}
	return w
}

func rangeOperand(rng *rand.Rand) any {
	if rng.IntN(4) == 0 {
		return fmt.Sprintf("s%d", rng.IntN(10))
	}
	return float64(rng.IntN(20)-5) + float64(rng.IntN(2))/2
}

// benchBucket holds 100k records; "n" cycles through 1000 values.
func benchBucket(b *testing.B, indexes []string) *Bucket {
	s := NewState()
	bk, _ := s.Define(events.BucketDef{Bucket: "b", Key: "id", Indexes: indexes})
	for i := range 100_000 {
		r := events.Record{"id": float64(i), "n": float64(i % 1000), "name": fmt.Sprintf("name%d", i)}
		if err := s.Apply(&events.Event{Type: events.OpInserted, Bucket: "b", Key: r["id"], Record: r}); err != nil {
			b.Fatal(err)
		}
	}
	return bk
}

func benchmarkQuery(b *testing.B, indexes []string) {
	bk := benchBucket(b, indexes)
	w := events.Where{"n": map[string]any{"$between": []any{500.0, 501.0}}}
	b.ResetTimer()
	for b.Loop() {
		records, _, err := bk.Query(w, 100, "")
		if err != nil || len(records) != 100 {
			b.Fatalf("%d records, %v", len(records), err)
		}
	}
}

func BenchmarkQueryIndexed(b *testing.B) { benchmarkQuery(b, []string{"n"}) }
func BenchmarkQueryScan(b *testing.B)    { benchmarkQuery(b, nil) }

// BenchmarkCheckedQuery is a store read as the node runs it: the scan's
// cost checked against the cap, then the query, on an indexed range of
// 200 records; "twice" compiles the filter and builds the candidates for
// each step (as before Scan), "once" shares them.
func BenchmarkCheckedQuery(b *testing.B) {
	bk := benchBucket(b, []string{"n"})
	w := events.Where{"n": map[string]any{"$between": []any{500.0, 501.0}}}
	check := func(cost int) {
		if cost != 200 {
			b.Fatalf("cost %d, want 200", cost)
		}
	}
	b.Run("twice", func(b *testing.B) {
		for b.Loop() {
			f, err := CompileWhere(w)
			if err != nil {
				b.Fatal(err)
			}
			check(bk.ScanCost(f, false))
			if records, _, err := bk.Query(w, 100, ""); err != nil || len(records) != 100 {
				b.Fatalf("%d records, %v", len(records), err)
			}
		}
	})
	b.Run("once", func(b *testing.B) {
		for b.Loop() {
			f, err := CompileWhere(w)
			if err != nil {
				b.Fatal(err)
			}
			s := bk.Scan(f)
			check(s.Cost(false))
			if records, _, err := s.Query(100, ""); err != nil || len(records) != 100 {
				b.Fatalf("%d records, %v", len(records), err)
			}
		}
	})
}
