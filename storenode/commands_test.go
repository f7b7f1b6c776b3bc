package storenode_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/natstest"
	"github.com/storeloop/storeloop/internal/storetest"
)

// cause is the causal context a command carries in its Storeloop-* headers.
type cause struct {
	cmdID, correlation, causation, rule string
	hop                                 int
}

// ruleCause is what a rule's write sends.
func ruleCause(cmdID string) cause {
	return cause{cmdID: cmdID, correlation: "corr-" + cmdID, causation: "evt-" + cmdID, rule: "loyalty-on-ship", hop: 3}
}

func (c cause) headers() []string {
	var h []string
	for _, kv := range [][2]string{{events.HeaderCommandID, c.cmdID}, {events.HeaderCorrelationID, c.correlation},
		{events.HeaderCausationID, c.causation}, {events.HeaderRule, c.rule}} {
		if kv[1] != "" {
			h = append(h, kv[0], kv[1])
		}
	}
	if c.hop != 0 {
		h = append(h, events.HeaderHop, strconv.Itoa(c.hop))
	}
	return h
}

// wantEvent checks one appended message: its subject, body and meta, the
// meta as c says (a command from outside starts its own correlation).
func wantEvent(t testing.TB, m streamMsg, subject string, key any, c cause, window [2]int64) {
	t.Helper()
	bucket, op, err := events.ParseEventSubject(subject)
	if err != nil {
		t.Fatal(err)
	}
	ev, meta := m.Event, m.Event.Meta
	if m.Subject != subject || ev.Type != op || ev.Bucket != bucket || !reflect.DeepEqual(ev.Key, key) {
		t.Errorf("event %s %s/%s key %v, want %s key %v", m.Subject, ev.Type, ev.Bucket, ev.Key, subject, key)
	}
	if meta.EventID == "" || m.Header.Get(events.HeaderEventID) != meta.EventID {
		t.Errorf("event id %q, header %q", meta.EventID, m.Header.Get(events.HeaderEventID))
	}
	if meta.Time < window[0] || meta.Time > window[1] {
		t.Errorf("event time %d outside [%d, %d]", meta.Time, window[0], window[1])
	}
	wantCorr, wantCaus := c.correlation, c.causation
	if wantCorr == "" {
		wantCorr = meta.EventID
	}
	if wantCaus == "" {
		wantCaus = c.cmdID
	}
	if meta.CorrelationID != wantCorr || meta.CausationID != wantCaus || meta.Hop != c.hop || meta.RuleID != c.rule || meta.CommandID != c.cmdID {
		t.Errorf("meta %+v, want correlation %q causation %q hop %d rule %q command %q", meta, wantCorr, wantCaus, c.hop, c.rule, c.cmdID)
	}
}

// clock brackets a command: the window its timestamps must fall in.
func clock(f func()) [2]int64 {
	before := time.Now().UnixMilli()
	f()
	return [2]int64{before, time.Now().UnixMilli()}
}

// oneEvent returns the single message appended after seq.
func oneEvent(t testing.TB, nc *nats.Conn, seq uint64) streamMsg {
	t.Helper()
	msgs := streamAfter(t, nc, seq)
	if len(msgs) != 1 {
		t.Fatalf("stream grew by %d messages, want 1", len(msgs))
	}
	return msgs[0]
}

func TestDefine(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	base := lastSeq(t, nc)
	if got := string(rawCall(t, nc, events.CmdDefine, ordersDef())); got != `{"result":{"bucket":"orders"}}` {
		t.Fatalf("define reply = %s", got)
	}
	m := oneEvent(t, nc, base)
	if m.Subject != events.SchemaSubject("orders") || m.Event.Meta.EventID == "" {
		t.Fatalf("definition message %s meta %+v", m.Subject, m.Event.Meta)
	}
	base = m.Seq

	// The same definition again, its fields in another order: accepted,
	// nothing appended.
	def, _ := json.Marshal(ordersDef())
	var reordered map[string]any
	json.Unmarshal(def, &reordered)
	if got := string(rawCall(t, nc, events.CmdDefine, reordered)); got != `{"result":{"bucket":"orders"}}` {
		t.Fatalf("define again = %s", got)
	}
	changed := ordersDef()
	changed.Indexes = append(changed.Indexes, "sku")
	wantCode(t, call(t, nc, events.CmdDefine, changed, nil), events.CodeBucketExists)
	wantNoNewEvents(t, nc, base)
}

