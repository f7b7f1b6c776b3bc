package storenode_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/natstest"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/storenode"
)

// batchCall sends a store.batch and returns its per-command replies, or the
// error of the whole batch.
func batchCall(t testing.TB, nc *nats.Conn, cmds []events.BatchCommand, hdr ...string) ([]events.Reply, *events.Error) {
	t.Helper()
	var res events.BatchResult
	if e := call(t, nc, events.CmdBatch, events.BatchRequest{Commands: cmds}, &res, hdr...); e != nil {
		return nil, e
	}
	if len(res.Results) != len(cmds) {
		t.Fatalf("batch of %d commands answered with %d results", len(cmds), len(res.Results))
	}
	return res.Results, nil
}

// wantResult fails unless r is a result and decodes it into out.
func wantResult(t testing.TB, i int, r events.Reply, out any) {
	t.Helper()
	if r.Error != nil {
		t.Fatalf("command %d: %v, want a result", i, r.Error)
	}
	if err := json.Unmarshal(r.Result, out); err != nil {
		t.Fatalf("command %d: result %s: %v", i, r.Result, err)
	}
}

func wantReplyCode(t testing.TB, i int, r events.Reply, code events.Code) {
	t.Helper()
	if r.Error == nil {
		t.Fatalf("command %d: result %s, want error %s", i, r.Result, code)
	}
	if r.Error.Code != code {
		t.Fatalf("command %d: %v, want code %s", i, r.Error, code)
	}
}

