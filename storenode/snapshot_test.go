package storenode_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/storenode"
)

// snapWorkload writes every kind of write on orders, users, loyalty,
// inventory and reorderRequests: rounds × (inserts, upserts, updates,
// deletes, transactions), each with a command id of prefix and its
// number. It returns the ids with their first replies.
func snapWorkload(t *testing.T, st *storetest.Store, prefix string, rounds int) map[string][]byte {
	t.Helper()
	nc := st.Conn
	replies := map[string][]byte{}
	send := func(cmd string, req any) {
		t.Helper()
		id := fmt.Sprintf("%s-%d", prefix, len(replies))
		r := rawCall(t, nc, cmd, req, events.HeaderCommandID, id)
		if e := decodeReply(t, cmd, r, nil); e != nil {
			t.Fatalf("%s %+v: %v", cmd, req, e)
		}
		replies[id] = r
	}
	for i := range rounds {
		send(events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": fmt.Sprint("u", i%7), "total": float64(i)}})
		send(events.CmdUpsert, events.UpsertRequest{Bucket: "loyalty", Key: fmt.Sprint("u", i%7), Increment: map[string]float64{"points": float64(i + 1)}})
		switch i % 10 {
		case 0:
			send(events.CmdInsert, events.InsertRequest{Bucket: "users", Record: events.Record{"name": fmt.Sprint(prefix, i), "email": fmt.Sprintf("%s%d@example.com", prefix, i)}})
		case 3:
			send(events.CmdUpdate, events.UpdateRequest{Bucket: "orders", Key: getOrderKey(t, st, i), Changes: events.Record{"status": "shipped", "sku": nil}})
		case 5:
			send(events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: getOrderKey(t, st, i-1)})
		case 7:
			sku := fmt.Sprint(prefix, "S", i)
			send(events.CmdInsert, events.InsertRequest{Bucket: "inventory", Record: events.Record{"sku": sku, "quantity": 3.0}})
			send(events.CmdTx, events.TxRequest{Ops: []events.TxOp{
				{Op: "update", Bucket: "inventory", Key: sku, Changes: events.Record{"reorder": true}},
				{Op: "insert", Bucket: "reorderRequests", Record: events.Record{"sku": sku, "quantity": 100.0}},
				{Op: "delete", Bucket: "orders", Key: -1.0}, // appends nothing: the tx's layout header
			}})
		}
	}
	return replies
}

// getOrderKey is the key of the newest order whose total is total.
func getOrderKey(t *testing.T, st *storetest.Store, total int) any {
	t.Helper()
	recs := queryAll(t, st.Conn, "orders", events.Where{"total": float64(total)}, 0)
	if len(recs) == 0 {
		t.Fatalf("no order with total %d", total)
	}
	return recs[len(recs)-1]["id"]
}

func takeSnapshot(t *testing.T, st *storetest.Store) events.SnapshotInfo {
	t.Helper()
	var info events.SnapshotInfo
	mustCall(t, st.Conn, events.CmdSnapshot, struct{}{}, &info)
	if !info.Valid || info.Seq == 0 || info.Seq != lastSeq(t, st.Conn) {
		t.Fatalf("snapshot %+v, want valid at seq %d", info, lastSeq(t, st.Conn))
	}
	return info
}

// wantSameState fails unless the node reads as want does, indexes
// included (queries on indexed fields), and every remembered command id
// answers its first reply without appending.
func wantSameState(t *testing.T, st *storetest.Store, want string, replies map[string][]byte) {
	t.Helper()
	if got := snapshot(t, st.Conn); got != want {
		t.Fatalf("state after restart:\n%s\nwant\n%s", got, want)
	}
	seq := lastSeq(t, st.Conn)
	for id, first := range replies {
		// Any command will do: a remembered id answers its first reply.
		got := rawCall(t, st.Conn, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "retry", "total": 1.0}},
			events.HeaderCommandID, id)
		if !bytes.Equal(got, first) {
			t.Fatalf("retry of %s answered %s, want the first reply %s", id, got, first)
		}
	}
	wantNoNewEvents(t, st.Conn, seq)
}

// indexedReads is what the indexes answer: equality and range queries on
// indexed fields and a unique field's refusal.
func indexedReads(t *testing.T, st *storetest.Store) string {
	t.Helper()
	var out bytes.Buffer
	for _, w := range []events.Where{
		{"userId": "u3"}, {"status": "shipped"}, {"status": map[string]any{"$in": []any{"pending", "shipped"}}, "userId": "u1"},
	} {
		fmt.Fprintln(&out, queryAll(t, st.Conn, "orders", w, 7))
	}
	var n float64
	mustCall(t, st.Conn, events.CmdCount, events.CountRequest{Bucket: "orders", Where: events.Where{"userId": "u2"}}, &n)
	fmt.Fprintln(&out, n)
	return out.String()
}

