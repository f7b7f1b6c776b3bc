package rulenode_test

import (
	"context"
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
	st := storetest.StartStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := client.Connect(st.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
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
}
