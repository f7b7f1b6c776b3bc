package client_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
)

// next reads one event or fails the test.
func next(t *testing.T, w *client.Watcher) *events.Event {
	t.Helper()
	ev, err := w.Next(ctxT(t))
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	return ev
}

func TestFollowStartPositions(t *testing.T) {
	c := newStore(t, ordersDef)
	ctx := ctxT(t)
	insertOrders(t, c, "alice", "bob")

	w, err := c.Follow(ctx, "bucket.orders.>", client.FromBeginning())
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer w.Stop()
	first, second := next(t, w), next(t, w)
	if first.Type != events.OpInserted || first.Key != 1.0 || second.Key != 2.0 {
		t.Fatalf("from the beginning got %s %v, %s %v; want inserts of 1 and 2", first.Type, first.Key, second.Type, second.Key)
	}
	if first.Meta.Seq == 0 || second.Meta.Seq <= first.Meta.Seq {
		t.Fatalf("seqs %d, %d: want increasing stream sequences", first.Meta.Seq, second.Meta.Seq)
	}

	from, err := c.Follow(ctx, "", client.FromSequence(second.Meta.Seq))
	if err != nil {
		t.Fatal(err)
	}
	defer from.Stop()
	if ev := next(t, from); ev.Meta.Seq != second.Meta.Seq || ev.Key != 2.0 {
		t.Fatalf("from seq %d got seq %d key %v", second.Meta.Seq, ev.Meta.Seq, ev.Key)
	}

	// The default is only new events: the first one seen is the update.
	live, err := c.Follow(ctx, "bucket.*.updated")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Stop()
	if _, err := c.Bucket("orders").Update(ctx, 2, events.Record{"status": "paid"}); err != nil {
		t.Fatal(err)
	}
	ev := next(t, live)
	if ev.Type != events.OpUpdated || ev.OldRecord["status"] != "pending" || ev.NewRecord["status"] != "paid" {
		t.Fatalf("live event = %+v, want the update of 2", ev)
	}
	if ev.Meta.Seq != second.Meta.Seq+1 {
		t.Fatalf("live seq = %d, want %d", ev.Meta.Seq, second.Meta.Seq+1)
	}

	w.Stop()
	if _, err := w.Next(ctx); err == nil {
		t.Fatal("next after stop: no error")
	}
}

func TestCausalHeadersReachEventMeta(t *testing.T) {
	c := newStore(t, ordersDef)
	w, err := c.Follow(ctxT(t), "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	// A write from outside starts a chain: hop 0, no rule.
	rec := insertOrders(t, c, "alice")[0]
	root := next(t, w)
	if root.Meta.Hop != 0 || root.Meta.RuleID != "" || root.Meta.CorrelationID == "" || root.Meta.EventID == "" {
		t.Fatalf("root meta = %+v", root.Meta)
	}

	// A rule's write continues it.
	ctx := client.WithCause(ctxT(t), client.CausedBy(root, "ship-it"))
	if _, err := c.Bucket("orders").Update(ctx, rec["id"], events.Record{"status": "shipped"}); err != nil {
		t.Fatal(err)
	}
	got := next(t, w).Meta
	want := events.Meta{CorrelationID: root.Meta.CorrelationID, CausationID: root.Meta.EventID, Hop: 1, RuleID: "ship-it"}
	if got.CorrelationID != want.CorrelationID || got.CausationID != want.CausationID || got.Hop != want.Hop || got.RuleID != want.RuleID {
		t.Fatalf("meta = %+v, want %+v", got, want)
	}
}

func TestIdempotentCommandID(t *testing.T) {
	c := newStore(t, ordersDef)
	orders := c.Bucket("orders")
	ctx := client.WithCommandID(ctxT(t), "order-for-alice")

	first, err := orders.Insert(ctx, events.Record{"userId": "alice", "total": 5.0})
	if err != nil {
		t.Fatal(err)
	}
	again, err := orders.Insert(ctx, events.Record{"userId": "alice", "total": 5.0})
	if err != nil || !reflect.DeepEqual(again, first) {
		t.Fatalf("same command id again = %v, %v; want the first reply %v", again, err, first)
	}
	if n, err := orders.Count(ctxT(t), nil); err != nil || n != 1 {
		t.Fatalf("count = %d, %v; want 1", n, err)
	}
	// A fresh id is a new command: the same record is a second order.
	if _, err := orders.Insert(ctxT(t), events.Record{"userId": "alice", "total": 5.0}); err != nil {
		t.Fatal(err)
	}
	if n, _ := orders.Count(ctxT(t), nil); n != 2 {
		t.Fatalf("count = %d, want 2", n)
	}
}

func TestTailStopsOnHandlerError(t *testing.T) {
	c := newStore(t, ordersDef)
	insertOrders(t, c, "alice", "bob", "carol")
	stop := errors.New("enough")
	var keys []any
	err := c.Tail(ctxT(t), "bucket.orders.inserted", func(ev *events.Event) error {
		keys = append(keys, ev.Key)
		if len(keys) == 2 {
			return stop
		}
		return nil
	}, client.FromBeginning())
	if !errors.Is(err, stop) || !reflect.DeepEqual(keys, []any{1.0, 2.0}) {
		t.Fatalf("tail = %v with keys %v; want the handler's error after 1, 2", err, keys)
	}

	ctx, cancel := context.WithCancel(ctxT(t))
	err = c.Tail(ctx, "", func(*events.Event) error { cancel(); return nil }, client.FromBeginning())
	if err != nil {
		t.Fatalf("tail ended by its context = %v, want nil", err)
	}
}

func TestFollowWithoutStream(t *testing.T) {
	c := newStore(t)
	c2, err := client.New(c.Conn(), client.WithStream("NOPE"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Follow(ctxT(t), ""); !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("follow of a missing stream: err = %v, want unavailable", err)
	}
	if _, err := c2.Watch(ctxT(t), "orders", nil); !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("watch of a missing stream: err = %v, want unavailable", err)
	}
}
