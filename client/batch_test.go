package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
)

// TestBatch: each command its own result or *events.Error, in order; the
// same commands again (same ids) return the same results and apply nothing.
func TestBatch(t *testing.T) {
	c := newStore(t, ordersDef, loyaltyDef)
	ctx := ctxT(t)
	insertOrders(t, c, "alice")
	cmds := []events.BatchCommand{
		client.InsertCommand("orders", events.Record{"userId": "bob", "total": 5.0}),
		client.InsertCommand("orders", events.Record{"userId": "carol", "total": -1.0}),
		client.UpdateCommand("orders", 1, events.Record{"status": "paid"}, client.ExpectVersion(1)),
		client.UpsertCommand("loyalty", "alice", nil, client.Increment(map[string]float64{"points": 3})),
		client.DeleteCommand("orders", 7),
		client.TxCommand(events.TxRequest{Ops: []events.TxOp{{Op: "update", Bucket: "orders", Key: 1.0, ExpectVersion: ptr(int64(1))}}}),
	}
	for i := range cmds {
		cmds[i].CommandID = "b" + string(rune('0'+i))
	}
	results, err := c.Batch(ctx, cmds...)
	if err != nil {
		t.Fatal(err)
	}
	check := func(results []client.BatchResult) {
		t.Helper()
		if len(results) != len(cmds) {
			t.Fatalf("%d results for %d commands", len(results), len(cmds))
		}
		if rec, err := results[0].Record(); err != nil || rec["id"] != 2.0 {
			t.Fatalf("insert: %v, %v", rec, err)
		}
		var ve *events.Error
		if !errors.As(results[1].Err, &ve) || !errors.Is(results[1].Err, events.ErrValidation) || ve.Issues[0].Field != "total" {
			t.Fatalf("invalid insert: %v", results[1].Err)
		}
		if rec, err := results[2].Record(); err != nil || rec["status"] != "paid" || rec["_version"] != 2.0 {
			t.Fatalf("update: %v, %v", rec, err)
		}
		if rec, err := results[3].Record(); err != nil || rec["points"] != 3.0 {
			t.Fatalf("upsert: %v, %v", rec, err)
		}
		var del events.DeleteResult
		if err := results[4].Decode(&del); err != nil || del.Deleted {
			t.Fatalf("delete: %v, %v", del, err)
		}
		if !errors.Is(results[5].Err, events.ErrConflict) {
			t.Fatalf("tx: %v", results[5].Err)
		}
	}
	check(results)
	again, err := c.Batch(ctx, cmds...)
	if err != nil {
		t.Fatal(err)
	}
	check(again)
	orders, _ := c.Bucket("orders").Count(ctx, nil)
	points, _ := c.Bucket("loyalty").Get(ctx, "alice")
	if orders != 2 || points["points"] != 3.0 {
		t.Fatalf("after the batch twice: %d orders, loyalty %v", orders, points)
	}

	if _, err := c.Batch(ctx, make([]events.BatchCommand, events.MaxBatchCommands+1)...); !errors.Is(err, events.ErrTooLarge) {
		t.Fatalf("batch over the cap: %v", err)
	}
}

// TestBatchRetriesUnavailableCommands: the store answers the commands of a
// batch whose append failed unavailable; the client sends them again by
// their ids and they apply once.
func TestBatchRetriesUnavailableCommands(t *testing.T) {
	c := newStore(t, ordersDef, loyaltyDef)
	ctx := ctxT(t)
	js, err := jetstream.New(c.Conn())
	if err != nil {
		t.Fatal(err)
	}
	foreign := nats.NewMsg("bucket.orders.inserted")
	foreign.Data = []byte("foreign")
	if _, err := js.PublishMsg(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	results, err := c.Batch(ctx,
		client.InsertCommand("orders", events.Record{"userId": "u", "total": 1.0}),
		client.UpsertCommand("loyalty", "u", nil, client.Increment(map[string]float64{"points": 1})),
	)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		if r.Err != nil {
			t.Fatalf("command %d: %v", i, r.Err)
		}
	}
	status, err := c.Status(ctx)
	if err != nil || status.Quarantined == 0 {
		t.Fatalf("status %+v, %v: the foreign append did not make the first attempt fail", status, err)
	}
	orders, _ := c.Bucket("orders").Count(ctx, nil)
	points, _ := c.Bucket("loyalty").Get(ctx, "u")
	if orders != 1 || points["points"] != 1.0 {
		t.Fatalf("%d orders, loyalty %v: want each command applied once", orders, points)
	}
}

