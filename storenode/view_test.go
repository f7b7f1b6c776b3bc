package storenode_test

import (
	"maps"
	"reflect"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// statsView is the seed's per-user order statistics as a view of the
// orders not yet shipped.
func statsView() events.BucketDef {
	return events.BucketDef{Bucket: "userStats", View: &events.ViewDef{
		From: "orders", GroupBy: "userId",
		Where: events.Where{"status": map[string]any{"$neq": "shipped"}},
		Fields: map[string]events.ViewField{
			"orderCount": {Fn: events.ViewCount},
			"totalSpent": {Fn: events.ViewSum, Field: "total"},
			"avgOrder":   {Fn: events.ViewAvg, Field: "total"},
			"minOrder":   {Fn: events.ViewMin, Field: "total"},
			"maxOrder":   {Fn: events.ViewMax, Field: "total"},
			"last":       {Fn: events.ViewLast, Field: "id"},
		},
	}}
}

// wantStats computes what statsView must hold from the orders themselves.
func wantStats(orders []events.Record) map[string]events.Record {
	out := map[string]events.Record{}
	lastAt := map[string]float64{}
	for _, o := range orders {
		if o["status"] == "shipped" {
			continue
		}
		u, total := o["userId"].(string), o["total"].(float64)
		r := out[u]
		if r == nil {
			r = events.Record{"userId": u, "orderCount": 0.0, "totalSpent": 0.0, "minOrder": total, "maxOrder": total}
			out[u] = r
		}
		r["orderCount"] = r["orderCount"].(float64) + 1
		r["totalSpent"] = r["totalSpent"].(float64) + total
		r["avgOrder"] = r["totalSpent"].(float64) / r["orderCount"].(float64)
		r["minOrder"] = min(r["minOrder"].(float64), total)
		r["maxOrder"] = max(r["maxOrder"].(float64), total)
		// Orders come in key order: on a tie of _updatedAt the greater key wins.
		if at := o[events.FieldUpdatedAt].(float64); at >= lastAt[u] {
			lastAt[u], r["last"] = at, o["id"]
		}
	}
	return out
}

// checkStats compares the view with wantStats of the orders, ignoring the
// meta fields, which it checks are set.
func checkStats(t *testing.T, nc *nats.Conn) {
	t.Helper()
	want := wantStats(queryAll(t, nc, "orders", nil, 0))
	got := map[string]events.Record{}
	for _, r := range queryAll(t, nc, "userStats", nil, 0) {
		if r[events.FieldVersion] == nil || r[events.FieldCreatedAt] == nil || r[events.FieldUpdatedAt] == nil {
			t.Errorf("view record without meta fields: %v", r)
		}
		r = maps.Clone(r)
		delete(r, events.FieldVersion)
		delete(r, events.FieldCreatedAt)
		delete(r, events.FieldUpdatedAt)
		got[r["userId"].(string)] = r
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("view:\n%v\nwant\n%v", got, want)
	}
}

func insertOrder(t *testing.T, nc *nats.Conn, user string, total float64) float64 {
	t.Helper()
	var r events.Record
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": user, "total": total}}, &r)
	return r["id"].(float64)
}

// TestViewDefinition: a bad view is validation (an undefined source
// bucket_not_found) and appends nothing; a good one gets its key and
// schema from its source, and the same definition again is accepted.
func TestViewDefinition(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef(), loyaltyDef())
	seq := lastSeq(t, nc)
	bad := func(change func(v *events.BucketDef)) events.BucketDef {
		d := statsView()
		v := *d.View
		v.Fields = maps.Clone(v.Fields)
		d.View = &v
		change(&d)
		return d
	}
	for _, tc := range []struct {
		name  string
		def   events.BucketDef
		code  events.Code
		field string
	}{
		{"undefined source", bad(func(d *events.BucketDef) { d.View.From = "nope" }), events.CodeBucketNotFound, ""},
		{"group by a missing field", bad(func(d *events.BucketDef) { d.View.GroupBy = "nope" }), events.CodeValidation, "view.groupBy"},
		{"no fields", bad(func(d *events.BucketDef) { d.View.Fields = nil }), events.CodeValidation, "view.fields"},
		{"unknown fn", bad(func(d *events.BucketDef) { d.View.Fields["x"] = events.ViewField{Fn: "median", Field: "total"} }), events.CodeValidation, "view.fields.x"},
		{"sum of a string", bad(func(d *events.BucketDef) { d.View.Fields["x"] = events.ViewField{Fn: events.ViewSum, Field: "status"} }), events.CodeValidation, "view.fields.x"},
		{"count with a field", bad(func(d *events.BucketDef) { d.View.Fields["x"] = events.ViewField{Fn: events.ViewCount, Field: "total"} }), events.CodeValidation, "view.fields.x"},
		{"missing source field", bad(func(d *events.BucketDef) { d.View.Fields["x"] = events.ViewField{Fn: events.ViewMax, Field: "nope"} }), events.CodeValidation, "view.fields.x"},
		{"meta field name", bad(func(d *events.BucketDef) { d.View.Fields["_version"] = events.ViewField{Fn: events.ViewCount} }), events.CodeValidation, "view.fields._version"},
		{"bad where", bad(func(d *events.BucketDef) { d.View.Where = events.Where{"total": map[string]any{"$near": 1}} }), events.CodeValidation, "view.where"},
		{"ttl", bad(func(d *events.BucketDef) { d.TTL = "1m" }), events.CodeValidation, "view"},
		{"other key", bad(func(d *events.BucketDef) { d.Key = "total" }), events.CodeValidation, "view"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := call(t, nc, events.CmdDefine, tc.def, nil)
			wantCode(t, e, tc.code)
			if tc.field != "" && (len(e.Issues) != 1 || e.Issues[0].Field != tc.field) {
				t.Fatalf("issues %+v, want one on %s", e.Issues, tc.field)
			}
		})
	}
	wantNoNewEvents(t, nc, seq)

	define(t, nc, statsView())
	mustCall(t, nc, events.CmdDefine, statsView(), nil)
	var infos []events.BucketInfo
	mustCall(t, nc, events.CmdBuckets, struct{}{}, &infos)
	var view events.BucketInfo
	for _, b := range infos {
		if b.Bucket == "userStats" {
			view = b
		}
	}
	wantSchema := map[string]events.FieldDef{"userId": {Type: events.TypeString, Required: true}, "orderCount": {Type: events.TypeNumber},
		"totalSpent": {Type: events.TypeNumber}, "avgOrder": {Type: events.TypeNumber}, "minOrder": {Type: events.TypeNumber},
		"maxOrder": {Type: events.TypeNumber}, "last": {Type: events.TypeNumber}}
	if view.Key != "userId" || !reflect.DeepEqual(view.Schema, wantSchema) || view.View == nil {
		t.Fatalf("view as listed: %+v", view)
	}
	// The completed definition, as store.buckets lists it, is the same one.
	mustCall(t, nc, events.CmdDefine, view.BucketDef, nil)
	vv := statsView()
	vv.Bucket = "viewOfView"
	vv.View.From = "userStats"
	vv.View.Fields = map[string]events.ViewField{"n": {Fn: events.ViewCount}}
	wantCode(t, call(t, nc, events.CmdDefine, vv, nil), events.CodeValidation)
}