// TestBatchMixed: each command of a batch gets its own result or error, in
// order; the failed ones change nothing, the others apply in order (a
// later command sees an earlier one), each event carries its own command
// id and causal context.
func TestBatchMixed(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef(), loyaltyDef())
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": 10.0}}, nil)
	seq := lastSeq(t, nc)

	cmds := []events.BatchCommand{
		{Cmd: "insert", CommandID: "c0", Bucket: "orders", Record: events.Record{"userId": "v", "total": 5.0}},
		{Cmd: "insert", CommandID: "c1", Bucket: "orders", Record: events.Record{"total": 5.0}}, // userId is required
		{Cmd: "update", CommandID: "c2", Bucket: "orders", Key: 1.0, Increment: map[string]float64{"total": 1}, Rule: "r2", Hop: ptr(3)},
		{Cmd: "update", CommandID: "c3", Bucket: "orders", Key: 99.0, Changes: events.Record{"status": "paid"}},
		{Cmd: "delete", CommandID: "c4", Bucket: "orders", Key: 1.0, ExpectVersion: ptr(int64(1))}, // c2 made it version 2
		{Cmd: "upsert", CommandID: "c5", Bucket: "nope", Key: "x", Record: events.Record{"a": 1.0}},
		{Cmd: "get", CommandID: "c6", Bucket: "orders", Key: 1.0},
		{Cmd: "insert", CommandID: "c7", Bucket: "orders", Record: events.Record{"userId": "w", "total": 1.0}, Changes: events.Record{"x": 1.0}},
		{Cmd: "tx", CommandID: "c8", Ops: []events.TxOp{
			{Op: "upsert", Bucket: "loyalty", Key: "u", Increment: map[string]float64{"points": 7}},
			{Op: "update", Bucket: "orders", Key: 1.0, Changes: events.Record{"status": "paid"}},
		}},
		{Cmd: "tx", CommandID: "c9", Ops: []events.TxOp{
			{Op: "upsert", Bucket: "loyalty", Key: "z", Increment: map[string]float64{"points": 1}},
			{Op: "update", Bucket: "orders", Key: 1.0, ExpectVersion: ptr(int64(1))},
		}},
		{Cmd: "delete", Bucket: "orders", Key: 42.0},
	}
	results, e := batchCall(t, nc, cmds, events.HeaderCorrelationID, "corr-batch", events.HeaderRule, "batch-rule")
	if e != nil {
		t.Fatal(e)
	}
	var rec events.Record
	wantResult(t, 0, results[0], &rec)
	if rec["id"] != 2.0 || rec["userId"] != "v" || rec["_version"] != 1.0 {
		t.Fatalf("command 0 result %v", rec)
	}
	wantReplyCode(t, 1, results[1], events.CodeValidation)
	if is := results[1].Error.Issues; len(is) != 1 || is[0].Field != "userId" {
		t.Fatalf("command 1 issues %+v", is)
	}
	wantResult(t, 2, results[2], &rec)
	if rec["total"] != 11.0 || rec["_version"] != 2.0 {
		t.Fatalf("command 2 result %v", rec)
	}
	wantReplyCode(t, 3, results[3], events.CodeNotFound)
	wantReplyCode(t, 4, results[4], events.CodeConflict)
	wantReplyCode(t, 5, results[5], events.CodeBucketNotFound)
	wantReplyCode(t, 6, results[6], events.CodeBadRequest)
	wantReplyCode(t, 7, results[7], events.CodeBadRequest)
	var tx events.TxResult
	wantResult(t, 8, results[8], &tx)
	if len(tx.Results) != 2 || tx.Results[1].(map[string]any)["status"] != "paid" {
		t.Fatalf("command 8 result %+v", tx)
	}
	wantReplyCode(t, 9, results[9], events.CodeConflict)
	var del events.DeleteResult
	wantResult(t, 10, results[10], &del)
	if del.Deleted {
		t.Fatal("command 10 deleted a missing key")
	}

	// The stream holds exactly the events of c0, c2 and c8, in order.
	msgs := streamAfter(t, nc, seq)
	want := []struct {
		subject, cmdID, rule string
		hop                  int
	}{
		{"bucket.orders.inserted", "c0", "batch-rule", 0},
		{"bucket.orders.updated", "c2", "r2", 3},
		{"bucket.loyalty.inserted", "c8", "batch-rule", 0},
		{"bucket.orders.updated", "c8", "batch-rule", 0},
	}
	if len(msgs) != len(want) {
		t.Fatalf("%d events appended, want %d", len(msgs), len(want))
	}
	for i, w := range want {
		m := msgs[i].Event.Meta
		if msgs[i].Subject != w.subject || m.CommandID != w.cmdID || m.RuleID != w.rule || m.Hop != w.hop || m.CorrelationID != "corr-batch" {
			t.Fatalf("event %d: %s %+v, want %+v", i, msgs[i].Subject, m, w)
		}
	}
	orders := queryAll(t, nc, "orders", nil, 0)
	if len(orders) != 2 || orders[0]["total"] != 11.0 || orders[0]["status"] != "paid" || orders[0]["_version"] != 3.0 || orders[1]["userId"] != "v" {
		t.Fatalf("orders after the batch: %v", orders)
	}
	loyalty := queryAll(t, nc, "loyalty", nil, 0)
	if len(loyalty) != 1 || loyalty[0]["userId"] != "u" || loyalty[0]["points"] != 7.0 {
		t.Fatalf("loyalty after the batch: %v", loyalty)
	}
}