func TestBuckets(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef(), loyaltyDef())
	for i := range 3 {
		mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": float64(i)}}, nil)
	}
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "loyalty", Record: events.Record{"userId": "u"}}, nil)

	var got []events.BucketInfo
	mustCall(t, nc, events.CmdBuckets, struct{}{}, &got)
	want := []events.BucketInfo{{BucketDef: loyaltyDef(), Count: 1}, {BucketDef: ordersDef(), Count: 3}}
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("buckets =\n%s\nwant\n%s", g, w)
	}
}

func TestInsert(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, usersDef(), ordersDef())
	base := lastSeq(t, nc)

	c := ruleCause("insert-1")
	var rec events.Record
	window := clock(func() {
		mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "users", Record: events.Record{"name": "Ada", "email": "ada@example.com"}}, &rec, c.headers()...)
	})
	if _, err := uuid.Parse(fmt.Sprint(rec["id"])); err != nil {
		t.Errorf("generated id %v is not a uuid", rec["id"])
	}
	if h, _ := rec["handle"].(string); !regexp.MustCompile(`^c[0-9a-z]{24}$`).MatchString(h) {
		t.Errorf("generated handle %v is not a cuid", rec["handle"])
	}
	for _, f := range []string{"joined", events.FieldCreatedAt, events.FieldUpdatedAt} {
		if ts, _ := rec[f].(float64); int64(ts) < window[0] || int64(ts) > window[1] {
			t.Errorf("%s = %v, outside [%d, %d]", f, rec[f], window[0], window[1])
		}
	}
	if rec[events.FieldCreatedAt] != rec[events.FieldUpdatedAt] {
		t.Errorf("_createdAt %v != _updatedAt %v", rec[events.FieldCreatedAt], rec[events.FieldUpdatedAt])
	}
	wantFields := events.Record{"name": "Ada", "email": "ada@example.com", "role": "user", events.FieldVersion: 1.0}
	for f, v := range wantFields {
		if rec[f] != v {
			t.Errorf("%s = %v, want %v", f, rec[f], v)
		}
	}
	if _, ok := rec["tags"]; ok || len(rec) != 9 {
		t.Errorf("record has fields beyond the given, generated, default and meta ones: %v", rec)
	}
	m := oneEvent(t, nc, base)
	wantEvent(t, m, "bucket.users.inserted", rec["id"], c, window)
	if !reflect.DeepEqual(m.Event.Record, rec) {
		t.Errorf("event record %v, want the reply %v", m.Event.Record, rec)
	}
	if got := getRecord(t, nc, "users", rec["id"]); !reflect.DeepEqual(got, rec) {
		t.Errorf("get = %v, want %v", got, rec)
	}

	// Autoincrement, a given key, and a key that exists.
	ids := []any{}
	for _, r := range []events.Record{{"userId": "u", "total": 1.0}, {"userId": "u", "total": 1.0}, {"id": 10.0, "userId": "u", "total": 1.0}, {"userId": "u", "total": 1.0}} {
		var got events.Record
		mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: r}, &got)
		ids = append(ids, got["id"])
		if got["status"] != "pending" {
			t.Errorf("default status = %v", got["status"])
		}
	}
	if want := []any{1.0, 2.0, 10.0, 11.0}; !reflect.DeepEqual(ids, want) {
		t.Errorf("order ids %v, want %v", ids, want)
	}
	seq := lastSeq(t, nc)
	e := call(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"id": 2.0, "userId": "v", "total": 5.0}}, nil)
	wantCode(t, e, events.CodeConflict)
	wantNoNewEvents(t, nc, seq)
	if got := getRecord(t, nc, "orders", 2.0); got["userId"] != "u" {
		t.Errorf("conflicting insert replaced the record: %v", got)
	}
}

