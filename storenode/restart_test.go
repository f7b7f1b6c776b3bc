package storenode_test

import (
	"fmt"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/procs"
	"github.com/storeloop/storeloop/internal/storetest"
)

// TestRestartReplays: a restarted node rebuilds from the stream exactly the
// state the first one served, and generated keys continue past every key
// ever used.
func TestRestartReplays(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef(), usersDef(), loyaltyDef(), inventoryDef(), reorderRequestsDef())
	var userIDs []any
	for i := range 300 {
		mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": fmt.Sprint("u", i%7), "total": float64(i)}}, nil)
		mustCall(t, nc, events.CmdUpsert, events.UpsertRequest{Bucket: "loyalty", Key: fmt.Sprint("u", i%7), Increment: map[string]float64{"points": float64(i)}}, nil)
		switch i % 10 {
		case 0:
			var u events.Record
			mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "users", Record: events.Record{"name": fmt.Sprint("n", i), "email": fmt.Sprintf("n%d@example.com", i)}}, &u)
			userIDs = append(userIDs, u["id"])
		case 3:
			mustCall(t, nc, events.CmdUpdate, events.UpdateRequest{Bucket: "orders", Key: float64(i), Changes: events.Record{"status": "shipped", "sku": nil}}, nil)
		case 5:
			mustCall(t, nc, events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: float64(i - 1)}, nil)
		case 7:
			sku := fmt.Sprint("S", i)
			mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "inventory", Record: events.Record{"sku": sku, "quantity": 3.0}}, nil)
			mustCall(t, nc, events.CmdTx, events.TxRequest{Ops: []events.TxOp{
				{Op: "update", Bucket: "inventory", Key: sku, Changes: events.Record{"reorder": true}},
				{Op: "insert", Bucket: "reorderRequests", Record: events.Record{"sku": sku, "quantity": 100.0}},
			}}, nil)
		}
	}
	// The highest order goes: its id must still not come back.
	mustCall(t, nc, events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: 300.0}, nil)
	mustCall(t, nc, events.CmdDelete, events.DeleteRequest{Bucket: "users", Key: userIDs[0]}, nil)

	want := snapshot(t, nc)
	wantUser := getRecord(t, nc, "users", userIDs[1])
	for round := range 2 {
		restartNode(t, st)
		if got := snapshot(t, nc); got != want {
			t.Fatalf("round %d: state after restart:\n%s\nwant\n%s", round, got, want)
		}
		if got := getRecord(t, nc, "users", userIDs[1]); !reflect.DeepEqual(got, wantUser) {
			t.Errorf("round %d: get = %v, want %v", round, got, wantUser)
		}
		if got := getRecord(t, nc, "users", userIDs[0]); got != nil {
			t.Errorf("round %d: deleted user is back: %v", round, got)
		}
	}

	// Autoincrement continues after the highest id ever stored; unique
	// indexes are rebuilt too.
	var next events.Record
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": 1.0}}, &next)
	if next["id"] != 301.0 {
		t.Errorf("next order id %v, want 301", next["id"])
	}
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "reorderRequests", Record: events.Record{"sku": "x", "quantity": 1.0}}, &next)
	if next["id"] != 31.0 {
		t.Errorf("next reorder request id %v, want 31", next["id"])
	}
	e := call(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "users", Record: events.Record{"name": "x", "email": "n10@example.com"}}, nil)
	wantCode(t, e, events.CodeUnique)
	// The definitions came back: a different one is still refused.
	changed := ordersDef()
	changed.Indexes = nil
	wantCode(t, call(t, nc, events.CmdDefine, changed, nil), events.CodeBucketExists)
}

func TestMain(m *testing.M) {
	code := m.Run()
	procs.Cleanup()
	os.Exit(code)
}

// startDaemon runs the storenode daemon on dataDir, on a new port each
// time, and waits for its ready line.
func startDaemon(t *testing.T, dataDir string) *procs.Storenode {
	t.Helper()
	return procs.StartStorenode(t, procs.StorenodeSpec(t, dataDir, "127.0.0.1:0"))
}

func connectURL(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// killWork is one unit of a writer's load: a command with its id.
type killWork struct {
	id  string
	cmd string
	req any
}

// killLoad describes a load run against a daemon that gets killed.
type killLoad struct {
	name string
	defs []events.BucketDef
	// work returns the n-th command of writer w.
	work func(w, n int) killWork
	// check verifies the state after the restart: acked and sent list the
	// command ids acknowledged and sent (a superset) before the kill.
	check func(t *testing.T, nc *nats.Conn, acked map[string]any, sent map[string]killWork)
}

// TestKill9 loads a daemon from 8 writers, SIGKILLs it after a number of
// acknowledgements, restarts it on the same data, and checks that every
// acknowledged write survived exactly once and that retrying the others by
// their command ids applies each exactly once.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the storenode daemon")
	}
	for _, load := range []killLoad{insertLoad(), txLoad()} {
		t.Run(load.name, func(t *testing.T) { runKill9(t, load) })
	}
}