// TestBatchDedupe: a command id answers with its first reply and changes
// nothing, whether it comes again in the same batch, a later batch, as a
// standalone command (either way round) or after a restart.
func TestBatchDedupe(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef(), loyaltyDef())
	standalone := rawCall(t, nc, events.CmdUpsert, events.UpsertRequest{Bucket: "loyalty", Key: "s", Increment: map[string]float64{"points": 1}}, events.HeaderCommandID, "solo")
	seq := lastSeq(t, nc)

	points := func(key string, id string) events.BatchCommand {
		return events.BatchCommand{Cmd: "upsert", CommandID: id, Bucket: "loyalty", Key: key, Increment: map[string]float64{"points": 1}}
	}
	cmds := []events.BatchCommand{
		points("a", "p1"),
		points("a", "p2"),
		points("a", "p1"),   // the same id again in the batch: p1's reply
		points("s", "solo"), // a standalone command's id: its reply
		{Cmd: "insert", CommandID: "o1", Bucket: "orders", Record: events.Record{"userId": "u", "total": 1.0}},
	}
	first := rawCall(t, nc, events.CmdBatch, events.BatchRequest{Commands: cmds})
	var res events.BatchResult
	if e := decodeReply(t, events.CmdBatch, first, &res); e != nil {
		t.Fatal(e)
	}
	if !bytes.Equal(res.Results[2].Result, res.Results[0].Result) {
		t.Fatalf("duplicate in the batch answered %s, first %s", res.Results[2].Result, res.Results[0].Result)
	}
	var rec events.Record
	wantResult(t, 1, res.Results[1], &rec)
	if rec["points"] != 2.0 {
		t.Fatalf("p2 result %v, want 2 points", rec)
	}
	var solo events.Reply
	if err := json.Unmarshal(standalone, &solo); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.Results[3].Result, solo.Result) {
		t.Fatalf("standalone id in the batch answered %s, standalone %s", res.Results[3].Result, solo.Result)
	}
	if got := len(streamAfter(t, nc, seq)); got != 3 {
		t.Fatalf("batch appended %d events, want 3 (p1, p2, o1)", got)
	}
	state, seq := snapshot(t, nc), lastSeq(t, nc)

	// The whole batch again, and a command of it alone.
	if again := rawCall(t, nc, events.CmdBatch, events.BatchRequest{Commands: cmds}); !bytes.Equal(again, first) {
		t.Fatalf("batch again replied\n%s\nfirst\n%s", again, first)
	}
	var alone events.Reply
	if err := json.Unmarshal(rawCall(t, nc, events.CmdUpsert, events.UpsertRequest{Bucket: "loyalty", Key: "a", Increment: map[string]float64{"points": 1}},
		events.HeaderCommandID, "p2"), &alone); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(alone.Result, res.Results[1].Result) {
		t.Fatalf("p2 alone answered %s, in the batch %s", alone.Result, res.Results[1].Result)
	}
	wantNoNewEvents(t, nc, seq)

	restartNode(t, st)
	if got := snapshot(t, nc); got != state {
		t.Fatalf("restarted state:\n%s\nwant\n%s", got, state)
	}
	var after events.BatchResult
	if e := decodeReply(t, events.CmdBatch, rawCall(t, nc, events.CmdBatch, events.BatchRequest{Commands: cmds}), &after); e != nil {
		t.Fatal(e)
	}
	for i := range cmds {
		var a, b any
		_ = json.Unmarshal(after.Results[i].Result, &a)
		_ = json.Unmarshal(res.Results[i].Result, &b)
		if after.Results[i].Error != nil || fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("command %d after restart: %s %v, first %s", i, after.Results[i].Result, after.Results[i].Error, res.Results[i].Result)
		}
	}
	wantNoNewEvents(t, nc, seq)
}

// TestBatchReplyTooLarge: a batch whose reply could not be delivered is
// refused whole, too_large, before anything applies; its ids are not
// remembered, so a smaller batch with them applies.
func TestBatchReplyTooLarge(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, bigDef())
	insertBig(t, nc, 1, 100<<10)
	seq := lastSeq(t, nc)
	bump := func(n int) []events.BatchCommand {
		var cmds []events.BatchCommand
		for i := range n {
			cmds = append(cmds, events.BatchCommand{Cmd: "update", CommandID: fmt.Sprint("bump-", i), Bucket: "big", Key: 1.0, Increment: map[string]float64{"n": 1}})
		}
		return cmds
	}
	for range 2 {
		_, e := batchCall(t, nc, bump(20))
		wantCode(t, e, events.CodeTooLarge)
		if !strings.Contains(e.Message, "nothing was applied") {
			t.Fatalf("message %q does not say nothing was applied", e.Message)
		}
	}
	wantNoNewEvents(t, nc, seq)
	if r := getRecord(t, nc, "big", 1.0); r["_version"] != 1.0 || r["n"] != 0.0 {
		t.Fatalf("record after the refused batch: version %v n %v, want 1 and 0", r["_version"], r["n"])
	}
	results, e := batchCall(t, nc, bump(3))
	if e != nil {
		t.Fatal(e)
	}
	for i, r := range results {
		var rec events.Record
		wantResult(t, i, r, &rec)
		if rec["n"] != float64(i+1) {
			t.Fatalf("command %d: n %v, want %d", i, rec["n"], i+1)
		}
	}
	wantHealthy(t, st)
}

