package client_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
)

func TestBucketRoundTrip(t *testing.T) {
	c := newStore(t, ordersDef, loyaltyDef)
	ctx := ctxT(t)
	orders := c.Bucket("orders")

	rec, err := orders.Insert(ctx, events.Record{"userId": "alice", "total": 25.5})
	if err != nil {
		t.Fatalf("insert: %v", err)
	}
	want := events.Record{"id": 1.0, "userId": "alice", "total": 25.5, "status": "pending", "_version": 1.0}
	if !reflect.DeepEqual(strip(rec), want) {
		t.Fatalf("insert = %v, want %v", strip(rec), want)
	}
	if _, ok := rec[events.FieldCreatedAt].(float64); !ok {
		t.Fatalf("insert: _createdAt = %#v, want a number", rec[events.FieldCreatedAt])
	}

	got, err := orders.Get(ctx, 1)
	if err != nil || !reflect.DeepEqual(got, rec) {
		t.Fatalf("get = %v, %v; want %v", got, err, rec)
	}
	missing, err := orders.Get(ctx, 99)
	if err != nil || missing != nil {
		t.Fatalf("get missing = %v, %v; want nil, nil", missing, err)
	}

	upd, err := orders.Update(ctx, 1, events.Record{"status": "paid"}, client.Increment(map[string]float64{"total": 4.5}))
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	want = events.Record{"id": 1.0, "userId": "alice", "total": 30.0, "status": "paid", "_version": 2.0}
	if !reflect.DeepEqual(strip(upd), want) {
		t.Fatalf("update = %v, want %v", strip(upd), want)
	}
	upd, err = orders.Update(ctx, 1, events.Record{"status": "shipped"}, client.ExpectVersion(2))
	if err != nil || upd[events.FieldVersion] != 3.0 {
		t.Fatalf("update expecting version 2 = %v, %v; want _version 3", upd, err)
	}

	loyalty := c.Bucket("loyalty")
	for i, wantPoints := range []float64{10, 15} {
		rec, err := loyalty.Upsert(ctx, "alice", events.Record{"userId": "alice"},
			client.Increment(map[string]float64{"points": 5}), client.Increment(map[string]float64{"points": 5 - 5*float64(i)}))
		if err != nil {
			t.Fatalf("upsert %d: %v", i, err)
		}
		if rec["points"] != wantPoints || rec[events.FieldVersion] != float64(i+1) {
			t.Fatalf("upsert %d = %v, want points %v, _version %d", i, rec, wantPoints, i+1)
		}
	}

	deleted, err := orders.Delete(ctx, 1, client.ExpectVersion(3))
	if err != nil || !deleted {
		t.Fatalf("delete = %v, %v; want true, nil", deleted, err)
	}
	deleted, err = orders.Delete(ctx, 1)
	if err != nil || deleted {
		t.Fatalf("delete again = %v, %v; want false, nil", deleted, err)
	}
}

func TestQueryCountAggregate(t *testing.T) {
	c := newStore(t, ordersDef)
	ctx := ctxT(t)
	orders := c.Bucket("orders")
	insertOrders(t, c, "alice", "bob", "alice", "carol", "alice") // totals 10..50

	page, err := orders.Query(ctx, events.Where{"userId": "alice"}, client.Limit(2))
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	if ids := idsOf(page.Records); !reflect.DeepEqual(ids, []float64{1, 3}) || page.NextCursor == "" {
		t.Fatalf("page 1 = ids %v cursor %q; want [1 3] and a cursor", ids, page.NextCursor)
	}
	page, err = orders.Query(ctx, events.Where{"userId": "alice"}, client.Limit(2), client.After(page.NextCursor))
	if err != nil {
		t.Fatalf("query page 2: %v", err)
	}
	if ids := idsOf(page.Records); !reflect.DeepEqual(ids, []float64{5}) || page.NextCursor != "" {
		t.Fatalf("page 2 = ids %v cursor %q; want [5] and no cursor", ids, page.NextCursor)
	}

	all, err := orders.Where(ctx, events.Where{"total": events.Where{"$gte": 20}})
	if err != nil {
		t.Fatalf("where: %v", err)
	}
	if ids := idsOf(all); !reflect.DeepEqual(ids, []float64{2, 3, 4, 5}) {
		t.Fatalf("where = ids %v, want [2 3 4 5]", ids)
	}

	tests := []struct {
		name  string
		where events.Where
		count int
		sum   any
		max   any
	}{
		{"all", nil, 5, 150.0, 50.0},
		{"alice", events.Where{"userId": "alice"}, 3, 90.0, 50.0},
		{"nobody", events.Where{"userId": "nobody"}, 0, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := orders.Count(ctx, tt.where)
			if err != nil || n != tt.count {
				t.Errorf("count = %d, %v; want %d", n, err, tt.count)
			}
			sum, err := orders.Aggregate(ctx, "sum", "total", tt.where)
			if err != nil || (tt.sum != nil && sum != tt.sum) {
				t.Errorf("sum = %v, %v; want %v", sum, err, tt.sum)
			}
			max, err := orders.Aggregate(ctx, "max", "total", tt.where)
			if err != nil || max != tt.max {
				t.Errorf("max = %v, %v; want %v", max, err, tt.max)
			}
		})
	}
}

