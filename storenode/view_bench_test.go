package storenode_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// BenchmarkViewWrite measures, in the same run on one embedded server,
// order inserts (store.batch of 256, 4 callers) into a bucket with the
// six-field stats view against the same inserts into a bucket without
// one (the raw baseline), alternating rounds so that both see the same
// machine: ns per insert of each and the overhead ratio (view / plain).
func BenchmarkViewWrite(b *testing.B) {
	st := storetest.StartStore(b)
	nc := st.Conn
	plain := ordersDef()
	plain.Bucket = "plainOrders"
	define(b, nc, ordersDef(), plain, statsView())
	const round = 4096
	var viewTime, plainTime time.Duration
	rounds := 0
	for b.Loop() {
		for _, bucket := range []string{"orders", "plainOrders"} {
			start := time.Now()
			batches(b, nc, round, func(i int) events.BatchCommand {
				return events.BatchCommand{Cmd: events.CmdInsert, Bucket: bucket,
					Record: events.Record{"userId": fmt.Sprint("u", i%100), "total": float64(i % 997)}}
			})
			if bucket == "orders" {
				viewTime += time.Since(start)
			} else {
				plainTime += time.Since(start)
			}
		}
		rounds++
	}
	inserts := float64(rounds * round)
	b.ReportMetric(float64(viewTime.Nanoseconds())/inserts, "view-ns/insert")
	b.ReportMetric(float64(plainTime.Nanoseconds())/inserts, "plain-ns/insert")
	b.ReportMetric(float64(viewTime)/float64(plainTime), "overhead")
}