// TestBatchEntryWithoutOutcome: a batch reply whose entry has neither
// result nor error (a forged or broken responder) is an internal error for
// that command, never a success.
func TestBatchEntryWithoutOutcome(t *testing.T) {
	store := newStore(t)
	sub, err := store.Conn().Subscribe("forged.batch", func(m *nats.Msg) {
		_ = m.Respond([]byte(`{"result":{"results":[{},{"result":{"id":1}}]}}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := store.Conn().Flush(); err != nil { // the server has the subscription
		t.Fatal(err)
	}
	c, err := client.Connect(store.Conn().ConnectedUrl(), client.WithCommandPrefix("forged"), client.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	results, err := c.Batch(ctxT(t),
		client.InsertCommand("orders", events.Record{"total": 1.0}),
		client.InsertCommand("orders", events.Record{"total": 2.0}))
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(results[0].Err, events.ErrInternal) {
		t.Fatalf("entry without outcome: %v, want internal", results[0].Err)
	}
	if results[1].Err != nil || string(results[1].Result) != `{"id":1}` {
		t.Fatalf("entry with a result: %s, %v", results[1].Result, results[1].Err)
	}
}

// TestBatchCommandFrom: commands built from different contexts keep each
// its own command id, causal chain and trace, into the events they append.
func TestBatchCommandFrom(t *testing.T) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	c := newStore(t, ordersDef)
	ctx := ctxT(t)

	traced := func(traceID string, cause client.CausalContext, id string) context.Context {
		tid, _ := trace.TraceIDFromHex(traceID)
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled, Remote: true})
		return client.WithCommandID(client.WithCause(trace.ContextWithRemoteSpanContext(ctx, sc), cause), id)
	}
	a := traced("0af7651916cd43dd8448eb211c80319c", client.CausalContext{CorrelationID: "corr-a", CausationID: "ev-a", Hop: 2, RuleID: "rule-a"}, "cmd-a")
	b := traced("4bf92f3577b34da6a3ce929d0e0e4736", client.CausalContext{CorrelationID: "corr-b", CausationID: "ev-b", Hop: 5, RuleID: "rule-b", RuleVersion: 4}, "cmd-b")
	results, err := c.Batch(ctx,
		client.BatchCommandFrom(a, client.InsertCommand("orders", events.Record{"userId": "a", "total": 1.0})),
		client.BatchCommandFrom(b, client.InsertCommand("orders", events.Record{"userId": "b", "total": 1.0})),
	)
	if err != nil || results[0].Err != nil || results[1].Err != nil {
		t.Fatalf("batch: %v %+v", err, results)
	}
	js, err := jetstream.New(c.Conn())
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		trace string
		meta  events.Meta
	}{
		{"0af7651916cd43dd8448eb211c80319c", events.Meta{CorrelationID: "corr-a", CausationID: "ev-a", Hop: 2, RuleID: "rule-a", CommandID: "cmd-a"}},
		{"4bf92f3577b34da6a3ce929d0e0e4736", events.Meta{CorrelationID: "corr-b", CausationID: "ev-b", Hop: 5, RuleID: "rule-b", RuleVersion: 4, CommandID: "cmd-b"}},
	} {
		m, err := s.GetMsg(ctx, info.State.LastSeq-1+uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		var ev events.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		got := ev.Meta
		if got.CorrelationID != want.meta.CorrelationID || got.CausationID != want.meta.CausationID || got.Hop != want.meta.Hop ||
			got.RuleID != want.meta.RuleID || got.RuleVersion != want.meta.RuleVersion || got.CommandID != want.meta.CommandID {
			t.Fatalf("event %d meta %+v, want %+v", i, got, want.meta)
		}
		if tp := m.Header.Get(events.HeaderTraceParent); !strings.Contains(tp, want.trace) {
			t.Fatalf("event %d traceparent %q, want trace %s", i, tp, want.trace)
		}
	}
}
