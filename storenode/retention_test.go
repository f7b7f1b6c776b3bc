package storenode_test

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

func cappedDef(maxSize int) events.BucketDef {
	return events.BucketDef{Bucket: "recent", Key: "id", MaxSize: maxSize, Schema: map[string]events.FieldDef{
		"id":   {Type: events.TypeNumber, Generated: events.GenAutoincrement},
		"note": {Type: events.TypeString},
	}}
}

func ttlSessionsDef(ttl string) events.BucketDef {
	d := sessionsDef()
	d.TTL = ttl
	return d
}

// TestRetentionDefinition: ttl must be a Go duration of at least 1ms and
// maxSize positive, else validation and nothing is appended; a valid one
// round-trips through store.buckets and survives a restart.
func TestRetentionDefinition(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	seq := lastSeq(t, nc)
	for _, tc := range []struct {
		name  string
		def   events.BucketDef
		field string
	}{
		{"no unit", ttlSessionsDef("30"), "ttl"},
		{"not a duration", ttlSessionsDef("half an hour"), "ttl"},
		{"negative", ttlSessionsDef("-1s"), "ttl"},
		{"zero", ttlSessionsDef("0s"), "ttl"},
		{"below a millisecond", ttlSessionsDef("10us"), "ttl"},
		{"negative maxSize", cappedDef(-1), "maxSize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := call(t, nc, events.CmdDefine, tc.def, nil)
			wantCode(t, e, events.CodeValidation)
			if len(e.Issues) != 1 || e.Issues[0].Field != tc.field {
				t.Fatalf("issues %+v, want one on %s", e.Issues, tc.field)
			}
		})
	}
	wantNoNewEvents(t, nc, seq)

	define(t, nc, ttlSessionsDef("30m"), cappedDef(10))
	mustCall(t, nc, events.CmdDefine, ttlSessionsDef("30m"), nil) // the same again: fine
	wantCode(t, call(t, nc, events.CmdDefine, ttlSessionsDef("1h"), nil), events.CodeBucketExists)
	want := snapshot(t, nc)
	restartNode(t, st)
	if got := snapshot(t, nc); got != want {
		t.Fatalf("after restart:\n%s\nwant\n%s", got, want)
	}
	var infos []events.BucketInfo
	mustCall(t, nc, events.CmdBuckets, struct{}{}, &infos)
	for _, b := range infos {
		if b.Bucket == "sessions" && b.TTL != "30m" || b.Bucket == "recent" && b.MaxSize != 10 {
			t.Errorf("bucket %s: ttl %q maxSize %d", b.Bucket, b.TTL, b.MaxSize)
		}
	}
}