// TestViewReadOnly: every write to a view is bad_request and appends nothing.
func TestViewReadOnly(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef(), statsView())
	insertOrder(t, nc, "alice", 10)
	seq := lastSeq(t, nc)
	for _, w := range []struct {
		cmd string
		req any
	}{
		{events.CmdInsert, events.InsertRequest{Bucket: "userStats", Record: events.Record{"userId": "bob", "orderCount": 1.0}}},
		{events.CmdUpdate, events.UpdateRequest{Bucket: "userStats", Key: "alice", Changes: events.Record{"orderCount": 9.0}}},
		{events.CmdUpsert, events.UpsertRequest{Bucket: "userStats", Key: "alice", Increment: map[string]float64{"orderCount": 1}}},
		{events.CmdDelete, events.DeleteRequest{Bucket: "userStats", Key: "alice"}},
		{events.CmdTx, events.TxRequest{Ops: []events.TxOp{{Op: "delete", Bucket: "userStats", Key: "alice"}}}},
	} {
		wantCode(t, call(t, nc, w.cmd, w.req, nil), events.CodeBadRequest)
	}
	wantNoNewEvents(t, nc, seq)
	if r := getRecord(t, nc, "userStats", "alice"); r["orderCount"] != 1.0 {
		t.Fatalf("view record %v", r)
	}
}