func idsOf(recs []events.Record) []float64 {
	ids := []float64{}
	for _, r := range recs {
		ids = append(ids, r["id"].(float64))
	}
	return ids
}

func TestDefineBucketsStatusTx(t *testing.T) {
	c := newStore(t, ordersDef, loyaltyDef)
	ctx := ctxT(t)

	if err := c.Define(ctx, ordersDef); err != nil {
		t.Fatalf("define the same again: %v", err)
	}
	other := ordersDef
	other.Indexes = nil
	if err := c.Define(ctx, other); !errors.Is(err, events.ErrBucketExists) {
		t.Fatalf("define a different one: err = %v, want bucket_exists", err)
	}

	insertOrders(t, c, "alice")
	list, err := c.Buckets(ctx)
	if err != nil {
		t.Fatalf("buckets: %v", err)
	}
	counts := map[string]int{}
	for _, b := range list {
		counts[b.Bucket] = b.Count
	}
	if !reflect.DeepEqual(counts, map[string]int{"orders": 1, "loyalty": 0}) {
		t.Fatalf("buckets counts = %v", counts)
	}

	results, err := c.Tx(ctx, events.TxRequest{
		Ops: []events.TxOp{
			{Op: "update", Bucket: "orders", Key: 1, Changes: events.Record{"status": "paid"}},
			{Op: "upsert", Bucket: "loyalty", Key: "alice", Record: events.Record{"userId": "alice"}, Increment: map[string]float64{"points": 3}},
		},
		Reads: []events.TxRead{{Bucket: "orders", Key: 1, Version: 1}, {Bucket: "loyalty", Key: "alice", Version: 0}},
	})
	if err != nil || len(results) != 2 {
		t.Fatalf("tx = %v, %v; want 2 results", results, err)
	}
	if r, _ := results[1].(map[string]any); r["points"] != 3.0 {
		t.Fatalf("tx result 1 = %v, want points 3", results[1])
	}
	_, err = c.Tx(ctx, events.TxRequest{
		Ops:   []events.TxOp{{Op: "delete", Bucket: "orders", Key: 1}},
		Reads: []events.TxRead{{Bucket: "orders", Key: 1, Version: 1}},
	})
	if !errors.Is(err, events.ErrConflict) {
		t.Fatalf("tx on a stale read: err = %v, want conflict", err)
	}
	if n, _ := c.Bucket("orders").Count(ctx, nil); n != 1 {
		t.Fatalf("after the failed tx count = %d, want 1", n)
	}

	st, err := c.Status(ctx)
	if err != nil || !st.Healthy || st.LastSeq == 0 {
		t.Fatalf("status = %+v, %v; want healthy with a last sequence", st, err)
	}
}

func TestTypedErrors(t *testing.T) {
	c := newStore(t, ordersDef)
	ctx := ctxT(t)
	orders := c.Bucket("orders")
	insertOrders(t, c, "alice")

	tests := []struct {
		name   string
		call   func() error
		code   events.Code
		issues []events.Issue // Field and Code compared
	}{
		{"validation", func() error {
			_, err := orders.Insert(ctx, events.Record{"total": -1.0})
			return err
		}, events.CodeValidation, []events.Issue{{Field: "total", Code: "min"}, {Field: "userId", Code: "required"}}},
		{"conflict on an existing key", func() error {
			_, err := orders.Insert(ctx, events.Record{"id": 1.0, "userId": "bob", "total": 1.0})
			return err
		}, events.CodeConflict, nil},
		{"not found", func() error {
			_, err := orders.Update(ctx, 42, events.Record{"status": "paid"})
			return err
		}, events.CodeNotFound, nil},
		{"stale version", func() error {
			_, err := orders.Update(ctx, 1, events.Record{"status": "paid"}, client.ExpectVersion(7))
			return err
		}, events.CodeConflict, nil},
		{"stale version on delete", func() error {
			_, err := orders.Delete(ctx, 1, client.ExpectVersion(7))
			return err
		}, events.CodeConflict, nil},
		{"bucket not found", func() error {
			_, err := c.Bucket("nope").Get(ctx, 1)
			return err
		}, events.CodeBucketNotFound, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var e *events.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *events.Error", err, err)
			}
			if e.Code != tt.code || !errors.Is(err, &events.Error{Code: tt.code}) {
				t.Fatalf("code = %q, want %q (err %v)", e.Code, tt.code, err)
			}
			var got []events.Issue
			for _, is := range e.Issues {
				got = append(got, events.Issue{Field: is.Field, Code: is.Code})
			}
			if !reflect.DeepEqual(got, tt.issues) {
				t.Fatalf("issues = %v, want %v", got, tt.issues)
			}
		})
	}
	if got, _ := orders.Get(ctx, 1); got["userId"] != "alice" {
		t.Fatalf("after the failures record 1 = %v", got)
	}
}
