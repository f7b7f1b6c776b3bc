package storenode_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/events/proof"
	"github.com/storeloop/storeloop/internal/natstest"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/storenode"
)

// intruderPublish appends msg to the stream as any NATS client without
// auth can, and returns its sequence.
func intruderPublish(t testing.TB, js jetstream.JetStream, msg *nats.Msg) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// insertEventually inserts rec, retrying while the node answers
// unavailable (it is recovering), and returns the stored record and the
// number of unavailable answers.
func insertEventually(t testing.TB, nc *nats.Conn, rec events.Record) (events.Record, int) {
	t.Helper()
	var got events.Record
	refused := 0
	eventually(t, time.Minute, "an insert succeeds", func() bool {
		e := call(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: rec}, &got)
		if e != nil {
			wantCode(t, e, events.CodeUnavailable)
			refused++
		}
		return e == nil
	})
	return got, refused
}

// TestForeignMessagesQuarantined: without auth, garbage, a forged event
// (a real event's headers, its proof included, on another body), a real
// event published again verbatim and a well-formed event without proof
// change no state; the node resumes writing by itself, restarts cleanly,
// and counts them.
func TestForeignMessagesQuarantined(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef())
	var first events.Record
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": 1.0}}, &first)
	real := streamAfter(t, nc, lastSeq(t, nc)-1)[0]
	before := snapshot(t, nc)

	intruder := natstest.Connect(t, st.Server)
	js, err := jetstream.New(intruder)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(context.Background(), events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	rawReal, err := stream.GetMsg(context.Background(), real.Seq)
	if err != nil {
		t.Fatal(err)
	}
	withHeaders := func(subject string, body []byte, h nats.Header) *nats.Msg {
		m := nats.NewMsg(subject)
		m.Data = body
		for k, v := range h {
			if !strings.HasPrefix(k, "Nats-") {
				m.Header[k] = v
			}
		}
		return m
	}
	forgedBody := strings.Replace(string(rawReal.Data), `"total":1`, `"total":999`, 1)
	if forgedBody == string(rawReal.Data) {
		t.Fatalf("test bug: body %s has no total 1", rawReal.Data)
	}
	noProof := nats.NewMsg("bucket.orders.inserted")
	noProof.Data = []byte(`{"type":"inserted","bucket":"orders","key":99,"record":{"id":99,"userId":"x","total":5,"status":"pending","_version":1},"meta":{"eventId":"forged","time":1,"correlationId":"forged","hop":0}}`)
	foreign := []*nats.Msg{
		withHeaders("bucket.orders.inserted", []byte("not json"), nil),
		withHeaders(rawReal.Subject, []byte(forgedBody), rawReal.Header),
		withHeaders(rawReal.Subject, rawReal.Data, rawReal.Header),
		noProof,
	}
	var last uint64
	for _, m := range foreign {
		last = intruderPublish(t, js, m)
	}

	// The first write after them is refused by the stream (it expected an
	// older last sequence); the node quarantines them and resumes.
	second, refused := insertEventually(t, nc, events.Record{"userId": "v", "total": 2.0})
	if refused == 0 {
		t.Error("the first write after the foreign appends was not refused: the test did not exercise recovery")
	}
	var status events.StatusResult
	mustCall(t, nc, events.CmdStatus, struct{}{}, &status)
	if !status.Healthy || status.Quarantined != len(foreign) || status.LastQuarantinedSeq != last {
		t.Fatalf("status = %+v, want healthy, %d quarantined, last %d", status, len(foreign), last)
	}
	if got := getRecord(t, nc, "orders", first["id"]); got["total"] != 1.0 || got[events.FieldVersion] != 1.0 {
		t.Errorf("record 1 = %v, want it unchanged", got)
	}
	if got := getRecord(t, nc, "orders", 99.0); got != nil {
		t.Errorf("the event without proof became state: %v", got)
	}
	mustCall(t, nc, events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: second["id"]}, nil)
	if after := snapshot(t, nc); after != before {
		t.Errorf("state changed:\n%s\nwant\n%s", after, before)
	}

	restartNode(t, st)
	if after := snapshot(t, nc); after != before {
		t.Errorf("state after restart:\n%s\nwant\n%s", after, before)
	}
	if s := st.Node.Status(); !s.Healthy || s.Quarantined != len(foreign) || s.LastQuarantinedSeq != last {
		t.Fatalf("status after restart = %+v", s)
	}
	// /readyz says it too: ready, with the quarantine.
	wantReady := fmt.Sprintf("ready; %d messages in the stream quarantined (not this store's events; last at seq %d)", len(foreign), last)
	if text, err := st.Node.Ready(); err != nil || text != wantReady {
		t.Fatalf("Ready() = %q, %v; want %q", text, err, wantReady)
	}
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "w", "total": 3.0}}, nil)
}

