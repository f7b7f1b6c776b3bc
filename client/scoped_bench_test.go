package client_test

import (
	"context"
	"testing"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// BenchmarkScopedSubjects compares a get and an insert on store.<op> with
// the same on store.<op>.<bucket>, one caller, on one store.
func BenchmarkScopedSubjects(b *testing.B) {
	url := storetest.Start(b)
	ctx := context.Background()
	clients := map[string]*client.Client{}
	for name, opts := range map[string][]client.Option{"plain": nil, "scoped": {client.WithScopedSubjects()}} {
		c, err := client.Connect(url, opts...)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		clients[name] = c
	}
	if err := clients["plain"].Define(ctx, ordersDef); err != nil {
		b.Fatal(err)
	}
	rec, err := clients["plain"].Bucket("orders").Insert(ctx, events.Record{"userId": "u", "total": 1.0})
	if err != nil {
		b.Fatal(err)
	}
	for _, op := range []string{"get", "insert"} {
		for _, name := range []string{"plain", "scoped"} {
			orders := clients[name].Bucket("orders")
			b.Run(op+"/"+name, func(b *testing.B) {
				for b.Loop() {
					var err error
					if op == "get" {
						_, err = orders.Get(ctx, rec["id"])
					} else {
						_, err = orders.Insert(ctx, events.Record{"userId": "u", "total": 1.0})
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
