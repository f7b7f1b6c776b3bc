package client_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
)

func TestTransactionCommitsAllWrites(t *testing.T) {
	c := newStore(t, ordersDef, loyaltyDef)
	ctx := ctxT(t)
	insertOrders(t, c, "alice")

	results, err := c.Transaction(ctx, func(tx *client.Tx) error {
		order, err := tx.Bucket("orders").Get(ctx, 1)
		if err != nil {
			return err
		}
		tx.Bucket("orders").Update(1, events.Record{"status": "shipped"}, client.ExpectVersion(1))
		tx.Bucket("loyalty").Upsert(order["userId"], events.Record{"userId": order["userId"]},
			client.Increment(map[string]float64{"points": order["total"].(float64)}))
		return nil
	})
	if err != nil || len(results) != 2 {
		t.Fatalf("transaction = %v, %v; want 2 results", results, err)
	}
	order, _ := c.Bucket("orders").Get(ctx, 1)
	points, _ := c.Bucket("loyalty").Get(ctx, "alice")
	if order["status"] != "shipped" || points["points"] != 10.0 {
		t.Fatalf("after commit order %v, loyalty %v", order, points)
	}
}

func TestTransactionReadsItsOwnWrites(t *testing.T) {
	c := newStore(t, ordersDef, loyaltyDef)
	ctx := ctxT(t)
	insertOrders(t, c, "alice", "bob")

	type view struct {
		name string
		got  events.Record
		want events.Record
	}
	var views []view
	_, err := c.Transaction(ctx, func(tx *client.Tx) error {
		orders, loyalty := tx.Bucket("orders"), tx.Bucket("loyalty")
		get := func(b *client.TxBucket, name string, key any, want events.Record) {
			got, err := b.Get(ctx, key)
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			views = append(views, view{name, strip(got), want})
		}
		get(orders, "before any write", 1, events.Record{"id": 1.0, "userId": "alice", "total": 10.0, "status": "pending", "_version": 1.0})
		orders.Update(1, events.Record{"status": "paid"}, client.Increment(map[string]float64{"total": 5}))
		get(orders, "after an update", 1, events.Record{"id": 1.0, "userId": "alice", "total": 15.0, "status": "paid", "_version": 2.0})
		orders.Delete(2)
		get(orders, "after a delete", 2, nil)
		orders.Insert(events.Record{"id": 9.0, "userId": "carol", "total": 1.0})
		get(orders, "after an insert", 9, events.Record{"id": 9.0, "userId": "carol", "total": 1.0, "_version": 1.0})
		loyalty.Upsert("carol", nil, client.Increment(map[string]float64{"points": 3}))
		loyalty.Upsert("carol", nil, client.Increment(map[string]float64{"points": 4}))
		get(loyalty, "after two upserts", "carol", events.Record{"userId": "carol", "points": 7.0, "_version": 2.0})

		all, err := orders.Where(ctx, nil)
		if err != nil {
			return err
		}
		if ids := idsOf(all); !reflect.DeepEqual(ids, []float64{1}) || all[0]["status"] != "paid" {
			t.Errorf("where in the tx = %v, want only order 1, paid", all)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("transaction: %v", err)
	}
	for _, v := range views {
		if !reflect.DeepEqual(v.got, v.want) {
			t.Errorf("%s: got %v, want %v", v.name, v.got, v.want)
		}
	}
	if got, _ := c.Bucket("loyalty").Get(ctx, "carol"); got["points"] != 7.0 {
		t.Fatalf("committed carol = %v, want 7 points", got)
	}
	if n, _ := c.Bucket("orders").Count(ctx, nil); n != 2 {
		t.Fatalf("orders after commit = %d, want 2 (1 and 9)", n)
	}
}

func TestTransactionRerunsOnConflict(t *testing.T) {
	tests := []struct {
		name string
		// interfere writes outside the transaction after its reads.
		interfere func(ctx context.Context, c *client.Client) error
		read      func(ctx context.Context, tx *client.Tx) error
	}{
		{
			name: "a read record changed",
			read: func(ctx context.Context, tx *client.Tx) error {
				_, err := tx.Bucket("orders").Get(ctx, 1)
				return err
			},
			interfere: func(ctx context.Context, c *client.Client) error {
				_, err := c.Bucket("orders").Update(ctx, 1, events.Record{"status": "paid"})
				return err
			},
		},
		{
			name: "a missing record appeared",
			read: func(ctx context.Context, tx *client.Tx) error {
				_, err := tx.Bucket("loyalty").Get(ctx, "alice")
				return err
			},
			interfere: func(ctx context.Context, c *client.Client) error {
				_, err := c.Bucket("loyalty").Insert(ctx, events.Record{"userId": "alice"})
				return err
			},
		},
		{
			name: "a query gained a record",
			read: func(ctx context.Context, tx *client.Tx) error {
				_, err := tx.Bucket("orders").Where(ctx, events.Where{"userId": "alice"})
				return err
			},
			interfere: func(ctx context.Context, c *client.Client) error {
				_, err := c.Bucket("orders").Insert(ctx, events.Record{"userId": "alice", "total": 1.0})
				return err
			},
		},
	}
	for _, tt := range tests {
		for _, attempts := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/%d attempts", tt.name, attempts), func(t *testing.T) {
				c := newStore(t, ordersDef, loyaltyDef)
				ctx := ctxT(t)
				insertOrders(t, c, "alice")
				runs := 0
				_, err := c.Transaction(ctx, func(tx *client.Tx) error {
					runs++
					if err := tt.read(ctx, tx); err != nil {
						return err
					}
					if runs == 1 {
						if err := tt.interfere(ctx, c); err != nil {
							return err
						}
					}
					tx.Bucket("orders").Update(1, nil, client.Increment(map[string]float64{"total": 1}))
					return nil
				}, client.MaxAttempts(attempts))
				wantTotal := 11.0
				if attempts == 1 {
					if !errors.Is(err, events.ErrConflict) || runs != 1 {
						t.Fatalf("err = %v after %d runs, want conflict after 1", err, runs)
					}
					wantTotal = 10
				} else if err != nil || runs != 2 {
					t.Fatalf("err = %v after %d runs, want success on the second", err, runs)
				}
				if got, _ := c.Bucket("orders").Get(ctx, 1); got["total"] != wantTotal {
					t.Fatalf("order 1 = %v, want total %v", got, wantTotal)
				}
			})
		}
	}
}