// TestMaxSizeEvictsOldest: the insert past the cap appends, in its own
// atomic append, a deleted event (meta.reason maxSize) of the oldest
// record; a transaction inserting two evicts two; a failing transaction
// evicts nothing; replay rebuilds the same state and replies.
func TestMaxSizeEvictsOldest(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, cappedDef(3))
	for i := range 3 {
		mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "recent", Record: events.Record{"note": fmt.Sprint(i)}}, nil)
	}
	seq := lastSeq(t, nc)
	var got events.Record
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "recent", Record: events.Record{"note": "3"}}, &got, events.HeaderCommandID, "insert-4")
	if got["id"] != 4.0 {
		t.Fatalf("insert returned %v", got)
	}
	msgs := streamAfter(t, nc, seq)
	if len(msgs) != 2 || msgs[0].Subject != "bucket.recent.inserted" || msgs[1].Subject != "bucket.recent.deleted" ||
		msgs[1].Event.Key != 1.0 || msgs[1].Event.Meta.Reason != events.ReasonMaxSize || msgs[0].Event.Meta.Reason != "" {
		t.Fatalf("stream after the 4th insert: %+v", msgs)
	}
	if msgs[1].Event.Meta.CommandID != "insert-4" {
		t.Errorf("eviction's command id %q, want the insert's", msgs[1].Event.Meta.CommandID)
	}
	keys := func() []any {
		var ks []any
		for _, r := range queryAll(t, nc, "recent", nil, 0) {
			ks = append(ks, r["id"])
		}
		return ks
	}
	if k := keys(); !slices.Equal(k, []any{2.0, 3.0, 4.0}) {
		t.Fatalf("keys %v, want 2 3 4", k)
	}

	// An update does not make a record younger: eviction is by _createdAt.
	mustCall(t, nc, events.CmdUpdate, events.UpdateRequest{Bucket: "recent", Key: 2.0, Changes: events.Record{"note": "touched"}}, nil)
	mustCall(t, nc, events.CmdTx, events.TxRequest{Ops: []events.TxOp{
		{Op: "insert", Bucket: "recent", Record: events.Record{"note": "5"}},
		{Op: "insert", Bucket: "recent", Record: events.Record{"note": "6"}},
	}}, nil, events.HeaderCommandID, "tx-56")
	if k := keys(); !slices.Equal(k, []any{4.0, 5.0, 6.0}) {
		t.Fatalf("keys %v, want 4 5 6", k)
	}
	seq = lastSeq(t, nc)
	e := call(t, nc, events.CmdTx, events.TxRequest{Ops: []events.TxOp{
		{Op: "insert", Bucket: "recent", Record: events.Record{"note": "7"}},
		{Op: "update", Bucket: "recent", Key: 99.0, Changes: events.Record{"note": "x"}},
	}}, nil)
	wantCode(t, e, events.CodeNotFound)
	wantNoNewEvents(t, nc, seq)
	if k := keys(); !slices.Equal(k, []any{4.0, 5.0, 6.0}) {
		t.Fatalf("after a failed tx: keys %v, want 4 5 6", k)
	}

	want := snapshot(t, nc)
	restartNode(t, st)
	if got := snapshot(t, nc); got != want {
		t.Fatalf("after restart:\n%s\nwant\n%s", got, want)
	}
	// Replayed replies: the insert's is its record, the tx's its two records.
	var again events.Record
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "recent", Record: events.Record{"note": "3"}}, &again, events.HeaderCommandID, "insert-4")
	if again["id"] != 4.0 || again["note"] != "3" {
		t.Errorf("replayed insert reply %v", again)
	}
	var tx events.TxResult
	mustCall(t, nc, events.CmdTx, events.TxRequest{Ops: []events.TxOp{{Op: "insert", Bucket: "recent", Record: events.Record{"note": "5"}}}}, &tx, events.HeaderCommandID, "tx-56")
	if len(tx.Results) != 2 {
		t.Errorf("replayed tx reply %+v, want the two inserts' records", tx.Results)
	}
}

// TestTTLExpires: records expire after ttl from their last write, each with
// a deleted event (meta.reason ttl, never early), in expiry order; an
// update pushes the expiry back.
func TestTTLExpires(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	const ttl = time.Second
	define(t, nc, ttlSessionsDef(ttl.String()), ordersDef())
	seq := lastSeq(t, nc)
	for i := range 20 {
		mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "sessions", Record: events.Record{"userId": fmt.Sprint("u", i), "token": "t"}}, nil)
	}
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u1", "total": 1.0}}, nil)
	// u0 is written again: it expires a ttl after this write, last.
	var u0 events.Record
	mustCall(t, nc, events.CmdUpdate, events.UpdateRequest{Bucket: "sessions", Key: "u0", Changes: events.Record{"token": "t2"}}, &u0)

	eventually(t, 30*time.Second, "sessions to expire", func() bool { return count(t, nc, "sessions") == 0 })
	var deleted []streamMsg
	for _, m := range streamAfter(t, nc, seq) {
		if m.Subject == "bucket.sessions.deleted" {
			deleted = append(deleted, m)
		}
	}
	if len(deleted) != 20 {
		t.Fatalf("%d deleted events, want 20", len(deleted))
	}
	for i, m := range deleted {
		ev := m.Event
		due := int64(ev.Record[events.FieldUpdatedAt].(float64)) + ttl.Milliseconds()
		if ev.Meta.Reason != events.ReasonTTL || ev.Meta.Time < due || ev.Meta.Hop != 0 || ev.Meta.CommandID != "" {
			t.Errorf("deleted %v: meta %+v, due at %d", ev.Key, ev.Meta, due)
		}
		if i > 0 {
			prev := deleted[i-1].Event.Record[events.FieldUpdatedAt].(float64)
			if ev.Record[events.FieldUpdatedAt].(float64) < prev {
				t.Errorf("expired out of order at %v", ev.Key)
			}
		}
	}
	if last := deleted[19].Event; last.Key != "u0" || last.Record["token"] != "t2" || last.Record[events.FieldVersion] != u0[events.FieldVersion] {
		t.Errorf("last expired %v %v, want u0 as updated", last.Key, last.Record)
	}
	if count(t, nc, "orders") != 1 {
		t.Error("a bucket without ttl lost records")
	}
}

