package client_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// watchSet is the result set a watcher holds: its snapshot with every
// change applied, checked as it goes.
type watchSet struct {
	t     *testing.T
	recs  map[any]events.Record
	seqs  []uint64 // of the changes, in the order seen
	ready uint64   // the ready line's seq
}

// readSnapshot reads snapshot lines up to the ready line.
func readSnapshot(t *testing.T, w *client.QueryWatch) *watchSet {
	t.Helper()
	s := &watchSet{t: t, recs: map[any]events.Record{}}
	for {
		ch := nextChange(t, w)
		switch ch.Type {
		case events.WatchReady:
			s.ready = ch.Seq
			return s
		case events.WatchSnapshot:
			if _, dup := s.recs[ch.Key]; dup {
				t.Fatalf("snapshot line for key %v twice", ch.Key)
			}
			s.recs[ch.Key] = ch.Record
		default:
			t.Fatalf("before ready: got a %s line", ch.Type)
		}
	}
}

// apply applies one change; an added key must be absent, a changed or
// removed one present.
func (s *watchSet) apply(ch events.WatchChange) {
	s.t.Helper()
	_, had := s.recs[ch.Key]
	switch {
	case ch.Type == events.WatchAdded && !had, ch.Type == events.WatchChanged && had:
		s.recs[ch.Key] = ch.Record
	case ch.Type == events.WatchRemoved && had:
		delete(s.recs, ch.Key)
	default:
		s.t.Fatalf("%s for key %v (in the set: %v) at seq %d", ch.Type, ch.Key, had, ch.Seq)
	}
	if n := len(s.seqs); n > 0 && ch.Seq <= s.seqs[n-1] || ch.Seq <= s.ready {
		s.t.Fatalf("change at seq %d after seq %d (ready at %d): out of order", ch.Seq, s.seqs[max(n-1, 0)], s.ready)
	}
	s.seqs = append(s.seqs, ch.Seq)
}

func nextChange(t *testing.T, w *client.QueryWatch) events.WatchChange {
	t.Helper()
	ch, err := w.Next(ctxT(t))
	if err != nil {
		t.Fatalf("watch next: %v", err)
	}
	return ch
}

// queryAll reads every page of a query.
func queryAll(t *testing.T, c *client.Client, bucket string, where events.Where) map[any]events.Record {
	t.Helper()
	out := map[any]events.Record{}
	after := ""
	for {
		res, err := c.Bucket(bucket).Query(ctxT(t), where, client.After(after))
		if err != nil {
			t.Fatalf("query: %v", err)
		}
		for _, r := range res.Records {
			out[r["id"]] = r
		}
		if after = res.NextCursor; after == "" {
			return out
		}
	}
}

// TestWatchUnderConcurrentWriters starts two watches (everything, and the
// paid orders) while four writers insert, update and delete orders: with
// pages of 7 records, so that the snapshot is read in many pages taken at
// different sequences, and in one page. Every bucket event after the ready line's sequence
// is seen exactly once, in order, by the unfiltered watch, the filtered
// one sees a subsequence of them, each change is consistent with the set
// it applies to, and both final sets equal a fresh query.
func TestWatchUnderConcurrentWriters(t *testing.T) {
	t.Run("pages of 7", func(t *testing.T) { watchUnderWriters(t, 7) })
	t.Run("one page", func(t *testing.T) { watchUnderWriters(t, 0) })
}

