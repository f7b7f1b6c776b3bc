package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

func ptr[T any](v T) *T { return &v }

// ordersDef is the bucket most tests use: number keys from a counter.
var ordersDef = events.BucketDef{
	Bucket: "orders",
	Key:    "id",
	Schema: map[string]events.FieldDef{
		"id":     {Type: events.TypeNumber, Generated: events.GenAutoincrement},
		"userId": {Type: events.TypeString, Required: true},
		"total":  {Type: events.TypeNumber, Required: true, Min: ptr(0.0)},
		"status": {Type: events.TypeString, Enum: []any{"pending", "paid", "shipped"}, Default: "pending"},
	},
	Indexes: []string{"userId"},
}

// loyaltyDef has string keys, for upserts with increments.
var loyaltyDef = events.BucketDef{
	Bucket: "loyalty",
	Key:    "userId",
	Schema: map[string]events.FieldDef{
		"userId": {Type: events.TypeString, Required: true},
		"points": {Type: events.TypeNumber, Default: 0.0},
	},
}

// ctxT returns a context bounded to the test's remaining time (or 30s).
func ctxT(t *testing.T) context.Context {
	t.Helper()
	d := 30 * time.Second
	if dl, ok := t.Deadline(); ok {
		d = time.Until(dl) - time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newStore starts a real store, connects a client and defines buckets.
func newStore(t *testing.T, defs ...events.BucketDef) *client.Client {
	t.Helper()
	url := storetest.Start(t)
	c, err := client.Connect(url, client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(c.Close)
	for _, d := range defs {
		if err := c.Define(ctxT(t), d); err != nil {
			t.Fatalf("define %s: %v", d.Bucket, err)
		}
	}
	return c
}

// insertOrders inserts orders for the given users with totals 10, 20, ...
func insertOrders(t *testing.T, c *client.Client, users ...string) []events.Record {
	t.Helper()
	var out []events.Record
	for i, u := range users {
		rec, err := c.Bucket("orders").Insert(ctxT(t), events.Record{"userId": u, "total": float64(10 * (i + 1))})
		if err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
		out = append(out, rec)
	}
	return out
}

// strip removes the store-maintained time fields, for exact comparisons.
func strip(r events.Record) events.Record {
	if r == nil {
		return nil
	}
	out := make(events.Record, len(r))
	for k, v := range r {
		if k != events.FieldCreatedAt && k != events.FieldUpdatedAt {
			out[k] = v
		}
	}
	return out
}
