package projections_test

import (
	"fmt"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/projections"
)

func Example() {
	s := projections.NewState()
	_, _ = s.Define(events.BucketDef{
		Bucket:  "orders",
		Key:     "id",
		Schema:  map[string]events.FieldDef{"id": {Type: events.TypeNumber}, "total": {Type: events.TypeNumber}},
		Indexes: []string{"total"},
	})
	for i, total := range []float64{30, 120, 75, 200} {
		r := events.Record{"id": float64(i + 1), "total": total, "status": "open"}
		if err := s.Apply(&events.Event{Type: events.OpInserted, Bucket: "orders", Key: r["id"], Record: r}); err != nil {
			fmt.Println(err)
			return
		}
	}
	orders := s.Bucket("orders")

	// Orders of at least 50, two per page; "total" is indexed, so the index
	// supplies the candidates.
	where := events.Where{"total": map[string]any{"$gte": 50}, "status": "open"}
	page, next, _ := orders.Query(where, 2, "")
	for _, r := range page {
		fmt.Println(r["id"], r["total"])
	}
	page, next, _ = orders.Query(where, 2, next)
	for _, r := range page {
		fmt.Println(r["id"], r["total"])
	}
	fmt.Printf("last page: %v\n", next == "")

	n, _ := orders.Count(where)
	sum, _ := orders.Aggregate(projections.AggSum, "total", where)
	fmt.Println(n, sum)
	// Output:
	// 2 120
	// 3 75
	// 4 200
	// last page: true
	// 3 395
}