func watchUnderWriters(t *testing.T, pageSize int) {
	c := newStore(t, ordersDef)
	ctx := ctxT(t)
	orders := c.Bucket("orders")
	for i := range 60 {
		if _, err := orders.Insert(ctx, events.Record{"userId": fmt.Sprint("u", i), "total": float64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	statuses := []string{"pending", "paid", "shipped"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ids := 60
	write := func(w int, rng *rand.Rand) error {
		mu.Lock()
		id := 1 + rng.IntN(ids)
		mu.Unlock()
		var err error
		switch op := rng.IntN(10); {
		case op < 3:
			var rec events.Record
			rec, err = orders.Insert(ctx, events.Record{"userId": fmt.Sprint("w", w), "total": float64(op), "status": statuses[rng.IntN(3)]})
			if err == nil {
				mu.Lock()
				ids = max(ids, int(rec["id"].(float64)))
				mu.Unlock()
			}
		case op < 9:
			_, err = orders.Update(ctx, id, events.Record{"status": statuses[rng.IntN(3)], "total": float64(op)})
		default:
			_, err = orders.Delete(ctx, id)
		}
		if errors.Is(err, events.ErrNotFound) {
			return nil // deleted by another writer
		}
		return err
	}
	errs := make(chan error, 4)
	started := make(chan struct{}, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 13))
			for i := range 150 {
				if err := write(w, rng); err != nil {
					errs <- err
					return
				}
				if i == 10 {
					started <- struct{}{}
				}
			}
		}()
	}
	for range 4 {
		<-started
	}
	paid := events.Where{"status": "paid"}
	all, err := c.Watch(ctx, "orders", nil, client.WatchPageSize(pageSize))
	if err != nil {
		t.Fatal(err)
	}
	defer all.Stop()
	onlyPaid, err := c.Watch(ctx, "orders", paid, client.WatchPageSize(pageSize))
	if err != nil {
		t.Fatal(err)
	}
	defer onlyPaid.Stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("writer: %v", err)
	}
	// A last paid insert marks the end: both watches see it added.
	end, err := orders.Insert(ctx, events.Record{"userId": "end", "total": 1.0, "status": "paid"})
	if err != nil {
		t.Fatal(err)
	}
	follow := func(w *client.QueryWatch) *watchSet {
		s := readSnapshot(t, w)
		for {
			ch := nextChange(t, w)
			s.apply(ch)
			if ch.Key == end["id"] && ch.Type == events.WatchAdded {
				return s
			}
		}
	}
	allSet, paidSet := follow(all), follow(onlyPaid)

	// Every event of the bucket after the ready lines' seqs, from the
	// stream; a paid order's event is a change of the paid watch.
	raw, err := c.Follow(ctx, "bucket.orders.>", client.FromSequence(min(allSet.ready, paidSet.ready)+1))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Stop()
	var want, wantPaid []uint64
	isPaid := func(r events.Record) bool { return r != nil && r["status"] == "paid" }
	for {
		ev := next(t, raw)
		if ev.Meta.Seq > allSet.ready {
			want = append(want, ev.Meta.Seq)
		}
		if ev.Meta.Seq > paidSet.ready && (isPaid(ev.Record) || isPaid(ev.OldRecord) || isPaid(ev.NewRecord)) {
			wantPaid = append(wantPaid, ev.Meta.Seq)
		}
		if ev.Key == end["id"] {
			break
		}
	}
	if len(want) < 10 {
		t.Fatalf("only %d events after the snapshot: the writers did not overlap the watch", len(want))
	}
	if !slices.Equal(allSet.seqs, want) {
		t.Fatalf("the unfiltered watch saw %d changes, the stream holds %d events after seq %d:\n got %v\nwant %v", len(allSet.seqs), len(want), allSet.ready, allSet.seqs, want)
	}
	if !slices.Equal(paidSet.seqs, wantPaid) {
		t.Fatalf("the paid watch saw %d changes, %d events after seq %d touch a paid order:\n got %v\nwant %v", len(paidSet.seqs), len(wantPaid), paidSet.ready, paidSet.seqs, wantPaid)
	}
	if got, fresh := allSet.recs, queryAll(t, c, "orders", nil); !reflect.DeepEqual(got, fresh) {
		t.Fatalf("watched set of %d records differs from a fresh query of %d", len(got), len(fresh))
	}
	if got, fresh := paidSet.recs, queryAll(t, c, "orders", paid); !reflect.DeepEqual(got, fresh) {
		t.Fatalf("watched paid set of %d records differs from a fresh query of %d", len(got), len(fresh))
	}
	t.Logf("ready at seq %d (all) and %d (paid); %d and %d changes after", allSet.ready, paidSet.ready, len(allSet.seqs), len(paidSet.seqs))
}

// expectChanges reads the events of the bucket after seq from the stream
// and what a watch of where must print for each ops event: the type wanted
// per event ("" for none), in order.
func expectChanges(t *testing.T, c *client.Client, after uint64, types ...string) []events.WatchChange {
	t.Helper()
	raw, err := c.Follow(ctxT(t), "bucket.orders.>", client.FromSequence(after+1))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Stop()
	var out []events.WatchChange
	for _, typ := range types {
		ev := next(t, raw)
		rec := ev.NewRecord
		if ev.Type != events.OpUpdated {
			rec = ev.Record
		}
		if typ != "" {
			out = append(out, events.WatchChange{Type: typ, Key: ev.Key, Record: rec, Seq: ev.Meta.Seq})
		}
	}
	return out
}

// wantLines reads len(want) lines and compares them with want.
func wantLines(t *testing.T, w *client.QueryWatch, want []events.WatchChange) {
	t.Helper()
	for i, wc := range want {
		if got := nextChange(t, w); !reflect.DeepEqual(got, wc) {
			t.Fatalf("line %d:\n got %+v\nwant %+v", i, got, wc)
		}
	}
}