// TestBatchRefusedWhole: what is wrong with the batch itself refuses all of
// it; what is wrong with one command fails that command alone.
func TestBatchRefusedWhole(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef())
	seq := lastSeq(t, nc)
	ins := events.BatchCommand{Cmd: "insert", Bucket: "orders", Record: events.Record{"userId": "u", "total": 1.0}}
	over := make([]events.BatchCommand, events.MaxBatchCommands+1)
	for i := range over {
		over[i] = ins
	}
	for _, c := range []struct {
		name string
		body any
		hdr  []string
		code events.Code
	}{
		{"no commands", events.BatchRequest{}, nil, events.CodeBadRequest},
		{"over the cap", events.BatchRequest{Commands: over}, nil, events.CodeTooLarge},
		{"a batch command id", events.BatchRequest{Commands: []events.BatchCommand{ins}}, []string{events.HeaderCommandID, "b"}, events.CodeBadRequest},
		{"an unknown field", []byte(`{"commands":[{"cmd":"insert","bucket":"orders","record":{"userId":"u","total":1},"colour":1}]}`), nil, events.CodeBadRequest},
		{"malformed", []byte(`{"commands":[`), nil, events.CodeBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantCode(t, call(t, nc, events.CmdBatch, c.body, nil, c.hdr...), c.code)
		})
	}
	wantNoNewEvents(t, nc, seq)

	long := ins
	long.CommandID = strings.Repeat("i", events.MaxCommandIDBytes+1)
	negative := ins
	negative.Hop = ptr(-1)
	results, e := batchCall(t, nc, []events.BatchCommand{long, negative, ins})
	if e != nil {
		t.Fatal(e)
	}
	wantReplyCode(t, 0, results[0], events.CodeTooLarge)
	wantReplyCode(t, 1, results[1], events.CodeBadRequest)
	var rec events.Record
	wantResult(t, 2, results[2], &rec)
	if got := len(streamAfter(t, nc, seq)); got != 1 {
		t.Fatalf("%d events, want 1", got)
	}
}

// TestBatchOutcomesAfterAFailedAppend: a foreign append makes the batch's
// append fail; after the rebuild every command is answered by what the
// stream holds (here: none of it, unavailable), and the same batch again
// applies each command once.
func TestBatchOutcomesAfterAFailedAppend(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef(), loyaltyDef())
	js, err := jetstream.New(natstest.Connect(t, st.Server))
	if err != nil {
		t.Fatal(err)
	}
	foreign := nats.NewMsg("bucket.orders.inserted")
	foreign.Data = []byte("foreign")
	intruderPublish(t, js, foreign)

	cmds := []events.BatchCommand{
		{Cmd: "insert", CommandID: "f0", Bucket: "orders", Record: events.Record{"userId": "u", "total": 1.0}},
		{Cmd: "upsert", CommandID: "f1", Bucket: "loyalty", Key: "u", Increment: map[string]float64{"points": 1}},
		{Cmd: "tx", CommandID: "f2", Ops: []events.TxOp{{Op: "insert", Bucket: "orders", Record: events.Record{"userId": "v", "total": 2.0}}}},
	}
	results, e := batchCall(t, nc, cmds)
	if e != nil {
		t.Fatal(e)
	}
	for i, r := range results {
		wantReplyCode(t, i, r, events.CodeUnavailable)
	}
	if n := len(queryAll(t, nc, "orders", nil, 0)) + len(queryAll(t, nc, "loyalty", nil, 0)); n != 0 {
		t.Fatalf("%d records after a batch answered unavailable", n)
	}
	for range 2 {
		results, e = batchCall(t, nc, cmds)
		if e != nil {
			t.Fatal(e)
		}
		for i, r := range results {
			if r.Error != nil {
				t.Fatalf("command %d after the rebuild: %v", i, r.Error)
			}
		}
	}
	orders, loyalty := queryAll(t, nc, "orders", nil, 0), queryAll(t, nc, "loyalty", nil, 0)
	if len(orders) != 2 || orders[0]["userId"] != "u" || orders[1]["userId"] != "v" || len(loyalty) != 1 || loyalty[0]["points"] != 1.0 {
		t.Fatalf("after the retries: orders %v, loyalty %v", orders, loyalty)
	}
	// The foreign message, and f1 and f2: each expected the sequence
	// before it and so landed after the foreign one, orphaned by f0's
	// refusal (stored, never accepted as state).
	if s := st.Node.Status(); !s.Healthy || s.Quarantined != 3 {
		t.Fatalf("status %+v, want healthy with 3 quarantined", s)
	}
}