// TestSnapshotRestart: a node started from a snapshot and the stream
// after it serves exactly the state a full replay serves: records,
// versions, indexes, definitions, autoincrement marks (no id reused) and
// the dedupe table (a command id from before the snapshot answers its
// first reply).
func TestSnapshotRestart(t *testing.T) {
	st := storetest.StartStore(t)
	define(t, st.Conn, ordersDef(), usersDef(), loyaltyDef(), inventoryDef(), reorderRequestsDef())
	before := snapWorkload(t, st, "a", 120)
	// The newest order goes: its id must not come back either.
	mustCall(t, st.Conn, events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: getOrderKey(t, st, 119)}, nil)
	info := takeSnapshot(t, st)
	after := snapWorkload(t, st, "b", 40) // the tail
	want, wantReads := snapshot(t, st.Conn), indexedReads(t, st)

	restartNode(t, st)
	if got := st.Node.SnapshotSeq(); got != info.Seq {
		t.Fatalf("started from snapshot at seq %d, want %d", got, info.Seq)
	}
	wantSameState(t, st, want, before)
	wantSameState(t, st, want, after)
	if got := indexedReads(t, st); got != wantReads {
		t.Fatalf("indexed reads after restart:\n%s\nwant\n%s", got, wantReads)
	}
	var next events.Record
	mustCall(t, st.Conn, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": 1.0}}, &next)
	if next["id"] != 161.0 {
		t.Errorf("next order id %v, want 161 (160 inserted, the highest deleted)", next["id"])
	}
	e := call(t, st.Conn, events.CmdInsert, events.InsertRequest{Bucket: "users", Record: events.Record{"name": "x", "email": "a10@example.com"}}, nil)
	wantCode(t, e, events.CodeUnique)
	changed := ordersDef()
	changed.Indexes = nil
	wantCode(t, call(t, st.Conn, events.CmdDefine, changed, nil), events.CodeBucketExists)

	// The same from a full replay: the snapshots gone.
	want = snapshot(t, st.Conn)
	deleteSnapshots(t, st)
	restartNode(t, st)
	if got := st.Node.SnapshotSeq(); got != 0 {
		t.Fatalf("started from snapshot at seq %d, want a full replay", got)
	}
	if got := snapshot(t, st.Conn); got != want {
		t.Fatalf("full replay:\n%s\nwant (from the snapshot)\n%s", got, want)
	}
}

func snapshotStore(t *testing.T, st *storetest.Store) jetstream.ObjectStore {
	t.Helper()
	js, err := jetstream.New(st.Conn)
	if err != nil {
		t.Fatal(err)
	}
	os, err := js.ObjectStore(context.Background(), events.SnapshotBucket(events.DefaultStream))
	if err != nil {
		t.Fatal(err)
	}
	return os
}