// TestViewMaintained: the view follows inserts, updates (in and out of
// the filter, across groups, of its extremes), deletes (of the min, the
// max, the last, a group's last record) and transactions, rolled back
// ones included; unrelated changes leave its records' versions alone; a
// restart rebuilds it identically.
func TestViewMaintained(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef())
	a1 := insertOrder(t, nc, "alice", 10)
	insertOrder(t, nc, "bob", 7)
	define(t, nc, statsView()) // computed from the orders already there
	checkStats(t, nc)

	a2 := insertOrder(t, nc, "alice", 50)
	a3 := insertOrder(t, nc, "alice", 30)
	b2 := insertOrder(t, nc, "bob", 3)
	checkStats(t, nc)
	steps := []struct {
		name string
		cmd  string
		req  any
	}{
		{"lower the max", events.CmdUpdate, events.UpdateRequest{Bucket: "orders", Key: a2, Changes: events.Record{"total": 20.0}}},
		{"delete the min", events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: a1}},
		{"move to another group", events.CmdUpdate, events.UpdateRequest{Bucket: "orders", Key: a3, Changes: events.Record{"userId": "bob"}}},
		{"filter out", events.CmdUpdate, events.UpdateRequest{Bucket: "orders", Key: b2, Changes: events.Record{"status": "shipped"}}},
		{"filter in", events.CmdUpdate, events.UpdateRequest{Bucket: "orders", Key: b2, Changes: events.Record{"status": "paid"}}},
		{"tx across groups", events.CmdTx, events.TxRequest{Ops: []events.TxOp{
			{Op: "insert", Bucket: "orders", Record: events.Record{"userId": "carol", "total": 5.0}},
			{Op: "delete", Bucket: "orders", Key: a2},
			{Op: "update", Bucket: "orders", Key: a3, Changes: events.Record{"total": 1.0}},
		}}},
	}
	for _, s := range steps {
		mustCall(t, nc, s.cmd, s.req, nil)
		checkStats(t, nc)
	}
	if r := getRecord(t, nc, "userStats", "alice"); r != nil {
		t.Fatalf("alice has no orders left, her view record is %v", r)
	}

	// A change the view does not read leaves it alone (carol's only order
	// is her last either way).
	before := queryAll(t, nc, "userStats", nil, 0)
	carol := queryAll(t, nc, "orders", events.Where{"userId": "carol"}, 0)[0]["id"]
	mustCall(t, nc, events.CmdUpdate, events.UpdateRequest{Bucket: "orders", Key: carol, Changes: events.Record{"sku": "S1"}}, nil)
	// A transaction rolled back leaves it alone, versions included.
	e := call(t, nc, events.CmdTx, events.TxRequest{Ops: []events.TxOp{
		{Op: "insert", Bucket: "orders", Record: events.Record{"userId": "bob", "total": 500.0}},
		{Op: "update", Bucket: "orders", Key: a3, Changes: events.Record{"userId": "carol", "total": 0.5}},
		{Op: "delete", Bucket: "orders", Key: b2},
		{Op: "update", Bucket: "orders", Key: 999.0, Changes: events.Record{"total": 1.0}},
	}}, nil)
	wantCode(t, e, events.CodeNotFound)
	if after := queryAll(t, nc, "userStats", nil, 0); !reflect.DeepEqual(after, before) {
		t.Fatalf("view changed by an unrelated update or a failed tx:\n%v\nwant\n%v", after, before)
	}
	for _, u := range []string{"bob", "dave", "bob", "carol"} {
		insertOrder(t, nc, u, 2)
	}
	checkStats(t, nc)

	want := snapshot(t, nc)
	restartNode(t, st)
	if got := snapshot(t, nc); got != want {
		t.Fatalf("after restart:\n%s\nwant\n%s", got, want)
	}
	checkStats(t, nc)
}
