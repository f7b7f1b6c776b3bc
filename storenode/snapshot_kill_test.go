package storenode_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/procs"
)

// TestSnapshotKill9DuringUpload: a store node daemon killed with SIGKILL
// while it uploads a snapshot leaves chunks without the object's
// description; the restarted node lists and loads only the whole older
// snapshot and serves the exact state.
func TestSnapshotKill9DuringUpload(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	spec := procs.StorenodeSpec(t, dataDir, "127.0.0.1:0", "--snapshot-every", "0", "--snapshot-interval", "0")
	d := procs.StartStorenode(t, spec)
	nc := connectURL(t, d.URL)
	define(t, nc, events.BucketDef{Bucket: "items", Key: "id", Indexes: []string{"n"}, Schema: map[string]events.FieldDef{
		"id": {Type: events.TypeNumber, Generated: events.GenAutoincrement}, "n": {Type: events.TypeNumber}, "pad": {Type: events.TypeString}}})
	pad := fmt.Sprintf("%0200d", 0) // records of ~300 bytes: a snapshot of many chunks
	write := func(txs int) {
		for range txs {
			ops := make([]events.TxOp, 500)
			for i := range ops {
				ops[i] = events.TxOp{Op: events.CmdInsert, Bucket: "items", Record: events.Record{"n": float64(i), "pad": pad}}
			}
			mustCall(t, nc, events.CmdTx, events.TxRequest{Ops: ops}, nil)
		}
	}
	write(40)
	var whole events.SnapshotInfo
	mustCall(t, nc, events.CmdSnapshot, struct{}{}, &whole)
	write(10)
	want := lastSeq(t, nc)

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	objStream, err := js.Stream(ctx, "OBJ_"+events.SnapshotBucket(events.DefaultStream))
	if err != nil {
		t.Fatal(err)
	}
	msgs := func() uint64 {
		info, err := objStream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	before := msgs() // the whole snapshot's chunks and description
	if err := nc.PublishRequest(events.CommandSubject(events.DefaultCommandPrefix, events.CmdSnapshot), nc.NewRespInbox(), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for msgs() < before+2 { // the new upload's chunks are arriving
		if time.Now().After(deadline) {
			t.Fatal("the snapshot upload did not start")
		}
	}
	d.Kill(t)

	d = procs.StartStorenode(t, spec)
	nc = connectURL(t, d.URL)
	if got := lastSeq(t, nc); got != want {
		t.Fatalf("last seq %d after restart, want %d", got, want)
	}
	var list []events.SnapshotInfo
	mustCall(t, nc, events.CmdSnapshots, struct{}{}, &list)
	if len(list) == 2 && list[0].Seq == want && list[0].Valid {
		t.Skip("the upload finished before the kill: nothing partial to test")
	}
	if len(list) != 1 || list[0].Name != whole.Name || !list[0].Valid {
		t.Fatalf("snapshots after the kill %+v, want only the whole %s", list, whole.Name)
	}
	if js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	if objStream, err = js.Stream(ctx, "OBJ_"+events.SnapshotBucket(events.DefaultStream)); err != nil {
		t.Fatal(err)
	}
	if got := msgs(); got <= before {
		t.Fatalf("%d messages in the object store, %d before: no partial upload survived to test", got, before)
	}
	var count int
	mustCall(t, nc, events.CmdCount, events.CountRequest{Bucket: "items"}, &count)
	if count != 25_000 {
		t.Fatalf("%d items after restart, want 25000", count)
	}
	mustCall(t, nc, events.CmdCount, events.CountRequest{Bucket: "items", Where: events.Where{"n": 7.0}}, &count)
	if count != 50 {
		t.Fatalf("%d items with n=7 (index), want 50", count)
	}
}