// TestStreamMetadataTrustsKeys: the stream lists the key of every node
// that wrote it, so events of a rotated key still verify.
func TestStreamMetadataTrustsKeys(t *testing.T) {
	st := storetest.StartStore(t)
	define(t, st.Conn, ordersDef())
	restartNode(t, st) // a new key of this run
	mustCall(t, st.Conn, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": 1.0}}, nil)
	js, _ := jetstream.New(st.Conn)
	s, err := js.Stream(context.Background(), events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if keys := proof.ParseKeys(s.CachedInfo().Config.Metadata[proof.MetadataKeys]); len(keys) != 2 {
		t.Fatalf("trusted keys %v, want the two nodes'", keys)
	}
	restartNode(t, st)
	if s := st.Node.Status(); s.Quarantined != 0 || s.LastSeq != 2 {
		t.Fatalf("status after a second rotation = %+v", s)
	}
	if n := len(queryAll(t, st.Conn, "orders", nil, 0)); n != 1 {
		t.Fatalf("%d orders, want 1", n)
	}
}

// TestOutcomesAreTrue reproduces issue 9.5 ("15 of 16 writes answered
// unavailable were in the store"): concurrent writers keep the pipeline
// full while a foreign append makes a flight fail mid-pipeline. Every
// write answered with success is in the store, every write answered
// unavailable is not, and none is answered indeterminate (every append got
// an answer).
func TestOutcomesAreTrue(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, sessionsDef())
	js, err := jetstream.New(natstest.Connect(t, st.Server))
	if err != nil {
		t.Fatal(err)
	}
	const writers, perWriter = 32, 40
	type outcome struct {
		key  string
		code events.Code // "" for success
	}
	results := make(chan outcome, writers*perWriter)
	var wg sync.WaitGroup
	published := make(chan struct{}) // every writer's last write follows the foreign append
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				if i == perWriter-1 {
					<-published
				}
				key := fmt.Sprintf("w%d-%d", w, i)
				err := try(nc, events.CmdInsert, events.InsertRequest{Bucket: "sessions", Record: events.Record{"userId": key, "token": "t"}}, nil)
				var e *events.Error
				switch {
				case err == nil:
					results <- outcome{key, ""}
				case errors.As(err, &e):
					results <- outcome{key, e.Code}
				default:
					t.Errorf("insert %s: %v", key, err)
				}
			}
		})
	}
	eventually(t, 20*time.Second, "writes under way", func() bool { return len(results) >= writers })
	foreign := nats.NewMsg("bucket.sessions.inserted")
	foreign.Data = []byte("foreign")
	intruderPublish(t, js, foreign)
	close(published)
	wg.Wait()
	close(results)

	var ok, unavailable int
	for r := range results {
		got := getRecord(t, nc, "sessions", r.key)
		switch r.code {
		case "":
			ok++
			if got == nil {
				t.Errorf("%s answered success, not in the store", r.key)
			}
		case events.CodeUnavailable:
			unavailable++
			if got != nil {
				t.Errorf("%s answered unavailable, in the store", r.key)
			}
		default:
			t.Errorf("%s answered %s", r.key, r.code)
		}
	}
	t.Logf("%d writes succeeded, %d answered unavailable", ok, unavailable)
	if unavailable == 0 {
		t.Error("no write was refused: the foreign append did not hit the pipeline")
	}
	restartNode(t, st)
	if n := len(queryAll(t, nc, "sessions", nil, 0)); n != ok {
		t.Errorf("%d records after restart, %d writes answered success", n, ok)
	}
}