func TestGetMissing(t *testing.T) {
	st := storetest.StartStore(t)
	define(t, st.Conn, ordersDef(), sessionsDef())
	for _, req := range []events.GetRequest{{Bucket: "orders", Key: 1.0}, {Bucket: "sessions", Key: "nobody"}} {
		if got := string(rawCall(t, st.Conn, events.CmdGet, req)); got != `{"result":null}` {
			t.Errorf("get %v = %s, want a null result", req, got)
		}
	}
}

func TestUpdate(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef())
	cases := []struct {
		name    string
		req     events.UpdateRequest // Bucket and Key filled in unless Key is set
		want    events.Record        // fields of the new record; nil value: absent
		version float64              // of the new record
		code    events.Code          // the error, "" for none
	}{
		{name: "changes", req: events.UpdateRequest{Changes: events.Record{"status": "paid", "sku": "B-2"}},
			want: events.Record{"status": "paid", "sku": "B-2", "total": 10.0}, version: 2},
		{name: "increment", req: events.UpdateRequest{Increment: map[string]float64{"total": 2.5, "qty": 1}},
			want: events.Record{"total": 12.5, "qty": 1.0}, version: 2},
		{name: "changes then increment", req: events.UpdateRequest{Changes: events.Record{"total": 100.0}, Increment: map[string]float64{"total": 1}},
			want: events.Record{"total": 101.0}, version: 2},
		{name: "null removes a field", req: events.UpdateRequest{Changes: events.Record{"sku": nil}},
			want: events.Record{"sku": nil, "total": 10.0}, version: 2},
		{name: "current expectVersion", req: events.UpdateRequest{Changes: events.Record{"status": "paid"}, ExpectVersion: ptr(int64(1))},
			want: events.Record{"status": "paid"}, version: 2},
		{name: "no-op returns the record, appends nothing", req: events.UpdateRequest{Changes: events.Record{"status": "pending", "sku": "A-1"}},
			want: events.Record{"status": "pending", "sku": "A-1"}, version: 1},
		{name: "stale expectVersion", req: events.UpdateRequest{Changes: events.Record{"status": "paid"}, ExpectVersion: ptr(int64(2))}, code: events.CodeConflict},
		{name: "missing key", req: events.UpdateRequest{Key: 999.0, Changes: events.Record{"status": "paid"}}, code: events.CodeNotFound},
		{name: "invalid value", req: events.UpdateRequest{Changes: events.Record{"status": "lost"}}, code: events.CodeValidation},
		{name: "key change", req: events.UpdateRequest{Changes: events.Record{"id": 5.0}}, code: events.CodeValidation},
		{name: "increment of a string", req: events.UpdateRequest{Increment: map[string]float64{"sku": 1}}, code: events.CodeValidation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var old events.Record
			mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": 10.0, "sku": "A-1"}}, &old)
			req := tc.req
			req.Bucket = "orders"
			if req.Key == nil {
				req.Key = old["id"]
			}
			base := lastSeq(t, nc)
			c := cause{cmdID: "upd-" + tc.name}
			var rec events.Record
			var e *events.Error
			window := clock(func() { e = call(t, nc, events.CmdUpdate, req, &rec, c.headers()...) })
			if tc.code != "" {
				wantCode(t, e, tc.code)
				wantNoNewEvents(t, nc, base)
				if got := getRecord(t, nc, "orders", old["id"]); !reflect.DeepEqual(got, old) {
					t.Fatalf("failed update changed the record: %v", got)
				}
				return
			}
			if e != nil {
				t.Fatal(e)
			}
			for f, v := range tc.want {
				if got, ok := rec[f]; got != v || (v == nil && ok) {
					t.Errorf("%s = %v, want %v", f, got, v)
				}
			}
			if rec[events.FieldVersion] != tc.version || rec[events.FieldCreatedAt] != old[events.FieldCreatedAt] {
				t.Errorf("meta of %v after %v", rec, old)
			}
			if tc.version == 1 {
				if !reflect.DeepEqual(rec, old) {
					t.Errorf("no-op update returned %v, want %v", rec, old)
				}
				wantNoNewEvents(t, nc, base)
				return
			}
			if u := rec[events.FieldUpdatedAt].(float64); int64(u) < window[0] || int64(u) > window[1] {
				t.Errorf("_updatedAt %v outside %v", u, window)
			}
			m := oneEvent(t, nc, base)
			wantEvent(t, m, "bucket.orders.updated", old["id"], c, window)
			if !reflect.DeepEqual(m.Event.OldRecord, old) || !reflect.DeepEqual(m.Event.NewRecord, rec) || m.Event.Record != nil {
				t.Errorf("event old %v new %v record %v; want old %v new %v", m.Event.OldRecord, m.Event.NewRecord, m.Event.Record, old, rec)
			}
		})
	}
}