// TestTTLExpiredWhileDown: records whose ttl passed while the node was
// stopped are expired, in order, before the restarted node answers its
// first command.
func TestTTLExpiredWhileDown(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ttlSessionsDef("1s"))
	// Keys padded so that key order (the tie-break of inserts in one
	// millisecond) is insertion order.
	for i := range 50 {
		mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "sessions", Record: events.Record{"userId": fmt.Sprintf("u%02d", i), "token": "t"}}, nil)
	}
	last := getRecord(t, nc, "sessions", "u49")
	seq := lastSeq(t, nc)
	if err := st.Node.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Wait out the ttl on the clock: the thing under test is the clock.
	time.Sleep(time.Until(time.UnixMilli(int64(last[events.FieldUpdatedAt].(float64))).Add(1100 * time.Millisecond)))
	restartNode(t, st)
	if n := count(t, nc, "sessions"); n != 0 {
		t.Fatalf("first command after restart sees %d sessions, want 0", n)
	}
	msgs := streamAfter(t, nc, seq)
	if len(msgs) != 50 {
		t.Fatalf("%d events after restart, want 50", len(msgs))
	}
	for i, m := range msgs {
		if m.Subject != "bucket.sessions.deleted" || m.Event.Key != fmt.Sprintf("u%02d", i) || m.Event.Meta.Reason != events.ReasonTTL {
			t.Fatalf("event %d: %s %v %+v", i, m.Subject, m.Event.Key, m.Event.Meta)
		}
	}
}

// count is store.count of every record of bucket.
func count(t testing.TB, nc *nats.Conn, bucket string) int {
	t.Helper()
	var n int
	mustCall(t, nc, events.CmdCount, events.CountRequest{Bucket: bucket}, &n)
	return n
}

// TestRetentionKill9: the storenode daemon, SIGKILLed with sessions live,
// restarted after their ttl: its first command finds them expired (in
// order, one ttl event each), and the capped bucket and the view are as
// they were acknowledged.
func TestRetentionKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the storenode daemon")
	}
	dataDir := t.TempDir()
	d := startDaemon(t, dataDir)
	nc := connectURL(t, d.URL)
	define(t, nc, ttlSessionsDef("2s"), cappedDef(5), ordersDef(), statsView())
	for i := range 20 {
		mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "sessions", Record: events.Record{"userId": fmt.Sprintf("u%02d", i), "token": "t"}}, nil)
		mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "recent", Record: events.Record{"note": fmt.Sprint(i)}}, nil)
		insertOrder(t, nc, fmt.Sprint("u", i%3), float64(i))
	}
	mustCall(t, nc, events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: 20.0}, nil) // u1's max
	wantRecent := queryAll(t, nc, "recent", nil, 0)
	wantStats := queryAll(t, nc, "userStats", nil, 0)
	last := getRecord(t, nc, "sessions", "u19")
	seq := lastSeq(t, nc)
	d.Kill(t)

	// Wait out the ttl on the clock: the thing under test is the clock.
	time.Sleep(time.Until(time.UnixMilli(int64(last[events.FieldUpdatedAt].(float64))).Add(2100 * time.Millisecond)))
	d = startDaemon(t, dataDir)
	nc = connectURL(t, d.URL)
	if n := count(t, nc, "sessions"); n != 0 {
		t.Fatalf("first command after the restart sees %d sessions, want 0", n)
	}
	msgs := streamAfter(t, nc, seq)
	if len(msgs) != 20 {
		t.Fatalf("%d events after the restart, want 20 expiries", len(msgs))
	}
	for i, m := range msgs {
		if m.Subject != "bucket.sessions.deleted" || m.Event.Key != fmt.Sprintf("u%02d", i) || m.Event.Meta.Reason != events.ReasonTTL {
			t.Fatalf("event %d: %s %v %+v", i, m.Subject, m.Event.Key, m.Event.Meta)
		}
	}
	if got := queryAll(t, nc, "recent", nil, 0); !reflect.DeepEqual(got, wantRecent) || len(got) != 5 {
		t.Errorf("capped bucket after restart %v, want %v", got, wantRecent)
	}
	if got := queryAll(t, nc, "userStats", nil, 0); !reflect.DeepEqual(got, wantStats) {
		t.Errorf("view after restart %v, want %v", got, wantStats)
	}
	checkStats(t, nc)
}