// TestRebuildRetried: a rebuild that fails (here the stream refuses the
// replay's consumer) is retried with backoff by itself; meanwhile every
// command is refused at once with the reason, and the node recovers when
// the stream can be read again.
func TestRebuildRetried(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef())
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": 1.0}}, nil)

	admin := natstest.Connect(t, st.Server)
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateConsumer(ctx, events.DefaultStream, jetstream.ConsumerConfig{Durable: "blocker"}); err != nil {
		t.Fatal(err)
	}
	setMaxConsumers := func(n int) {
		t.Helper()
		s, err := js.Stream(ctx, events.DefaultStream)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		cfg.MaxConsumers = n
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	setMaxConsumers(1) // the replay cannot create its consumer
	foreign := nats.NewMsg("bucket.orders.inserted")
	foreign.Data = []byte("foreign")
	intruderPublish(t, js, foreign)

	wantCode(t, call(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "v", "total": 2.0}}, nil), events.CodeUnavailable)
	eventually(t, 20*time.Second, "a second rebuild attempt failed", func() bool {
		return strings.Contains(st.Node.Status().Reason, "failed 2 times")
	})
	// Refused at once, reads too (the state is not trustworthy), with the
	// reason: no command waits for a rebuild.
	for _, c := range []struct {
		cmd string
		req any
	}{
		{events.CmdGet, events.GetRequest{Bucket: "orders", Key: 1.0}},
		{events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "v", "total": 2.0}}},
	} {
		e := call(t, nc, c.cmd, c.req, nil)
		wantCode(t, e, events.CodeUnavailable)
		if !strings.Contains(e.Message, "rebuilding the state from the stream failed") {
			t.Errorf("%s refused with %q, want the reason", c.cmd, e.Message)
		}
	}
	if _, err := st.Node.Ready(); err == nil || !strings.Contains(err.Error(), "rebuilding") {
		t.Errorf("Ready() = %v", err)
	}

	setMaxConsumers(-1)
	insertEventually(t, nc, events.Record{"userId": "v", "total": 2.0})
	if s := st.Node.Status(); !s.Healthy || s.Quarantined != 1 {
		t.Fatalf("status after recovery = %+v", s)
	}
	if n := len(queryAll(t, nc, "orders", nil, 0)); n != 2 {
		t.Fatalf("%d orders, want 2", n)
	}
}

// TestProofKeyOption: WithProofKey signs with the given key, which the
// stream then trusts.
func TestProofKeyOption(t *testing.T) {
	kp, err := proof.LoadOrCreateKey(t.TempDir() + "/proof.nk")
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.StartStore(t, storenode.WithProofKey(kp))
	define(t, st.Conn, ordersDef())
	pub, _ := kp.PublicKey()
	msgs := streamAfter(t, st.Conn, 0)
	p, err := proof.Parse(msgs[0].Header.Get(proof.Header))
	if err != nil || p.Key != pub {
		t.Fatalf("proof %+v, %v; want signed by %s", p, err, pub)
	}
}

