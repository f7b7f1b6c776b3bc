package projections

import (
	"fmt"
	"testing"

	"github.com/storeloop/storeloop/events"
)

// BenchmarkViewFold measures the fold of one order insert into a bucket
// without a view (the raw baseline) and with the six-field stats view,
// and the delete of a group's largest order (its max recomputed from the
// group's members) against the delete of one that is no extreme, for
// groups of 10 and 1,000 orders.
func BenchmarkViewFold(b *testing.B) {
	order := func(id, users int) events.Record {
		return events.Record{"id": float64(id), "userId": fmt.Sprint("u", id%users), "total": float64(id % 1000), "status": "paid",
			events.FieldVersion: 1.0, events.FieldCreatedAt: float64(id), events.FieldUpdatedAt: float64(id)}
	}
	for _, withView := range []bool{false, true} {
		name := "insert/plain"
		if withView {
			name = "insert/view"
		}
		b.Run(name, func(b *testing.B) {
			s := NewState()
			mustDefine(b, s, ordersDef())
			if withView {
				mustDefine(b, s, statsDef("stats"))
			}
			i := 0
			for b.Loop() {
				i++
				r := order(i, 1000)
				if err := s.Apply(&events.Event{Type: events.OpInserted, Bucket: "orders", Key: r["id"], Record: r}); err != nil {
					b.Fatal(err)
				}
				s.Settle()
			}
		})
	}
	for _, size := range []int{10, 1000} {
		for _, extreme := range []bool{false, true} {
			name := fmt.Sprintf("delete/group=%d/", size)
			if extreme {
				name += "max"
			} else {
				name += "middle"
			}
			b.Run(name, func(b *testing.B) {
				s := NewState()
				mustDefine(b, s, ordersDef())
				mustDefine(b, s, statsDef("stats"))
				for id := 1; id <= size; id++ {
					r := order(id, 1)
					r["total"] = float64(id)
					if err := s.Apply(&events.Event{Type: events.OpInserted, Bucket: "orders", Key: r["id"], Record: r}); err != nil {
						b.Fatal(err)
					}
				}
				s.Settle()
				victim := float64(size / 2)
				if extreme {
					victim = float64(size)
				}
				k, _ := events.KeyString(victim)
				r, _ := s.Bucket("orders").Get(k)
				del := &events.Event{Type: events.OpDeleted, Bucket: "orders", Key: victim, Record: r}
				ins := &events.Event{Type: events.OpInserted, Bucket: "orders", Key: victim, Record: r}
				for b.Loop() {
					if err := s.Apply(del); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					if err := s.Apply(ins); err != nil {
						b.Fatal(err)
					}
					s.Settle()
					b.StartTimer()
				}
			})
		}
	}
}