func deleteSnapshots(t *testing.T, st *storetest.Store) {
	t.Helper()
	js, err := jetstream.New(st.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteObjectStore(context.Background(), events.SnapshotBucket(events.DefaultStream)); err != nil {
		t.Fatal(err)
	}
}

// rewrite replaces the snapshot object name with change(its bytes).
func rewrite(t *testing.T, st *storetest.Store, name string, change func([]byte) []byte) {
	t.Helper()
	ctx := context.Background()
	os := snapshotStore(t, st)
	obj, err := os.GetBytes(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.PutBytes(ctx, name, change(obj)); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotCorruptSkipped: a snapshot whose bytes changed (one byte
// flipped), or that is cut short, is never trusted: the next older one is
// used, and with none left the whole stream is replayed; the state is
// exact every time.
func TestSnapshotCorruptSkipped(t *testing.T) {
	st := storetest.StartStore(t)
	define(t, st.Conn, ordersDef(), usersDef(), loyaltyDef(), inventoryDef(), reorderRequestsDef())
	replies := snapWorkload(t, st, "a", 30)
	older := takeSnapshot(t, st)
	for id, r := range snapWorkload(t, st, "b", 30) {
		replies[id] = r
	}
	newer := takeSnapshot(t, st)
	for id, r := range snapWorkload(t, st, "c", 10) {
		replies[id] = r
	}
	want := snapshot(t, st.Conn)

	rewrite(t, st, newer.Name, func(b []byte) []byte { b[len(b)-20] ^= 0x40; return b })
	restartNode(t, st)
	if got := st.Node.SnapshotSeq(); got != older.Seq {
		t.Fatalf("started from seq %d, want the older snapshot's %d", got, older.Seq)
	}
	wantSameState(t, st, want, replies)
	// The flipped byte is in the body: the listing by headers passes it
	// (not verified), the verifying one finds it.
	var list []events.SnapshotInfo
	mustCall(t, st.Conn, events.CmdSnapshots, struct{}{}, &list)
	if len(list) != 2 || !list[0].Valid || list[0].Verified || !list[1].Valid || list[1].Verified {
		t.Fatalf("snapshots by header %+v, want both valid, neither verified", list)
	}
	mustCall(t, st.Conn, events.CmdSnapshots, events.SnapshotsRequest{Verify: true}, &list)
	if len(list) != 2 || list[0].Name != newer.Name || list[0].Valid || list[0].Verified ||
		!strings.Contains(list[0].Problem, "checksum mismatch") || list[1].Name != older.Name || !list[1].Valid || !list[1].Verified {
		t.Fatalf("snapshots verified %+v, want the newer invalid, the older valid", list)
	}

	rewrite(t, st, older.Name, func(b []byte) []byte { return b[:len(b)/2] }) // partial
	restartNode(t, st)
	if got := st.Node.SnapshotSeq(); got != 0 {
		t.Fatalf("started from seq %d, want a full replay", got)
	}
	wantSameState(t, st, want, replies)
	// A partial object is found by its header: the size it states.
	mustCall(t, st.Conn, events.CmdSnapshots, struct{}{}, &list)
	if len(list) != 2 || list[1].Name != older.Name || list[1].Valid || !strings.Contains(list[1].Problem, "(partial)") {
		t.Fatalf("snapshots by header %+v, want the older one partial", list)
	}
}

// TestSnapshotOfAnotherStream: a snapshot of a stream deleted and created
// again under the same name is not this stream's: never used, even when
// the new stream is longer than its sequence.
func TestSnapshotOfAnotherStream(t *testing.T) {
	ctx := context.Background()
	st := storetest.StartStore(t)
	define(t, st.Conn, ordersDef(), usersDef(), loyaltyDef(), inventoryDef(), reorderRequestsDef())
	snapWorkload(t, st, "a", 20)
	old := takeSnapshot(t, st)
	if err := st.Node.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(st.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, events.DefaultStream); err != nil {
		t.Fatal(err)
	}
	st.Node = storetest.StartNode(t, st.Conn, storenode.WithEmbeddedSync(st.Dir))
	define(t, st.Conn, ordersDef(), usersDef(), loyaltyDef(), inventoryDef(), reorderRequestsDef())
	replies := snapWorkload(t, st, "x", 30)
	if last := lastSeq(t, st.Conn); last <= old.Seq {
		t.Fatalf("new stream at seq %d, want past the old snapshot's %d", last, old.Seq)
	}
	want := snapshot(t, st.Conn)
	restartNode(t, st)
	if got := st.Node.SnapshotSeq(); got != 0 {
		t.Fatalf("started from the old stream's snapshot at seq %d", got)
	}
	wantSameState(t, st, want, replies)
}

// TestSnapshotPartialWrite: what a store node killed while uploading a
// snapshot leaves (the object store writes the chunks first and the
// object's description last) is not a snapshot: a start ignores it.
func TestSnapshotPartialWrite(t *testing.T) {
	ctx := context.Background()
	st := storetest.StartStore(t)
	define(t, st.Conn, ordersDef(), usersDef(), loyaltyDef(), inventoryDef(), reorderRequestsDef())
	replies := snapWorkload(t, st, "a", 20)
	good := takeSnapshot(t, st)
	obj, err := snapshotStore(t, st).GetBytes(ctx, good.Name)
	if err != nil {
		t.Fatal(err)
	}
	for id, r := range snapWorkload(t, st, "b", 20) {
		replies[id] = r
	}
	// Chunks of a newer object, without its description.
	js, err := jetstream.New(st.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "$O."+events.SnapshotBucket(events.DefaultStream)+".C.partialchunk", obj[:len(obj)/2]); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, st.Conn)
	restartNode(t, st)
	if got := st.Node.SnapshotSeq(); got != good.Seq {
		t.Fatalf("started from seq %d, want the whole snapshot's %d", got, good.Seq)
	}
	wantSameState(t, st, want, replies)
}

// TestSnapshotDuringWrites: writers keep going while snapshots are taken;
// every write is acknowledged and a restart from the last snapshot
// serves the same state.
func TestSnapshotDuringWrites(t *testing.T) {
	kp, err := nkeys.CreateServer()
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.StartStore(t, storenode.WithProofKey(kp))
	define(t, st.Conn, ordersDef(), loyaltyDef())
	const writers, each = 4, 150
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				var r events.Reply
				body, _ := json.Marshal(events.UpsertRequest{Bucket: "loyalty", Key: fmt.Sprint("w", w), Increment: map[string]float64{"points": 1}})
				data, err := request(st.Conn, events.CmdUpsert, body, events.HeaderCommandID, fmt.Sprintf("w%d-%d", w, i))
				if err == nil {
					err = json.Unmarshal(data, &r)
				}
				if err == nil && r.Error != nil {
					err = r.Error
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var taken []events.SnapshotInfo
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	deadline := time.After(2 * time.Minute)
loop:
	for {
		select {
		case <-done:
			break loop
		case <-deadline:
			t.Fatal("writers did not finish")
		default:
		}
		var info events.SnapshotInfo
		if e := call(t, st.Conn, events.CmdSnapshot, struct{}{}, &info); e != nil {
			t.Fatalf("snapshot during writes: %v", e)
		}
		taken = append(taken, info)
	}
	close(errs)
	for err := range errs {
		t.Fatalf("write during snapshots: %v", err)
	}
	if len(taken) == 0 {
		t.Fatal("no snapshot taken during the writes")
	}
	last := takeSnapshot(t, st)
	want := snapshot(t, st.Conn)
	restartNode(t, st, storenode.WithProofKey(kp))
	if got := st.Node.SnapshotSeq(); got != last.Seq {
		t.Fatalf("started from seq %d, want %d", got, last.Seq)
	}
	if got := snapshot(t, st.Conn); got != want {
		t.Fatalf("state after restart:\n%s\nwant\n%s", got, want)
	}
	for w := range writers {
		if got := getRecord(t, st.Conn, "loyalty", fmt.Sprint("w", w))["points"]; got != float64(each) {
			t.Errorf("writer %d: points %v, want %d", w, got, each)
		}
	}
	var list []events.SnapshotInfo
	mustCall(t, st.Conn, events.CmdSnapshots, struct{}{}, &list)
	if len(list) != storenode.DefaultSnapshotKeep || list[0].Seq != last.Seq {
		t.Fatalf("kept %+v, want the %d newest, newest at seq %d", list, storenode.DefaultSnapshotKeep, last.Seq)
	}
}

// TestSnapshotPeriodic: WithSnapshots takes one every N events by itself.
func TestSnapshotPeriodic(t *testing.T) {
	st := storetest.StartStore(t, storenode.WithSnapshots(50, 0))
	define(t, st.Conn, ordersDef(), usersDef(), loyaltyDef(), inventoryDef(), reorderRequestsDef())
	snapWorkload(t, st, "a", 40)
	deadline := time.Now().Add(30 * time.Second)
	for st.Node.SnapshotSeq() < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("no periodic snapshot after %d events", lastSeq(t, st.Conn))
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}
	var list []events.SnapshotInfo
	mustCall(t, st.Conn, events.CmdSnapshots, struct{}{}, &list)
	if len(list) == 0 || !list[0].Valid || list[0].Seq != st.Node.SnapshotSeq() {
		t.Fatalf("snapshots %+v, want a valid one at seq %d", list, st.Node.SnapshotSeq())
	}
}

// TestSnapshotTailKeepsIntegrity: after a snapshot the tail is judged as
// a full replay judges it: a message without the store's proof in it is
// quarantined, the store's own events after it still chain and fold.
func TestSnapshotTailKeepsIntegrity(t *testing.T) {
	ctx := context.Background()
	st := storetest.StartStore(t)
	define(t, st.Conn, ordersDef(), usersDef(), loyaltyDef(), inventoryDef(), reorderRequestsDef())
	snapWorkload(t, st, "a", 20)
	info := takeSnapshot(t, st)
	js, err := jetstream.New(st.Conn)
	if err != nil {
		t.Fatal(err)
	}
	forged := `{"type":"inserted","bucket":"orders","key":999,"record":{"id":999,"userId":"x","total":1,"_version":1},"meta":{"eventId":"f","time":1,"correlationId":"f","hop":0}}`
	ack, err := js.Publish(ctx, "bucket.orders.inserted", []byte(forged))
	if err != nil {
		t.Fatal(err)
	}
	restartNode(t, st) // quarantines the forged message, from the full replay or the tail alike
	snapWorkload(t, st, "b", 10)
	want := snapshot(t, st.Conn)
	restartNode(t, st)
	if got := st.Node.SnapshotSeq(); got != info.Seq {
		t.Fatalf("started from seq %d, want the snapshot's %d", got, info.Seq)
	}
	if s := st.Node.Status(); s.Quarantined != 1 || s.LastQuarantinedSeq != ack.Sequence {
		t.Fatalf("status %+v, want the message at seq %d quarantined", s, ack.Sequence)
	}
	if got := snapshot(t, st.Conn); got != want {
		t.Fatalf("state after restart:\n%s\nwant\n%s", got, want)
	}
	if r := getRecord(t, st.Conn, "orders", 999.0); r != nil {
		t.Fatalf("forged record folded: %v", r)
	}
}