func TestUpsert(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, loyaltyDef())

	steps := []struct {
		name string
		req  events.UpsertRequest
		want events.Record
		op   events.Op
	}{
		{"insert applies increments to defaults", events.UpsertRequest{Key: "bob", Increment: map[string]float64{"points": 3}},
			events.Record{"userId": "bob", "points": 3.0, "tier": "bronze", events.FieldVersion: 1.0}, events.OpInserted},
		{"insert with a record", events.UpsertRequest{Key: "alice", Record: events.Record{"tier": "silver"}, Increment: map[string]float64{"points": 5}},
			events.Record{"userId": "alice", "points": 5.0, "tier": "silver", events.FieldVersion: 1.0}, events.OpInserted},
		{"merge", events.UpsertRequest{Key: "alice", Record: events.Record{"userId": "alice", "tier": "gold"}, Increment: map[string]float64{"points": 2}},
			events.Record{"userId": "alice", "points": 7.0, "tier": "gold", events.FieldVersion: 2.0}, events.OpUpdated},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			base := lastSeq(t, nc)
			before := getRecord(t, nc, "loyalty", s.req.Key)
			req := s.req
			req.Bucket = "loyalty"
			c := ruleCause("ups-" + s.name)
			var rec events.Record
			window := clock(func() { mustCall(t, nc, events.CmdUpsert, req, &rec, c.headers()...) })
			got := maps.Clone(rec)
			delete(got, events.FieldCreatedAt)
			delete(got, events.FieldUpdatedAt)
			if !reflect.DeepEqual(got, s.want) {
				t.Errorf("upsert = %v, want %v", rec, s.want)
			}
			m := oneEvent(t, nc, base)
			wantEvent(t, m, events.EventSubject("loyalty", s.op), s.req.Key, c, window)
			if cur := m.Event.Current(); !reflect.DeepEqual(cur, rec) || !reflect.DeepEqual(m.Event.OldRecord, before) {
				t.Errorf("event current %v old %v, want %v and %v", cur, m.Event.OldRecord, rec, before)
			}
		})
	}

	base := lastSeq(t, nc)
	e := call(t, nc, events.CmdUpsert, events.UpsertRequest{Bucket: "loyalty", Key: "carol", Record: events.Record{"userId": "dave"}}, nil)
	wantCode(t, e, events.CodeValidation)
	wantNoNewEvents(t, nc, base)
}

