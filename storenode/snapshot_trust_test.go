package storenode_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/storenode"
)

// editHeader returns obj with its JSON header line changed by edit.
func editHeader(t *testing.T, obj []byte, edit func(h map[string]any)) []byte {
	t.Helper()
	line, body, _ := bytes.Cut(obj, []byte{'\n'})
	var h map[string]any
	if err := json.Unmarshal(line, &h); err != nil {
		t.Fatal(err)
	}
	edit(h)
	line, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return append(append(line, '\n'), body...)
}

// wantSnapshotProblem fails unless store.snapshots lists name first,
// invalid for a reason containing problem, and the one after it valid.
func wantSnapshotProblem(t *testing.T, st *storetest.Store, name, problem string) {
	t.Helper()
	var list []events.SnapshotInfo
	mustCall(t, st.Conn, events.CmdSnapshots, struct{}{}, &list)
	if len(list) != 2 || list[0].Name != name || list[0].Valid || !strings.Contains(list[0].Problem, problem) || !list[1].Valid {
		t.Fatalf("snapshots %+v, want %s invalid (%q), the older valid", list, name, problem)
	}
}

// TestSnapshotSignature: a snapshot is trusted only if a key the stream
// trusts signed its header. Unsigned, tampered with (a header field
// changed under the signature), signed by a stranger's key, or of the
// unsigned format 1 or the older format 2: each is skipped, the older snapshot used, the state
// exact; put back as it was, the newer one is used again.
func TestSnapshotSignature(t *testing.T) {
	ctx := context.Background()
	st := storetest.StartStore(t)
	define(t, st.Conn, ordersDef(), usersDef(), loyaltyDef(), inventoryDef(), reorderRequestsDef())
	replies := snapWorkload(t, st, "a", 20)
	older := takeSnapshot(t, st)
	maps.Copy(replies, snapWorkload(t, st, "b", 20))
	newer := takeSnapshot(t, st)
	maps.Copy(replies, snapWorkload(t, st, "c", 5))
	want := snapshot(t, st.Conn)
	good, err := snapshotStore(t, st).GetBytes(ctx, newer.Name)
	if err != nil {
		t.Fatal(err)
	}
	stranger := newKey(t)
	cases := []struct {
		name, problem string
		forge         func() []byte
	}{
		{"unsigned", "unsigned: not trusted", func() []byte {
			return editHeader(t, good, func(h map[string]any) { delete(h, "key"); delete(h, "sig") })
		}},
		{"tampered", "signature does not match", func() []byte {
			return editHeader(t, good, func(h map[string]any) { h["records"] = h["records"].(float64) + 1 })
		}},
		{"foreign-signed", "signer key not trusted", func() []byte {
			obj, err := storenode.ResignSnapshot(good, events.DefaultStream, stranger)
			if err != nil {
				t.Fatal(err)
			}
			return obj
		}},
		{"format 1", "format 1, this node reads 3", func() []byte {
			return editHeader(t, good, func(h map[string]any) { h["format"] = 1; delete(h, "key"); delete(h, "sig") })
		}},
		{"format 2", "format 2, this node reads 3", func() []byte { // records in one run, before sections
			return editHeader(t, good, func(h map[string]any) { h["format"] = 2 })
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := snapshotStore(t, st).PutBytes(ctx, newer.Name, tc.forge()); err != nil {
				t.Fatal(err)
			}
			restartNode(t, st)
			if got := st.Node.SnapshotSeq(); got != older.Seq {
				t.Fatalf("started from seq %d, want the older snapshot's %d", got, older.Seq)
			}
			wantSameState(t, st, want, replies)
			wantSnapshotProblem(t, st, newer.Name, tc.problem)
		})
	}
	if _, err := snapshotStore(t, st).PutBytes(ctx, newer.Name, good); err != nil {
		t.Fatal(err)
	}
	restartNode(t, st)
	if got := st.Node.SnapshotSeq(); got != newer.Seq {
		t.Fatalf("started from seq %d, want the newer snapshot's %d once put back", got, newer.Seq)
	}
	wantSameState(t, st, want, replies)
}