// TestDaemonProofKey: the daemon keeps its key in <data>/proof.nk (mode
// 0600), signs with the same key after a restart, and starts on a stream
// holding garbage (issue 8: "never starts again").
func TestDaemonProofKey(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	nc := connectURL(t, d.URL)
	define(t, nc, ordersDef())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	garbage := nats.NewMsg("bucket.orders.inserted")
	garbage.Data = []byte("not json")
	garbageSeq := intruderPublish(t, js, garbage)
	nc.Close()
	d.Stop(t, 10*time.Second)

	info, err := os.Stat(filepath.Join(dir, "proof.nk"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("proof.nk mode %v, want 0600", info.Mode().Perm())
	}
	kp, err := proof.LoadOrCreateKey(filepath.Join(dir, "proof.nk"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()

	d = startDaemon(t, dir)
	nc = connectURL(t, d.URL)
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": 1.0}}, nil)
	var status events.StatusResult
	mustCall(t, nc, events.CmdStatus, struct{}{}, &status)
	if status.Quarantined != 1 || status.LastQuarantinedSeq != garbageSeq {
		t.Errorf("status = %+v, want the garbage quarantined", status)
	}
	js, _ = jetstream.New(nc)
	s, err := js.Stream(context.Background(), events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if keys := proof.ParseKeys(s.CachedInfo().Config.Metadata[proof.MetadataKeys]); len(keys) != 1 || keys[0] != pub {
		t.Errorf("trusted keys %v, want only %s", keys, pub)
	}
}

// TestSyncFailureOutcome: a write acknowledged by the stream whose sync
// fails is answered by what the rebuild finds: success when a second sync
// succeeds, else indeterminate — and then it is in the store, and a retry
// with the same command id returns its result without applying it again.
func TestSyncFailureOutcome(t *testing.T) {
	var failures atomic.Int32 // syncs still to fail; -1: every one
	syncer := storenode.SyncerFunc(func() error {
		if failures.Load() == -1 || failures.Add(-1) >= 0 {
			return errors.New("disk on fire")
		}
		failures.Store(0)
		return nil
	})
	st := storetest.StartStore(t, storenode.WithSyncer(syncer))
	nc := st.Conn
	define(t, nc, sessionsDef())

	failures.Store(1)
	var rec events.Record
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "sessions", Record: events.Record{"userId": "a", "token": "t"}}, &rec)
	if got := getRecord(t, nc, "sessions", "a"); got[events.FieldVersion] != 1.0 {
		t.Fatalf("get a = %v", got)
	}

	failures.Store(-1)
	insert := events.InsertRequest{Bucket: "sessions", Record: events.Record{"userId": "b", "token": "t"}}
	wantCode(t, call(t, nc, events.CmdInsert, insert, nil, events.HeaderCommandID, "cmd-b"), events.CodeIndeterminate)
	failures.Store(0)
	var again events.Record
	eventually(t, 20*time.Second, "the retry is answered", func() bool {
		e := call(t, nc, events.CmdInsert, insert, &again, events.HeaderCommandID, "cmd-b")
		return e == nil
	})
	if again["userId"] != "b" || again[events.FieldVersion] != 1.0 {
		t.Fatalf("retry = %v, want the first insert's record", again)
	}
	if n := len(queryAll(t, nc, "sessions", nil, 0)); n != 2 {
		t.Fatalf("%d sessions, want 2", n)
	}
}

// TestStreamBeforeProofs: a stream written before proofs existed keeps its
// events when a signing store first starts on it; from then on every
// message must be proved.
func TestStreamBeforeProofs(t *testing.T) {
	st := storetest.StartStore(t, storenode.WithoutProofs())
	nc := st.Conn
	define(t, nc, ordersDef())
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": 1.0}}, nil)
	before := snapshot(t, nc)

	restartNode(t, st) // proofs on
	if got := snapshot(t, nc); got != before {
		t.Fatalf("state after the first signing start:\n%s\nwant\n%s", got, before)
	}
	js, err := jetstream.New(natstest.Connect(t, st.Server))
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(context.Background(), events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if since := proof.Since(s.CachedInfo().Config.Metadata); since != 3 {
		t.Fatalf("proofs required from seq %d, want 3", since)
	}
	garbage := nats.NewMsg("bucket.orders.inserted")
	garbage.Data = []byte(`{"type":"inserted","bucket":"orders","key":9,"record":{"id":9,"userId":"x","total":1,"_version":1},"meta":{"eventId":"x","time":1,"correlationId":"x","hop":0}}`)
	intruderPublish(t, js, garbage)
	// The first write after the foreign append is refused, then the node
	// resumes.
	eventually(t, 20*time.Second, "the delete succeeds", func() bool {
		return call(t, nc, events.CmdDelete, events.DeleteRequest{Bucket: "orders", Key: 1.0}, nil) == nil
	})
	restartNode(t, st)
	if s := st.Node.Status(); s.Quarantined != 1 || s.LastQuarantinedSeq != 3 {
		t.Fatalf("status = %+v, want the unproved event after the switch quarantined", s)
	}
	if n := len(queryAll(t, nc, "orders", nil, 0)); n != 0 {
		t.Fatalf("%d orders, want 0", n)
	}
}