// TestUpsertConcurrent: increments from many connections at once are never
// lost, and each is one event.
func TestUpsertConcurrent(t *testing.T) {
	st := storetest.StartStore(t)
	define(t, st.Conn, loyaltyDef())
	base := lastSeq(t, st.Conn)
	const conns, total = 8, 200
	req := events.UpsertRequest{Bucket: "loyalty", Key: "carol", Increment: map[string]float64{"points": 1}}
	errs := make(chan error, total)
	var wg sync.WaitGroup
	for c := range conns {
		nc := natstest.Connect(t, st.Server)
		wg.Go(func() {
			for i := c; i < total; i += conns {
				if err := try(nc, events.CmdUpsert, req, nil); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	rec := getRecord(t, st.Conn, "loyalty", "carol")
	if rec["points"] != float64(total) || rec[events.FieldVersion] != float64(total) {
		t.Fatalf("after %d concurrent upserts: %v", total, rec)
	}
	msgs := streamAfter(t, st.Conn, base)
	if len(msgs) != total || msgs[0].Event.Type != events.OpInserted {
		t.Fatalf("%d events (first %s), want %d starting with inserted", len(msgs), msgs[0].Event.Type, total)
	}
	for i, m := range msgs[1:] {
		if m.Event.Type != events.OpUpdated || m.Event.NewRecord["points"] != float64(i+2) {
			t.Fatalf("event %d: %s points %v", i+1, m.Event.Type, m.Event.NewRecord["points"])
		}
	}
}

func TestDelete(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef())
	var rec events.Record
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": 3.0}}, &rec)
	base := lastSeq(t, nc)

	wantCode(t, call(t, nc, events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: 1.0, ExpectVersion: ptr(int64(2))}, nil), events.CodeConflict)
	wantNoNewEvents(t, nc, base)

	c := ruleCause("del-1")
	var window [2]int64
	var got []byte
	window = clock(func() {
		got = rawCall(t, nc, events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: 1.0, ExpectVersion: ptr(int64(1))}, c.headers()...)
	})
	if string(got) != `{"result":{"deleted":true}}` {
		t.Fatalf("delete = %s", got)
	}
	m := oneEvent(t, nc, base)
	wantEvent(t, m, "bucket.orders.deleted", 1.0, c, window)
	if !reflect.DeepEqual(m.Event.Record, rec) || m.Event.NewRecord != nil || m.Event.OldRecord != nil {
		t.Errorf("deleted event %+v, want record %v", m.Event, rec)
	}
	if r := getRecord(t, nc, "orders", 1.0); r != nil {
		t.Errorf("deleted record still there: %v", r)
	}
	base = m.Seq
	if got := string(rawCall(t, nc, events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: 1.0})); got != `{"result":{"deleted":false}}` {
		t.Fatalf("delete of a missing key = %s", got)
	}
	wantNoNewEvents(t, nc, base)
}