func runKill9(t *testing.T, load killLoad) {
	const writers, killAfter = 8, 300
	dataDir := t.TempDir()
	d := startDaemon(t, dataDir)
	nc := connectURL(t, d.URL)
	define(t, nc, load.defs...)

	var (
		mu     sync.Mutex
		acked  = map[string]any{} // command id → its result
		sent   = map[string]killWork{}
		count  atomic.Int64
		enough = make(chan struct{})
		wg     sync.WaitGroup
	)
	for w := range writers {
		wnc := connectURL(t, d.URL)
		wg.Go(func() {
			for n := 0; ; n++ {
				work := load.work(w, n)
				mu.Lock()
				sent[work.id] = work
				mu.Unlock()
				var result any
				if err := try(wnc, work.cmd, work.req, &result, events.HeaderCommandID, work.id); err != nil {
					return // the daemon is gone: this one stays unacknowledged
				}
				mu.Lock()
				acked[work.id] = result
				mu.Unlock()
				if count.Add(1) == killAfter {
					close(enough)
				}
			}
		})
	}
	select {
	case <-enough:
	case <-time.After(30 * time.Second):
		t.Fatalf("only %d acknowledgements in 30s", count.Load())
	}
	d.Kill(t)
	wg.Wait()
	t.Logf("%d acknowledged, %d sent before the kill", len(acked), len(sent))

	d = startDaemon(t, dataDir)
	nc = connectURL(t, d.URL)
	// Acknowledged commands answer with their first result.
	for id, result := range acked {
		var again any
		w := sent[id]
		if err := try(nc, w.cmd, w.req, &again, events.HeaderCommandID, id); err != nil {
			t.Fatalf("retry of acknowledged %s: %v", id, err)
		}
		if !reflect.DeepEqual(again, result) {
			t.Fatalf("retry of acknowledged %s = %v, first %v", id, again, result)
		}
	}
	load.check(t, nc, acked, sent)
	// Retrying the unacknowledged ones applies each exactly once.
	for id, w := range sent {
		if _, ok := acked[id]; !ok {
			var result any
			if err := try(nc, w.cmd, w.req, &result, events.HeaderCommandID, id); err != nil {
				t.Fatalf("retry of %s: %v", id, err)
			}
			acked[id] = result
		}
	}
	load.check(t, nc, acked, sent)
}

// insertLoad: plain inserts with generated ids.
func insertLoad() killLoad {
	return killLoad{
		name: "insert",
		defs: []events.BucketDef{ordersDef()},
		work: func(w, n int) killWork {
			id := fmt.Sprintf("w%d-%d", w, n)
			return killWork{id, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": fmt.Sprint("w", w), "sku": id, "total": float64(n)}}}
		},
		check: func(t *testing.T, nc *nats.Conn, acked map[string]any, sent map[string]killWork) {
			t.Helper()
			orders := queryAll(t, nc, "orders", nil, 0)
			bySku := map[string]events.Record{}
			ids := map[float64]bool{}
			maxID := 0.0
			for _, o := range orders {
				sku := o["sku"].(string)
				if _, ok := sent[sku]; !ok {
					t.Fatalf("order %v was never sent", o)
				}
				if bySku[sku] != nil {
					t.Fatalf("%s stored twice: %v and %v", sku, bySku[sku], o)
				}
				bySku[sku] = o
				id := o["id"].(float64)
				ids[id], maxID = true, max(maxID, id)
			}
			for sku, result := range acked {
				if got, ok := bySku[sku]; !ok || got["id"] != result.(map[string]any)["id"] {
					t.Fatalf("acknowledged %s = %v, stored %v", sku, result, got)
				}
			}
			// Generated ids continue without reuse.
			var next events.Record
			mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "check", "total": 0.0}}, &next)
			if id := next["id"].(float64); ids[id] || id <= maxID {
				t.Fatalf("next id %v, the highest stored is %v", id, maxID)
			}
			mustCall(t, nc, events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: next["id"]}, nil)
		},
	}
}

// txLoad: each command is a transaction over three buckets, so each must be
// wholly present or wholly absent.
func txLoad() killLoad {
	return killLoad{
		name: "tx",
		defs: []events.BucketDef{ordersDef(), reorderRequestsDef(), loyaltyDef()},
		work: func(w, n int) killWork {
			id := fmt.Sprintf("tx%d-%d", w, n)
			return killWork{id, events.CmdTx, events.TxRequest{Ops: []events.TxOp{
				{Op: "insert", Bucket: "orders", Record: events.Record{"userId": fmt.Sprint("w", w), "sku": id, "total": float64(n)}},
				{Op: "upsert", Bucket: "loyalty", Key: fmt.Sprint("w", w), Increment: map[string]float64{"points": 1}},
				{Op: "insert", Bucket: "reorderRequests", Record: events.Record{"sku": id, "quantity": float64(n)}},
			}}}
		},
		check: func(t *testing.T, nc *nats.Conn, acked map[string]any, sent map[string]killWork) {
			t.Helper()
			orders, requests := map[string]bool{}, map[string]bool{}
			perWriter := map[string]float64{}
			for _, o := range queryAll(t, nc, "orders", nil, 0) {
				if orders[o["sku"].(string)] {
					t.Fatalf("%s stored twice", o["sku"])
				}
				orders[o["sku"].(string)] = true
				perWriter[o["userId"].(string)]++
			}
			for _, r := range queryAll(t, nc, "reorderRequests", nil, 0) {
				requests[r["sku"].(string)] = true
			}
			for id := range sent {
				if orders[id] != requests[id] {
					t.Fatalf("tx %s half applied: order %v, request %v", id, orders[id], requests[id])
				}
				if _, ok := acked[id]; ok && !orders[id] {
					t.Fatalf("acknowledged tx %s is missing", id)
				}
			}
			if len(orders) != len(requests) {
				t.Fatalf("%d orders, %d requests", len(orders), len(requests))
			}
			for _, l := range queryAll(t, nc, "loyalty", nil, 0) {
				if l["points"] != perWriter[l["userId"].(string)] {
					t.Fatalf("loyalty %v, want %v points", l, perWriter[l["userId"].(string)])
				}
			}
		},
	}
}
