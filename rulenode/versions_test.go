package rulenode_test

import (
	"context"
	"encoding/json"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/natstest"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/rulenode"
)

// Two deployed runners in this process (for the race detector) switch
// from version 1 to 2 while orders are inserted from 4 goroutines: every
// event is handled once, by the version whose range holds it.
func TestDeployedRunnersSwitch(t *testing.T) {
	st, ctx, cl, js, reg := startVersioned(t)
	runCtx, stopRunners := context.WithCancel(ctx)
	var runners sync.WaitGroup
	for range 2 {
		nc := natstest.Connect(t, st.Server)
		rcl, err := client.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		rjs, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		r, err := rulenode.NewDeployedRunner(ctx, rjs, rcl, "versioned", rulenode.WithConcurrency(4))
		if err != nil {
			t.Fatal(err)
		}
		runners.Go(func() {
			if err := r.Run(runCtx); err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	insert := func(n int) {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range n / 4 {
					if _, err := cl.Bucket("orders").Insert(ctx, events.Record{}); err != nil {
						t.Errorf("insert: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	var load sync.WaitGroup
	load.Go(func() { insert(80) })
	if _, _, err := reg.Deploy(ctx, []byte(versionedRules(2)), "test"); err != nil {
		t.Fatal(err)
	}
	load.Wait()
	insert(20)
	if err := cl.Settle(ctx, client.SettleRuleSets("versioned")); err != nil {
		t.Fatal(err)
	}
	stopRunners()
	runners.Wait()

	hist, err := reg.History(ctx, "versioned")
	if err != nil || len(hist) != 2 {
		t.Fatalf("history %d versions, %v", len(hist), err)
	}
	handled, err := cl.Bucket("handled").Where(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(handled) != 100 {
		t.Errorf("%d orders handled, want 100", len(handled))
	}
	for _, h := range handled {
		want := 1.0
		if uint64(h["seq"].(float64)) >= hist[1].From {
			want = 2
		}
		if h["version"] != want {
			t.Errorf("event %v handled by version %v, want %v (switch at %d)", h["seq"], h["version"], want, hist[1].From)
		}
	}
	// Each write's meta names the version whose rule made it.
	cons, err := js.OrderedConsumer(ctx, events.DefaultStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.EventSubject("handled", events.OpInserted)}})
	if err != nil {
		t.Fatal(err)
	}
	for range len(handled) {
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := events.DecodeEvent(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		if float64(ev.Meta.RuleVersion) != ev.Record["version"] || ev.Meta.RuleID != "record-order" {
			t.Errorf("write of version %v has meta rule %s version %d", ev.Record["version"], ev.Meta.RuleID, ev.Meta.RuleVersion)
		}
	}
}

// A version whose switch is not decided (a deploy cut short between its
// two writes) holds the events delivered after it appeared until the next
// deploy decides it; they were in the stream before its switch sequence,
// so the old version handles them.
func TestPendingVersionHoldsEvents(t *testing.T) {
	_, ctx, cl, js, reg := startVersioned(t)
	r, err := rulenode.NewDeployedRunner(ctx, js, cl, "versioned")
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	handled := func(n int) map[float64]float64 {
		t.Helper()
		for {
			recs, err := cl.Bucket("handled").Where(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) >= n {
				byOrder := map[float64]float64{}
				for _, h := range recs {
					byOrder[h["orderId"].(float64)] = h["version"].(float64)
				}
				return byOrder
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%d handled, waiting for %d", len(recs), n)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	insert := func() {
		t.Helper()
		if _, err := cl.Bucket("orders").Insert(ctx, events.Record{}); err != nil {
			t.Fatal(err)
		}
	}
	insert()
	handled(1)

	kv, err := js.KeyValue(ctx, rulenode.RulesBucket)
	if err != nil {
		t.Fatal(err)
	}
	v2 := versionedRules(2)
	body, _ := json.Marshal(rulenode.Deployment{Name: "versioned", Version: 2, Source: v2, Hash: rulenode.SourceHash([]byte(v2)), By: "cut short"})
	if _, err := kv.Create(ctx, "versioned.2", body); err != nil {
		t.Fatal(err)
	}
	insert()
	// The runner holds order 2: delivered, not acknowledged, not handled.
	cons, err := js.Consumer(ctx, events.DefaultStream, "versioned")
	if err != nil {
		t.Fatal(err)
	}
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 1 && info.NumPending == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("order 2 not held: %d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if n, err := cl.Bucket("handled").Count(ctx, nil); err != nil || n != 1 {
		t.Fatalf("handled %d, %v while version 2 is pending; want 1", n, err)
	}

	d3, _, err := reg.Deploy(ctx, []byte(versionedRules(3)), "test")
	if err != nil || d3.Version != 3 {
		t.Fatalf("deploy = %+v, %v; want version 3", d3, err)
	}
	insert()
	got := handled(3)
	if want := map[float64]float64{1: 1, 2: 1, 3: 3}; !reflect.DeepEqual(got, want) {
		t.Errorf("order → version %v, want %v", got, want)
	}
	hist, err := reg.History(ctx, "versioned")
	if err != nil || len(hist) != 3 || hist[1].Pending() || hist[1].From > hist[2].From {
		t.Errorf("history %v, %v: want version 2 decided before version 3", hist, err)
	}
}

// startVersioned starts a store with the versioned buckets defined and
// version 1 of the versioned rule set deployed. The context ends with the
// test, at most 60s on.
func startVersioned(t *testing.T) (*storetest.Store, context.Context, *client.Client, jetstream.JetStream, *rulenode.Registry) {
	t.Helper()
	st := storetest.StartStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	cl, err := client.Connect(st.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	for _, def := range versionedBuckets {
		if err := cl.Define(ctx, def); err != nil {
			t.Fatal(err)
		}
	}
	js, err := jetstream.New(st.Conn)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := rulenode.OpenRegistry(ctx, js, events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Deploy(ctx, []byte(versionedRules(1)), "test"); err != nil {
		t.Fatal(err)
	}
	return st, ctx, cl, js, reg
}
