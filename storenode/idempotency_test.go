package storenode_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/natstest"
	"github.com/storeloop/storeloop/internal/storetest"
)

// idemCommand is a write sent with a command id.
type idemCommand struct {
	name   string
	cmd    string
	req    any
	events int // events its first execution appends
}

// idemCommands returns writes of every kind on buckets seeded by
// seedIdem, each with the number of events it appends the first time.
func idemCommands() []idemCommand {
	return []idemCommand{
		{"define", events.CmdDefine, sessionsDef(), 1},
		{"insert", events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": 1.0}}, 1},
		{"update increment", events.CmdUpdate, events.UpdateRequest{Bucket: "orders", Key: 1.0, Increment: map[string]float64{"total": 1}}, 1},
		{"upsert increment", events.CmdUpsert, events.UpsertRequest{Bucket: "loyalty", Key: "u", Increment: map[string]float64{"points": 10}}, 1},
		{"delete", events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: 2.0}, 1},
		{"tx", events.CmdTx, events.TxRequest{Ops: []events.TxOp{
			{Op: "insert", Bucket: "orders", Record: events.Record{"userId": "v", "total": 2.0}},
			{Op: "upsert", Bucket: "loyalty", Key: "v", Increment: map[string]float64{"points": 1}},
		}}, 2},
		{"tx with ops that append nothing", events.CmdTx, events.TxRequest{Ops: []events.TxOp{
			{Op: "delete", Bucket: "orders", Key: 99.0},
			{Op: "update", Bucket: "orders", Key: 3.0, Changes: events.Record{"status": "pending"}},
			{Op: "update", Bucket: "orders", Key: 3.0, Increment: map[string]float64{"total": 5}},
		}}, 1},
		{"tx with no-op ops after an event and on untouched keys", events.CmdTx, events.TxRequest{Ops: []events.TxOp{
			{Op: "update", Bucket: "orders", Key: 1.0, Increment: map[string]float64{"total": 1}},
			{Op: "update", Bucket: "orders", Key: 1.0, Changes: events.Record{"status": "pending"}},
			{Op: "upsert", Bucket: "orders", Key: 3.0, Record: events.Record{"userId": "u"}},
		}}, 1},
		{"failed insert", events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"id": 3.0, "userId": "u", "total": 1.0}}, 0},
	}
}

// seedIdem defines orders and loyalty with orders 1..3.
func seedIdem(t testing.TB, st *storetest.Store) {
	t.Helper()
	define(t, st.Conn, ordersDef(), loyaltyDef())
	for range 3 {
		mustCall(t, st.Conn, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": 1.0}}, nil)
	}
}

// TestIdempotentRetry: the same command id again returns the first reply
// byte for byte and appends nothing.
func TestIdempotentRetry(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	seedIdem(t, st)
	for _, c := range idemCommands() {
		t.Run(c.name, func(t *testing.T) {
			id := events.HeaderCommandID
			seq := lastSeq(t, nc)
			first := rawCall(t, nc, c.cmd, c.req, id, "retry-"+c.name)
			after := lastSeq(t, nc)
			if got := after - seq; got != uint64(c.events) {
				t.Fatalf("first execution appended %d events, want %d: %s", got, c.events, first)
			}
			state := snapshot(t, nc)
			for range 2 {
				if again := rawCall(t, nc, c.cmd, c.req, id, "retry-"+c.name); !bytes.Equal(again, first) {
					t.Fatalf("retry replied\n%s\nfirst reply\n%s", again, first)
				}
			}
			wantNoNewEvents(t, nc, after)
			if snapshot(t, nc) != state {
				t.Fatal("retry changed the state")
			}
			// Another id is another command.
			if c.events > 0 && c.name != "define" {
				seq = lastSeq(t, nc)
				rawCall(t, nc, c.cmd, c.req, id, "other-"+c.name)
				if c.name != "delete" && lastSeq(t, nc) == seq {
					t.Errorf("a new command id was deduplicated")
				}
			}
		})
	}
}

// TestIdempotentConcurrent: duplicates racing each other, from several
// connections, execute once.
func TestIdempotentConcurrent(t *testing.T) {
	st := storetest.StartStore(t)
	define(t, st.Conn, ordersDef(), loyaltyDef())
	seq := lastSeq(t, st.Conn)
	cases := []struct {
		name string
		cmd  string
		req  any
	}{
		{"insert", events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": 1.0}}},
		{"upsert", events.CmdUpsert, events.UpsertRequest{Bucket: "loyalty", Key: "u", Increment: map[string]float64{"points": 1}}},
	}
	const n = 20
	conns := make([]*nats.Conn, 4)
	for i := range conns {
		conns[i] = natstest.Connect(t, st.Server)
	}
	for _, c := range cases {
		replies := make([]events.Record, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				errs[i] = try(conns[i%len(conns)], c.cmd, c.req, &replies[i], events.HeaderCommandID, "same-"+c.name)
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("%s %d: %v", c.name, i, errs[i])
			}
			if fmt.Sprint(replies[i]) != fmt.Sprint(replies[0]) {
				t.Errorf("%s: reply %d %v differs from %v", c.name, i, replies[i], replies[0])
			}
		}
	}
	msgs := streamAfter(t, st.Conn, seq)
	if len(msgs) != 2 {
		t.Fatalf("%d events, want 2 (one per command)", len(msgs))
	}
	if got := getRecord(t, st.Conn, "loyalty", "u")["points"]; got != 1.0 {
		t.Errorf("points = %v, want 1", got)
	}
	var count int
	mustCall(t, st.Conn, events.CmdCount, events.CountRequest{Bucket: "orders"}, &count)
	if count != 1 {
		t.Errorf("%d orders, want 1", count)
	}
}

// TestIdempotentAcrossRestart: a command id sent again to a restarted node
// (whose memory is rebuilt from the stream) gets the first reply and
// changes nothing.
func TestIdempotentAcrossRestart(t *testing.T) {
	st := storetest.StartStore(t)
	seedIdem(t, st)
	var cmds []idemCommand
	first := map[string][]byte{}
	for _, c := range idemCommands() {
		if c.events == 0 {
			continue // failed commands leave no trace to rebuild from
		}
		cmds = append(cmds, c)
		first[c.name] = rawCall(t, st.Conn, c.cmd, c.req, events.HeaderCommandID, "restart-"+c.name)
	}
	state, seq := snapshot(t, st.Conn), lastSeq(t, st.Conn)
	restartNode(t, st)
	if got := snapshot(t, st.Conn); got != state {
		t.Fatalf("restarted state:\n%s\nwant\n%s", got, state)
	}
	for _, c := range cmds {
		t.Run(c.name, func(t *testing.T) {
			if again := rawCall(t, st.Conn, c.cmd, c.req, events.HeaderCommandID, "restart-"+c.name); !bytes.Equal(again, first[c.name]) {
				t.Errorf("after restart replied\n%s\nfirst reply\n%s", again, first[c.name])
			}
		})
	}
	wantNoNewEvents(t, st.Conn, seq)
}
