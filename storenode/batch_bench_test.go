package storenode_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nuid"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// BenchmarkBatchVsSingles measures, in the same run on one embedded server
// (the default batch fsync), n inserts sent as one store.batch against the
// same n inserts sent as n concurrent single requests, and reports the time
// per insert of each and their ratio (speedup: singles / batch).
func BenchmarkBatchVsSingles(b *testing.B) {
	st := storetest.StartStore(b)
	define(b, st.Conn, ordersDef())
	for _, n := range []int{16, 64, 256} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			var batchTime, singlesTime time.Duration
			for b.Loop() {
				cmds := make([]events.BatchCommand, n)
				singles := make([][]byte, n)
				ids := make([]string, n)
				for i := range cmds {
					rec := events.Record{"userId": "u", "total": float64(i)}
					ids[i] = nuid.Next()
					cmds[i] = events.BatchCommand{Cmd: events.CmdInsert, CommandID: nuid.Next(), Bucket: "orders", Record: rec}
					singles[i], _ = json.Marshal(events.InsertRequest{Bucket: "orders", Record: rec})
				}
				body, _ := json.Marshal(events.BatchRequest{Commands: cmds})

				start := time.Now()
				reply, err := request(st.Conn, events.CmdBatch, body)
				batchTime += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				var res events.BatchResult
				if e := decodeReply(b, events.CmdBatch, reply, &res); e != nil || len(res.Results) != n || res.Results[n-1].Error != nil {
					b.Fatalf("batch: %v, %d results", e, len(res.Results))
				}

				start = time.Now()
				var wg sync.WaitGroup
				errs := make(chan error, n)
				for i := range n {
					wg.Go(func() {
						if _, err := request(st.Conn, events.CmdInsert, singles[i], events.HeaderCommandID, ids[i]); err != nil {
							errs <- err
						}
					})
				}
				wg.Wait()
				singlesTime += time.Since(start)
				close(errs)
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			inserts := float64(b.N * n)
			b.ReportMetric(float64(batchTime.Nanoseconds())/inserts, "batch-ns/insert")
			b.ReportMetric(float64(singlesTime.Nanoseconds())/inserts, "singles-ns/insert")
			b.ReportMetric(float64(singlesTime)/float64(batchTime), "speedup")
		})
	}
}