// TestQueryCountAggregate checks the read commands against a model: the
// records the test inserted, filtered in Go.
func TestQueryCountAggregate(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef())
	statuses := []string{"pending", "confirmed", "paid", "shipped"}
	var model []events.Record
	for i := range 60 {
		r := events.Record{"userId": fmt.Sprintf("u%d", i%4), "qty": float64(i%5 + 1), "total": float64(i*7%50) + 0.5, "status": statuses[i%4]}
		if i%6 != 0 {
			r["sku"] = fmt.Sprintf("SKU-%02d-%s", i, []string{"red", "blue", "green"}[i%3])
		}
		var rec events.Record
		mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: r}, &rec)
		model = append(model, rec)
	}
	// Deleted and updated records must show their current state.
	mustCall(t, nc, events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: 5.0}, nil)
	mustCall(t, nc, events.CmdUpdate, events.UpdateRequest{Bucket: "orders", Key: 6.0, Changes: events.Record{"status": "shipped"}}, &model[5])
	model = slices.Delete(model, 4, 5)

	num := func(r events.Record, f string) float64 { return r[f].(float64) }
	str := func(r events.Record, f string) string { s, _ := r[f].(string); return s }
	cases := []struct {
		name  string
		where events.Where
		match func(events.Record) bool
	}{
		{"all", nil, func(events.Record) bool { return true }},
		{"equality", events.Where{"userId": "u1"}, func(r events.Record) bool { return r["userId"] == "u1" }},
		{"$eq and $neq", events.Where{"status": map[string]any{"$neq": "paid"}, "qty": map[string]any{"$eq": 2}},
			func(r events.Record) bool { return r["status"] != "paid" && r["qty"] == 2.0 }},
		{"$gt $lte", events.Where{"total": map[string]any{"$gt": 10, "$lte": 30.5}},
			func(r events.Record) bool { return num(r, "total") > 10 && num(r, "total") <= 30.5 }},
		{"$gte $lt", events.Where{"id": map[string]any{"$gte": 20, "$lt": 31}},
			func(r events.Record) bool { return num(r, "id") >= 20 && num(r, "id") < 31 }},
		{"$between", events.Where{"total": map[string]any{"$between": []any{7.5, 21.5}}},
			func(r events.Record) bool { return num(r, "total") >= 7.5 && num(r, "total") <= 21.5 }},
		{"$in $nin", events.Where{"status": map[string]any{"$in": []any{"paid", "shipped"}}, "userId": map[string]any{"$nin": []any{"u2"}}},
			func(r events.Record) bool {
				return (r["status"] == "paid" || r["status"] == "shipped") && r["userId"] != "u2"
			}},
		{"$contains $startsWith $endsWith", events.Where{"sku": map[string]any{"$contains": "-1", "$startsWith": "SKU", "$endsWith": "blue"}},
			func(r events.Record) bool {
				s := str(r, "sku")
				return regexp.MustCompile(`^SKU.*-1.*blue$`).MatchString(s)
			}},
		{"$exists false", events.Where{"sku": map[string]any{"$exists": false}}, func(r events.Record) bool { return r["sku"] == nil }},
		{"$or", events.Where{"$or": []any{map[string]any{"userId": "u0"}, map[string]any{"qty": map[string]any{"$gte": 5}}}},
			func(r events.Record) bool { return r["userId"] == "u0" || num(r, "qty") >= 5 }},
		{"$and with $or", events.Where{"$and": []any{map[string]any{"status": "shipped"}, map[string]any{"$or": []any{map[string]any{"userId": "u1"}, map[string]any{"userId": "u2"}}}}},
			func(r events.Record) bool {
				return r["status"] == "shipped" && (r["userId"] == "u1" || r["userId"] == "u2")
			}},
		{"nothing", events.Where{"userId": "nobody"}, func(events.Record) bool { return false }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var want []events.Record
			sum := 0.0
			for _, r := range model {
				if tc.match(r) {
					want = append(want, r)
					sum += num(r, "total")
				}
			}
			// One page, then pages of 7: every record exactly once, in key order.
			for _, limit := range []int{0, 7} {
				if got := queryAll(t, nc, "orders", tc.where, limit); !reflect.DeepEqual(got, want) && len(got)+len(want) > 0 {
					t.Fatalf("limit %d: %d records, want %d:\n%v\n%v", limit, len(got), len(want), ids(got), ids(want))
				}
			}
			var count int
			mustCall(t, nc, events.CmdCount, events.CountRequest{Bucket: "orders", Where: tc.where}, &count)
			if count != len(want) {
				t.Errorf("count = %d, want %d", count, len(want))
			}
			aggs := map[string]any{"sum": sum, "avg": nil, "min": nil, "max": nil}
			for i, r := range want {
				x := num(r, "total")
				if i == 0 || x < aggs["min"].(float64) {
					aggs["min"] = x
				}
				if i == 0 || x > aggs["max"].(float64) {
					aggs["max"] = x
				}
				aggs["avg"] = sum / float64(len(want))
			}
			for fn, w := range aggs {
				var got any
				mustCall(t, nc, events.CmdAggregate, events.AggregateRequest{Bucket: "orders", Fn: fn, Field: "total", Where: tc.where}, &got)
				if g, ok := got.(float64); got != w && !(ok && w != nil && abs(g-w.(float64)) < 1e-9) {
					t.Errorf("aggregate %s = %v, want %v", fn, got, w)
				}
			}
		})
	}
}

func ids(recs []events.Record) []any {
	out := make([]any, len(recs))
	for i, r := range recs {
		out[i] = r["id"]
	}
	return out
}

func abs(x float64) float64 { return max(x, -x) }
