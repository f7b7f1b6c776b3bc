package storenode_test

import (
	"testing"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// BenchmarkInsertBesideHeaviestTx measures what an insert waits (ns/op)
// while the heaviest tx the caps allow runs again and again on the single
// writer: 90,000 records visited (45 queryReads of a 2,000-record bucket)
// and 10,000 listed and compared, all current. Issue 9 measured 19.3 s
// before the caps; TestTxCostCaps checks the caps themselves.
func BenchmarkInsertBesideHeaviestTx(b *testing.B) {
	st := storetest.StartStore(b)
	nc := st.Conn
	define(b, nc, bigDef(), ordersDef())
	insertBig(b, nc, 2000, 10)
	noMatch := events.TxQueryRead{Bucket: "big", Where: events.Where{"n": map[string]any{"$gt": 1.0}}, Records: []events.TxRead{}}
	everything := events.TxQueryRead{Bucket: "big", Where: events.Where{"n": 0.0}}
	for i := 1; i <= 2000; i++ {
		everything.Records = append(everything.Records, events.TxRead{Key: float64(i), Version: 1})
	}
	var qr []events.TxQueryRead
	for range 40 {
		qr = append(qr, noMatch)
	}
	for range 5 {
		qr = append(qr, everything)
	}
	// Its write and the inserts measured go to orders, so that the bucket
	// the tx scans does not grow past the cap.
	heavy := events.TxRequest{Ops: []events.TxOp{{Op: events.CmdInsert, Bucket: "orders", Record: events.Record{"userId": "heavy", "total": 1.0}}},
		QueryReads: qr}
	mustCall(b, nc, events.CmdTx, heavy, nil)
	stop := make(chan struct{})
	heavyErr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				heavyErr <- nil
				return
			default:
			}
			if err := try(nc, events.CmdTx, heavy, nil); err != nil {
				heavyErr <- err
				return
			}
		}
	}()
	insert := events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": 2.0}}
	for b.Loop() {
		mustCall(b, nc, events.CmdInsert, insert, nil)
	}
	close(stop)
	if err := <-heavyErr; err != nil {
		b.Fatal(err)
	}
}