// TestWatchEnterLeave: a record entering the filter is added, one changed
// inside it changed, one leaving it (by update or delete) removed, and
// writes outside it print nothing.
func TestWatchEnterLeave(t *testing.T) {
	c := newStore(t, ordersDef)
	ctx := ctxT(t)
	orders := c.Bucket("orders")
	first, err := orders.Insert(ctx, events.Record{"userId": "a", "total": 1.0, "status": "paid"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := orders.Insert(ctx, events.Record{"userId": "b", "total": 2.0}); err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, "orders", events.Where{"status": "paid"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	snap := nextChange(t, w)
	ready := nextChange(t, w)
	if want := (events.WatchChange{Type: events.WatchSnapshot, Key: 1.0, Record: first, Seq: ready.Seq}); !reflect.DeepEqual(snap, want) {
		t.Fatalf("snapshot line %+v, want %+v", snap, want)
	}
	if ready.Type != events.WatchReady || ready.Key != nil || ready.Record != nil {
		t.Fatalf("ready line %+v", ready)
	}
	steps := []struct {
		write func() error
		want  string
	}{
		{func() error { _, err := orders.Update(ctx, 2, events.Record{"status": "paid"}); return err }, events.WatchAdded},
		{func() error { _, err := orders.Update(ctx, 2, events.Record{"total": 99.0}); return err }, events.WatchChanged},
		{func() error { _, err := orders.Update(ctx, 1, events.Record{"status": "shipped"}); return err }, events.WatchRemoved},
		{func() error { _, err := orders.Update(ctx, 1, events.Record{"total": 5.0}); return err }, ""},
		{func() error { _, err := orders.Insert(ctx, events.Record{"userId": "c", "total": 3.0}); return err }, ""},
		{func() error {
			_, err := orders.Insert(ctx, events.Record{"userId": "d", "total": 4.0, "status": "paid"})
			return err
		}, events.WatchAdded},
		{func() error { _, err := orders.Delete(ctx, 4); return err }, events.WatchRemoved},
		{func() error { _, err := orders.Delete(ctx, 3); return err }, ""},
		{func() error { _, err := orders.Update(ctx, 2, events.Record{"total": 7.0}); return err }, events.WatchChanged},
	}
	var types []string
	for i, s := range steps {
		if err := s.write(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		types = append(types, s.want)
	}
	want := expectChanges(t, c, ready.Seq, types...)
	wantLines(t, w, want)
	if want[2].Record["status"] != "shipped" || want[4].Record["userId"] != "d" {
		t.Fatalf("removed lines carry %v and %v: want the record after the update, and the deleted one", want[2].Record, want[4].Record)
	}
}

// TestWatchResume disconnects a watcher (its connection closes), makes
// changes, and resumes from the last seq it saw on a new connection: it
// gets exactly the changes it missed, then the next one.
func TestWatchResume(t *testing.T) {
	url := storetest.Start(t)
	connect := func() *client.Client {
		c, err := client.Connect(url, client.WithTimeout(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	c1 := connect()
	ctx := ctxT(t)
	if err := c1.Define(ctx, ordersDef); err != nil {
		t.Fatal(err)
	}
	paid := events.Where{"status": "paid"}
	insertOrders(t, c1, "a", "b")
	for _, id := range []int{1, 2} {
		if _, err := c1.Bucket("orders").Update(ctx, id, events.Record{"status": "paid"}); err != nil {
			t.Fatal(err)
		}
	}
	w1, err := c1.Watch(ctx, "orders", paid)
	if err != nil {
		t.Fatal(err)
	}
	s := readSnapshot(t, w1)
	if len(s.recs) != 2 {
		t.Fatalf("snapshot of %d records, want 2", len(s.recs))
	}
	if _, err := c1.Bucket("orders").Update(ctx, 1, events.Record{"total": 11.0}); err != nil {
		t.Fatal(err)
	}
	seen := nextChange(t, w1)
	if seen.Type != events.WatchChanged || seen.Key != 1.0 {
		t.Fatalf("got %+v, want order 1 changed", seen)
	}
	c1.Close()

	c2 := connect()
	orders := c2.Bucket("orders")
	for i, write := range []func() error{
		func() error { _, err := orders.Update(ctx, 2, events.Record{"total": 22.0}); return err },
		func() error { _, err := orders.Insert(ctx, events.Record{"userId": "c", "total": 3.0}); return err },
		func() error { _, err := orders.Update(ctx, 3, events.Record{"status": "paid"}); return err },
		func() error { _, err := orders.Delete(ctx, 1); return err },
	} {
		if err := write(); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	w2, err := c2.Watch(ctx, "orders", paid, client.WatchFromSeq(seen.Seq))
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	if _, err := orders.Insert(ctx, events.Record{"userId": "d", "total": 4.0, "status": "paid"}); err != nil {
		t.Fatal(err)
	}
	wantLines(t, w2, expectChanges(t, c2, seen.Seq, events.WatchChanged, "", events.WatchAdded, events.WatchRemoved, events.WatchAdded))
}

// TestWatchRefused: bad input is refused with its code before anything is
// read, in both modes.
func TestWatchRefused(t *testing.T) {
	view := events.BucketDef{Bucket: "perUser", View: &events.ViewDef{From: "orders", GroupBy: "userId",
		Fields: map[string]events.ViewField{"n": {Fn: events.ViewCount}}}}
	c := newStore(t, ordersDef, view)
	for _, tc := range []struct {
		name   string
		bucket string
		where  events.Where
		want   error
	}{
		{"bad where", "orders", events.Where{"total": map[string]any{"$bogus": 1}}, events.ErrBadRequest},
		{"bad $or", "orders", events.Where{"$or": "x"}, events.ErrBadRequest},
		{"bad bucket name", "a.b", nil, events.ErrBadRequest},
		{"unknown bucket", "nope", nil, events.ErrBucketNotFound},
		{"view", "perUser", nil, events.ErrBadRequest},
	} {
		for _, mode := range []struct {
			name string
			opts []client.WatchOption
		}{{"snapshot", nil}, {"resume", []client.WatchOption{client.WatchFromSeq(1)}}} {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) {
				w, err := c.Watch(ctxT(t), tc.bucket, tc.where, mode.opts...)
				if !errors.Is(err, tc.want) {
					if w != nil {
						w.Stop()
					}
					t.Fatalf("got %v, want %v", err, tc.want)
				}
			})
		}
	}
}

// TestWatchSkipsForeign: messages appended to the stream by anyone but the
// store (possible without --auth) are in no state, and a watch shows none
// of them: the next line after them is the store's next write.
func TestWatchSkipsForeign(t *testing.T) {
	url := storetest.Start(t)
	c, err := client.Connect(url, client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t)
	if err := c.Define(ctx, ordersDef); err != nil {
		t.Fatal(err)
	}
	real := insertOrders(t, c, "a")[0]
	w, err := c.Watch(ctx, "orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ready := readSnapshot(t, w).ready

	intruder, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer intruder.Close()
	js, err := jetstream.New(intruder)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	copied, err := stream.GetMsg(ctx, ready) // the real insert, proof and all
	if err != nil {
		t.Fatal(err)
	}
	forged := nats.NewMsg("bucket.orders.inserted")
	forged.Data = []byte(`{"type":"inserted","bucket":"orders","key":99,"record":{"id":99,"userId":"x","total":5,"status":"pending","_version":1},"meta":{"eventId":"forged","time":1,"correlationId":"forged","hop":0}}`)
	replayed := nats.NewMsg(copied.Subject)
	replayed.Data = copied.Data
	for k, v := range copied.Header {
		if !strings.HasPrefix(k, "Nats-") {
			replayed.Header[k] = v
		}
	}
	for _, m := range []*nats.Msg{forged, replayed} {
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	// The store's first write after them may be refused while it
	// quarantines them; the client retries unavailable.
	second, err := c.Bucket("orders").Insert(ctx, events.Record{"userId": "b", "total": 2.0})
	for errors.Is(err, events.ErrUnavailable) && ctx.Err() == nil {
		second, err = c.Bucket("orders").Insert(ctx, events.Record{"userId": "b", "total": 2.0})
	}
	if err != nil {
		t.Fatal(err)
	}
	raw, err := c.Follow(ctx, "bucket.orders.>", client.FromSequence(ready+1))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Stop()
	if ev := next(t, raw); ev.Key != 99.0 {
		t.Fatalf("the stream's next event after the ready line is key %v, want the forged 99: the test appended nothing", ev.Key)
	}
	if ch := nextChange(t, w); ch.Type != events.WatchAdded || ch.Key != second["id"] || ch.Key == real["id"] {
		t.Fatalf("after the foreign messages the watch printed %+v, want order %v added", ch, second["id"])
	}
}

// TestWatchSurvivesReconnect: the server drops the watcher's connection in
// the middle of a watch; the client reconnects and the watch goes on with
// every change once, none lost in the drop.
func TestWatchSurvivesReconnect(t *testing.T) {
	st := storetest.StartStore(t)
	c, err := client.Connect(st.URL, client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t)
	if err := c.Define(ctx, ordersDef); err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, "orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	s := readSnapshot(t, w)
	insertOrders(t, c, "a", "b", "c")
	for range 2 {
		s.apply(nextChange(t, w))
	}
	id, err := c.Conn().GetClientID()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Server.DisconnectClientByID(id); err != nil {
		t.Fatal(err)
	}
	insertOrders(t, c, "d", "e") // the client's requests wait for the reconnect
	for range 3 {
		s.apply(nextChange(t, w))
	}
	var want []uint64
	for i := range 5 {
		want = append(want, s.ready+1+uint64(i))
	}
	if !slices.Equal(s.seqs, want) || len(s.recs) != 5 {
		t.Fatalf("changes at %v with %d records, want %v and 5", s.seqs, len(s.recs), want)
	}
}
