package client_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
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