// TestKill9Batch: the daemon is SIGKILLed while writers send batches of
// inserts; after the restart every acknowledged command is stored once with
// the result it was acknowledged with, and sending every batch again, by
// the same command ids, applies each command exactly once.
func TestKill9Batch(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the storenode daemon")
	}
	const writers, perBatch, killAfter = 4, 16, 400
	load := insertLoad()
	dataDir := t.TempDir()
	d := startDaemon(t, dataDir)
	define(t, connectURL(t, d.URL), load.defs...)

	var (
		mu      sync.Mutex
		acked   = map[string]any{} // command id → its result
		sent    = map[string]killWork{}
		batches [][]events.BatchCommand
		count   atomic.Int64
		enough  = make(chan struct{})
		wg      sync.WaitGroup
	)
	send := func(nc *nats.Conn, cmds []events.BatchCommand) ([]events.Reply, error) {
		data, err := json.Marshal(events.BatchRequest{Commands: cmds})
		if err != nil {
			return nil, err
		}
		raw, err := request(nc, events.CmdBatch, data)
		if err != nil {
			return nil, err
		}
		var reply struct {
			Result events.BatchResult `json:"result"`
			Error  *events.Error      `json:"error"`
		}
		if err := json.Unmarshal(raw, &reply); err != nil {
			return nil, err
		}
		if reply.Error != nil {
			return nil, reply.Error
		}
		return reply.Result.Results, nil
	}
	for w := range writers {
		wnc := connectURL(t, d.URL)
		wg.Go(func() {
			for b := 0; ; b++ {
				cmds := make([]events.BatchCommand, perBatch)
				mu.Lock()
				for i := range cmds {
					work := load.work(w, b*perBatch+i)
					req := work.req.(events.InsertRequest)
					cmds[i] = events.BatchCommand{Cmd: work.cmd, CommandID: work.id, Bucket: req.Bucket, Record: req.Record}
					sent[work.id] = work
				}
				batches = append(batches, cmds)
				mu.Unlock()
				results, err := send(wnc, cmds)
				if err != nil {
					return // the daemon is gone: this batch stays unacknowledged
				}
				mu.Lock()
				for i, r := range results {
					if r.Error != nil {
						t.Errorf("%s: %v", cmds[i].CommandID, r.Error)
						continue
					}
					var result any
					_ = json.Unmarshal(r.Result, &result)
					acked[cmds[i].CommandID] = result
				}
				mu.Unlock()
				if n := count.Add(perBatch); n >= killAfter && n-perBatch < killAfter { // crossed by this batch alone
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
	t.Logf("%d commands acknowledged, %d sent in %d batches before the kill", len(acked), len(sent), len(batches))

	d = startDaemon(t, dataDir)
	nc := connectURL(t, d.URL)
	load.check(t, nc, acked, sent)
	for _, cmds := range batches {
		results, err := send(nc, cmds)
		if err != nil {
			t.Fatalf("batch again after the restart: %v", err)
		}
		for i, r := range results {
			id := cmds[i].CommandID
			var result any
			if r.Error != nil || json.Unmarshal(r.Result, &result) != nil {
				t.Fatalf("%s again after the restart: %v", id, r.Error)
			}
			if first, ok := acked[id]; ok && !reflect.DeepEqual(result, first) {
				t.Fatalf("%s again after the restart = %v, first %v", id, result, first)
			}
			acked[id] = result
		}
	}
	load.check(t, nc, acked, sent)
}

// TestBatchesConcurrently: many full batches at once, with groups capped
// below a batch's size (a batch is never split), beside single inserts:
// every command applied once, each result its own record.
func TestBatchesConcurrently(t *testing.T) {
	st := storetest.StartStore(t, storenode.WithMaxBatch(64))
	nc := st.Conn
	define(t, nc, ordersDef())
	const batches, singles = 16, 64
	var wg sync.WaitGroup
	errs := make(chan error, batches+singles)
	skus := make(chan string, batches*events.MaxBatchCommands+singles)
	for b := range batches {
		wg.Go(func() {
			cmds := make([]events.BatchCommand, events.MaxBatchCommands)
			for i := range cmds {
				cmds[i] = events.BatchCommand{Cmd: "insert", CommandID: fmt.Sprint("b", b, "-", i), Bucket: "orders",
					Record: events.Record{"userId": "u", "sku": fmt.Sprint("b", b, "-", i), "total": 1.0}}
			}
			var res events.BatchResult
			if err := try(nc, events.CmdBatch, events.BatchRequest{Commands: cmds}, &res); err != nil {
				errs <- err
				return
			}
			for i, r := range res.Results {
				var rec events.Record
				if r.Error != nil || json.Unmarshal(r.Result, &rec) != nil || rec["sku"] != cmds[i].Record["sku"] {
					errs <- fmt.Errorf("%s: %s %v", cmds[i].CommandID, r.Result, r.Error)
					return
				}
				skus <- rec["sku"].(string)
			}
		})
	}
	for s := range singles {
		wg.Go(func() {
			var rec events.Record
			sku := fmt.Sprint("s", s)
			if err := try(nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "sku": sku, "total": 1.0}}, &rec); err != nil {
				errs <- err
				return
			}
			skus <- rec["sku"].(string)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := batches*events.MaxBatchCommands + singles
	if len(skus) != want {
		t.Fatalf("%d commands succeeded, want %d", len(skus), want)
	}
	stored := map[string]bool{}
	for _, o := range queryAll(t, nc, "orders", nil, 0) {
		if stored[o["sku"].(string)] {
			t.Fatalf("%s stored twice", o["sku"])
		}
		stored[o["sku"].(string)] = true
	}
	if len(stored) != want {
		t.Fatalf("%d orders stored, want %d", len(stored), want)
	}
	// A flight's count drops just after its replies are sent.
	eventually(t, 10*time.Second, "nothing in flight", func() bool { return st.Node.Status().InFlight == 0 })
	if s := st.Node.Status(); !s.Healthy {
		t.Fatalf("status %+v, want healthy", s)
	}
}

// TestBatchCommandTraceContext: a command with its own traceparent appends
// events that continue that trace; the others continue the batch's.
func TestBatchCommandTraceContext(t *testing.T) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef())
	seq := lastSeq(t, nc)
	const (
		own   = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		batch = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	)
	cmds := []events.BatchCommand{
		{Cmd: "insert", Bucket: "orders", Record: events.Record{"userId": "a", "total": 1.0}, TraceParent: own},
		{Cmd: "insert", Bucket: "orders", Record: events.Record{"userId": "b", "total": 1.0}},
	}
	if _, e := batchCall(t, nc, cmds, events.HeaderTraceParent, batch); e != nil {
		t.Fatal(e)
	}
	msgs := streamAfter(t, nc, seq)
	if len(msgs) != 2 {
		t.Fatalf("%d events, want 2", len(msgs))
	}
	traceID := func(tp string) string { return strings.Split(tp, "-")[1] }
	for i, want := range []string{own, batch} {
		if got := msgs[i].Header.Get(events.HeaderTraceParent); got == "" || traceID(got) != traceID(want) {
			t.Fatalf("event %d traceparent %q, want trace %s", i, got, traceID(want))
		}
	}
}