func TestTransactionFunctionErrorSendsNothing(t *testing.T) {
	c := newStore(t, ordersDef)
	ctx := ctxT(t)
	insertOrders(t, c, "alice")
	before, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_, err = c.Transaction(ctx, func(tx *client.Tx) error {
		tx.Bucket("orders").Delete(1)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the function's", err)
	}
	_, err = c.Transaction(ctx, func(tx *client.Tx) error {
		_, err := tx.Bucket("nope").Get(ctx, 1)
		return err
	})
	if !errors.Is(err, events.ErrBucketNotFound) {
		t.Fatalf("err = %v, want bucket_not_found from the read", err)
	}
	after, _ := c.Status(ctx)
	if after.LastSeq != before.LastSeq {
		t.Fatalf("last seq %d → %d: something was written", before.LastSeq, after.LastSeq)
	}
}

// TestTransactionsDoNotLoseUpdates runs read-modify-write transactions
// concurrently: conflicts make each one rerun until its read is current.
func TestTransactionsDoNotLoseUpdates(t *testing.T) {
	c := newStore(t, loyaltyDef)
	ctx := ctxT(t)
	if _, err := c.Bucket("loyalty").Insert(ctx, events.Record{"userId": "alice"}); err != nil {
		t.Fatal(err)
	}
	const workers = 6
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			_, err := c.Transaction(ctx, func(tx *client.Tx) error {
				rec, err := tx.Bucket("loyalty").Get(ctx, "alice")
				if err != nil {
					return err
				}
				tx.Bucket("loyalty").Update("alice", events.Record{"points": rec["points"].(float64) + 1})
				return nil
			}, client.MaxAttempts(100))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("transaction: %v", err)
		}
	}
	if got, _ := c.Bucket("loyalty").Get(ctx, "alice"); got["points"] != float64(workers) {
		t.Fatalf("points = %v, want %d", got["points"], workers)
	}
}
