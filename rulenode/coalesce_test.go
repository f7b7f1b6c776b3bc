package rulenode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// outcome is what one rule action saw of its write.
type outcome struct {
	value any // the record, the deleted flag or the tx results
	code  events.Code
}

// Concurrent writes of rule actions leave as a few store.batch requests,
// never as single ones, and each action gets its own command's result or
// error code, as a single request would have answered. Sent again with the
// same command ids (a redelivered event), they change nothing and are
// answered the same way.
func TestCoalescedWrites(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	url, cl := storeWith(ctx, t, events.BucketDef{Bucket: "accounts", Key: "id", Schema: map[string]events.FieldDef{
		"id":      {Type: events.TypeString, Required: true},
		"balance": {Type: events.TypeNumber, Default: 0.0, Min: new(0.0)},
	}})
	if _, err := cl.Bucket("accounts").Insert(ctx, events.Record{"id": "x", "balance": 1.0}); err != nil {
		t.Fatal(err)
	}

	// A watcher of the command subjects sees every request the writes make.
	watch, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	requests := make(chan *nats.Msg, 64)
	if _, err := watch.ChanSubscribe(events.DefaultCommandPrefix+".>", requests); err != nil {
		t.Fatal(err)
	}
	if err := watch.Flush(); err != nil {
		t.Fatal(err)
	}

	sc := newStoreClient(cl, "set", "rule", 7)
	sc.co = newCoalescer(cl, 5)
	type write func(ctx context.Context) (any, error)
	writes := []write{
		func(ctx context.Context) (any, error) {
			return sc.Insert(ctx, "accounts", events.Record{"id": "a0", "balance": 10.0})
		},
		func(ctx context.Context) (any, error) {
			return sc.Insert(ctx, "accounts", events.Record{"id": "a1", "balance": 11.0})
		},
		func(ctx context.Context) (any, error) {
			return sc.Insert(ctx, "accounts", events.Record{"id": "a2", "balance": 12.0})
		},
		func(ctx context.Context) (any, error) {
			return sc.Insert(ctx, "accounts", events.Record{"id": "neg", "balance": -1.0})
		},
		func(ctx context.Context) (any, error) {
			return sc.Update(ctx, "accounts", "nope", events.Record{"balance": 2.0}, nil)
		},
		func(ctx context.Context) (any, error) {
			return sc.Delete(ctx, "accounts", "x", ExpectVersion(99))
		},
		func(ctx context.Context) (any, error) {
			return sc.Delete(ctx, "accounts", "none")
		},
		func(ctx context.Context) (any, error) {
			return sc.Upsert(ctx, "accounts", "u", events.Record{"id": "u"}, map[string]float64{"balance": 5})
		},
		func(ctx context.Context) (any, error) {
			return sc.Update(ctx, "accounts", "x", events.Record{"balance": 7.0}, nil)
		},
		func(ctx context.Context) (any, error) {
			return sc.Tx(ctx, []events.TxOp{{Op: events.CmdInsert, Bucket: "accounts", Record: events.Record{"id": "t"}}})
		},
		func(ctx context.Context) (any, error) {
			return sc.Tx(ctx, []events.TxOp{{Op: events.CmdUpdate, Bucket: "accounts", Key: "nope", Changes: events.Record{"balance": 1.0}}})
		},
		func(ctx context.Context) (any, error) {
			return sc.Insert(ctx, "accounts", events.Record{"id": "a3"})
		},
	}
	want := []outcome{
		{value: events.Record{"id": "a0", "balance": 10.0}},
		{value: events.Record{"id": "a1", "balance": 11.0}},
		{value: events.Record{"id": "a2", "balance": 12.0}},
		{code: events.CodeValidation},
		{code: events.CodeNotFound},
		{code: events.CodeConflict},
		{value: false},
		{value: events.Record{"id": "u", "balance": 5.0}},
		{value: events.Record{"id": "x", "balance": 7.0}},
		{value: []any{map[string]any{"id": "t", "balance": 0.0}}},
		{code: events.CodeNotFound},
		{value: events.Record{"id": "a3", "balance": 0.0}},
	}

	// run makes the writes at once, each from its own action path, and
	// returns their outcomes: batches of 5, 5 and 2.
	run := func() []outcome {
		got := make([]outcome, len(writes))
		sendTogether(t, sc.co, len(writes), func(i int) {
			v, err := writes[i](withPath(ctx, fmt.Sprint(i)))
			got[i].value = v
			var e *events.Error
			if errors.As(err, &e) {
				got[i] = outcome{code: e.Code}
			} else if err != nil {
				got[i] = outcome{code: events.Code("not an *events.Error: " + err.Error())}
			}
		})
		return got
	}
	// batches returns the command count of each request seen, which must
	// all be store.batch.
	batches := func() []int {
		if err := watch.Flush(); err != nil {
			t.Fatal(err)
		}
		var sizes []int
		for {
			select {
			case m := <-requests:
				if m.Subject == events.CommandSubject(events.DefaultCommandPrefix, events.CmdStatus) {
					continue // the test's own
				}
				if m.Subject != events.CommandSubject(events.DefaultCommandPrefix, events.CmdBatch) {
					t.Errorf("single request on %s, want only store.batch", m.Subject)
					continue
				}
				var req events.BatchRequest
				if err := json.Unmarshal(m.Data, &req); err != nil {
					t.Fatal(err)
				}
				sizes = append(sizes, len(req.Commands))
			default:
				return sizes
			}
		}
	}
	normalize := func(got []outcome) {
		for i := range got {
			if r, ok := got[i].value.(events.Record); ok {
				// Compare the fields written, not the meta.
				got[i].value = events.Record{"id": r["id"], "balance": r["balance"]}
			}
			if rs, ok := got[i].value.([]any); ok && len(rs) == 1 {
				r, _ := rs[0].(map[string]any)
				got[i].value = []any{map[string]any{"id": r["id"], "balance": r["balance"]}}
			}
			if got[i].code != "" {
				got[i].value = nil
			}
		}
	}

	got := run()
	normalize(got)
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("write %d: got %#v, want %#v", i, got[i], want[i])
		}
	}
	if sizes := batches(); !reflect.DeepEqual(sizes, []int{5, 5, 2}) {
		t.Errorf("batch sizes %v, want [5 5 2]", sizes)
	}
	stream, err := cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}

	again := run()
	normalize(again)
	if !reflect.DeepEqual(again, got) {
		t.Errorf("sent again: %#v, want the first answers %#v", again, got)
	}
	if sizes := batches(); !reflect.DeepEqual(sizes, []int{5, 5, 2}) {
		t.Errorf("sent again: batch sizes %v, want [5 5 2]", sizes)
	}
	after, err := cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.LastSeq != stream.LastSeq {
		t.Errorf("sent again: stream at %d, was %d: a write applied twice", after.LastSeq, stream.LastSeq)
	}
	if rec, err := cl.Bucket("accounts").Get(ctx, "u"); err != nil || rec["balance"] != 5.0 {
		t.Errorf("u = %v, %v; want balance 5 (incremented once)", rec, err)
	}
}