// TestSnapshotSignedByRetiredKey: a node started with another proof key
// still uses the snapshot the former key signed (the stream keeps
// trusting it), as it still folds the events that key signed.
func TestSnapshotSignedByRetiredKey(t *testing.T) {
	keys := []nkeys.KeyPair{newKey(t), newKey(t)}
	st := storetest.StartStore(t, storenode.WithProofKey(keys[0]))
	define(t, st.Conn, ordersDef(), usersDef(), loyaltyDef(), inventoryDef(), reorderRequestsDef())
	replies := snapWorkload(t, st, "a", 20)
	info := takeSnapshot(t, st)
	want := snapshot(t, st.Conn)
	restartNode(t, st, storenode.WithProofKey(keys[1]))
	if got := st.Node.SnapshotSeq(); got != info.Seq {
		t.Fatalf("started from seq %d, want the snapshot's %d", got, info.Seq)
	}
	wantSameState(t, st, want, replies)
}

// TestSnapshotMaxBytes: a snapshot past WithSnapshotMaxBytes is skipped
// unread (the older one used), and a node with that cap does not take
// one it could not load: too_large, nothing stored.
func TestSnapshotMaxBytes(t *testing.T) {
	st := storetest.StartStore(t)
	define(t, st.Conn, ordersDef(), usersDef(), loyaltyDef(), inventoryDef(), reorderRequestsDef(), blobsDef())
	replies := snapWorkload(t, st, "a", 20)
	older := takeSnapshot(t, st)
	blob := strings.Repeat("x", 200<<10)
	for range 6 {
		mustCall(t, st.Conn, events.CmdInsert, events.InsertRequest{Bucket: "blobs", Record: events.Record{"data": blob}}, nil)
	}
	newer := takeSnapshot(t, st)
	if newer.Bytes <= 1<<20 {
		t.Fatalf("snapshot of %d bytes, want past 1 MiB", newer.Bytes)
	}
	want := snapshot(t, st.Conn)

	restartNode(t, st, storenode.WithSnapshotMaxBytes(1<<20))
	if got := st.Node.SnapshotSeq(); got != older.Seq {
		t.Fatalf("started from seq %d, want the older snapshot's %d", got, older.Seq)
	}
	wantSameState(t, st, want, replies)
	wantSnapshotProblem(t, st, newer.Name, "past the cap of 1048576")

	mustCall(t, st.Conn, events.CmdInsert, events.InsertRequest{Bucket: "blobs", Record: events.Record{"data": "y"}}, nil)
	wantCode(t, call(t, st.Conn, events.CmdSnapshot, struct{}{}, nil), events.CodeTooLarge)
	wantSnapshotProblem(t, st, newer.Name, "past the cap of 1048576")
}

func blobsDef() events.BucketDef {
	return events.BucketDef{Bucket: "blobs", Key: "id", Schema: map[string]events.FieldDef{
		"id":   {Type: events.TypeNumber, Generated: events.GenAutoincrement},
		"data": {Type: events.TypeString, Required: true},
	}}
}

// TestSnapshotKeyLearnedLater: a snapshot signed by a key the stream came
// to trust after this node read its keys (another store node's, started
// later) is checked against the keys read again: valid. One signed by a
// key the stream never trusted stays invalid.
func TestSnapshotKeyLearnedLater(t *testing.T) {
	ctx := context.Background()
	st := storetest.StartStore(t)
	define(t, st.Conn, ordersDef(), usersDef(), loyaltyDef(), inventoryDef(), reorderRequestsDef())
	snapWorkload(t, st, "a", 5)
	first := takeSnapshot(t, st)
	snapWorkload(t, st, "b", 5)
	info := takeSnapshot(t, st)
	later, stranger := newKey(t), newKey(t)
	js, err := jetstream.New(st.Conn)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	pub, _ := later.PublicKey()
	cfg.Metadata["storeloop.proof.keys"] += "," + pub // as a store node started with it does
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	good, err := snapshotStore(t, st).GetBytes(ctx, info.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key     nkeys.KeyPair
		problem string
	}{{later, ""}, {stranger, "signer key not trusted"}} {
		obj, err := storenode.ResignSnapshot(good, events.DefaultStream, tc.key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := snapshotStore(t, st).PutBytes(ctx, info.Name, obj); err != nil {
			t.Fatal(err)
		}
		var list []events.SnapshotInfo
		mustCall(t, st.Conn, events.CmdSnapshots, struct{}{}, &list)
		if len(list) != 2 || list[0].Name != info.Name || list[1].Name != first.Name ||
			list[0].Valid != (tc.problem == "") || !strings.Contains(list[0].Problem, tc.problem) {
			t.Fatalf("snapshots %+v, want %s valid=%v (%q)", list, info.Name, tc.problem == "", tc.problem)
		}
	}
}

func newKey(t *testing.T) nkeys.KeyPair {
	t.Helper()
	kp, err := nkeys.CreateServer()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}
