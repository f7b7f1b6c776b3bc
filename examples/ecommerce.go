package examples

import (
	"context"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
)

// Step is one write of a scenario, named for the reader.
type Step struct {
	What string
	Do   func(ctx context.Context, cl *client.Client) error
}

// The results of the seed's complete example (examples/ecommerce).
const (
	EcommerceLaptopStock  = 48  // 50 - 2
	EcommerceMouseStock   = 195 // 200 - 5
	EcommerceAlicePoints  = 274 // 2598/10 + 150/10 = 259 + 15
	EcommerceShipOrderOne = "ship order 1"
)

// EcommerceSteps are the writes of the seed's complete example, in order:
// stock two products, two orders for alice, confirm both, ship both. The
// rules of examples/ecommerce then deduct the stock and award the points.
func EcommerceSteps() []Step {
	insert := func(bucket string, rec events.Record) func(context.Context, *client.Client) error {
		return func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Bucket(bucket).Insert(ctx, rec)
			return err
		}
	}
	status := func(id float64, s string) func(context.Context, *client.Client) error {
		return func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Bucket("orders").Update(ctx, id, events.Record{"status": s})
			return err
		}
	}
	return []Step{
		{"stock LAPTOP-1 (50)", insert("inventory", events.Record{"sku": "LAPTOP-1", "name": "Pro Laptop", "quantity": 50.0})},
		{"stock MOUSE-1 (200)", insert("inventory", events.Record{"sku": "MOUSE-1", "name": "Wireless Mouse", "quantity": 200.0})},
		{"order 1: alice, 2 × LAPTOP-1, 2598", insert("orders", events.Record{"userId": "alice", "sku": "LAPTOP-1", "qty": 2.0, "total": 2598.0})},
		{"order 2: alice, 5 × MOUSE-1, 150", insert("orders", events.Record{"userId": "alice", "sku": "MOUSE-1", "qty": 5.0, "total": 150.0})},
		{"confirm order 1", status(1, "confirmed")},
		{"confirm order 2", status(2, "confirmed")},
		{EcommerceShipOrderOne, status(1, "shipped")},
		{"ship order 2", status(2, "shipped")},
	}
}