// sendTogether runs write(0) … write(n-1) at once and returns when all
// have returned. No batch leaves until all n writes are queued (the
// senders are all taken meanwhile), so they go in batches of co.max.
func sendTogether(t *testing.T, co *coalescer, n int, write func(i int)) {
	t.Helper()
	co.mu.Lock()
	co.senders = maxSenders
	co.mu.Unlock()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { write(i) })
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		co.mu.Lock()
		queued := len(co.queue)
		if queued == n {
			co.senders = 1
		}
		co.mu.Unlock()
		if queued == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d writes queued", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
	go co.send()
	wg.Wait()
}

// Writes too big to go together (past the 1 MiB request and the server's
// max payload) go in smaller batches, down to one each, and each gets its
// own result, as it would alone.
func TestCoalescedWritesSplitPastTheCaps(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, cl := storeWith(ctx, t, events.BucketDef{Bucket: "blobs", Key: "id", Schema: map[string]events.FieldDef{
		"id":   {Type: events.TypeString, Required: true},
		"data": {Type: events.TypeString},
	}})
	sc := newStoreClient(cl, "set", "rule", 1)
	sc.co = newCoalescer(cl, 6)
	data := strings.Repeat("x", 200<<10) // under the record cap; six of them over the request's
	errs := make([]error, 6)
	sendTogether(t, sc.co, len(errs), func(i int) {
		_, errs[i] = sc.Insert(withPath(ctx, fmt.Sprint(i)), "blobs", events.Record{"id": fmt.Sprint(i), "data": data})
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("insert %d: %v", i, err)
			continue
		}
		if rec, err := cl.Bucket("blobs").Get(ctx, fmt.Sprint(i)); err != nil || rec["data"] != data {
			t.Errorf("blob %d: %d bytes, %v; want %d", i, len(fmt.Sprint(rec["data"])), err, len(data))
		}
	}
}

// storeWith starts a store node with def defined and returns its URL and
// a client of it, closed when the test ends.
func storeWith(ctx context.Context, t *testing.T, def events.BucketDef) (string, *client.Client) {
	t.Helper()
	url := storetest.Start(t)
	cl, err := client.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if err := cl.Define(ctx, def); err != nil {
		t.Fatal(err)
	}
	return url, cl
}
