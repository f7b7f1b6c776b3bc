package rulenode

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// openTestRegistry starts a store (which makes the event stream) and
// opens the registry on it.
func openTestRegistry(t *testing.T) (*Registry, jetstream.JetStream) {
	t.Helper()
	st := storetest.StartStore(t)
	js, err := jetstream.New(st.Conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg, err := OpenRegistry(ctx, js, events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	return reg, js
}

func countRules(n int) []byte {
	return fmt.Appendf(nil, `name: counted
rules:
  - id: count
    on: [bucket.orders.inserted]
    then:
      - upsert: { bucket: stats, key: all, record: { id: all }, increment: { n: %d } }
`, n)
}

// Concurrent deploys of one set get distinct versions, 1 to n, each with
// its switch sequence decided, in version order.
func TestRegistryConcurrentDeploys(t *testing.T) {
	reg, _ := openTestRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 6
	got := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			d, unchanged, err := reg.Deploy(ctx, countRules(i+1), "test")
			if err != nil || unchanged {
				t.Errorf("deploy %d: %v, unchanged %v", i, err, unchanged)
				return
			}
			got[i] = d.Version
		})
	}
	wg.Wait()
	seen := map[int]bool{}
	for _, v := range got {
		seen[v] = true
	}
	if len(seen) != n {
		t.Errorf("versions %v, want %d distinct", got, n)
	}
	hist, err := reg.History(ctx, "counted")
	if err != nil || len(hist) != n {
		t.Fatalf("history: %d versions, %v; want %d", len(hist), err, n)
	}
	for i, d := range hist {
		if d.Version != i+1 || d.Pending() || d.By != "test" || d.Hash != SourceHash([]byte(d.Source)) {
			t.Errorf("version %d = %+v", i+1, d)
		}
		if i > 0 && d.From < hist[i-1].From {
			t.Errorf("version %d from %d, before version %d's %d", d.Version, d.From, i, hist[i-1].From)
		}
	}
}

// Deploy refuses what lint refuses, storing nothing; the same file again
// is the current version, unchanged; a rollback copies the rules.
func TestRegistryDeployChecks(t *testing.T) {
	reg, js := openTestRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	loop := []byte(`name: counted
rules:
  - id: echo
    on: [bucket.stats.updated]
    then:
      - update: { bucket: stats, key: all, increment: { n: 1 } }
`)
	_, _, err := reg.Deploy(ctx, loop, "test")
	if !errors.Is(err, events.ErrValidation) {
		t.Errorf("deploy of a loop: %v, want a validation error", err)
	}
	var les LoadErrors
	if _, _, err := reg.Deploy(ctx, []byte("name: counted\nrules: []\n"), "test"); !errors.As(err, &les) {
		t.Errorf("deploy of an invalid file: %v, want LoadErrors", err)
	}
	if _, err := reg.History(ctx, "counted"); !errors.Is(err, ErrNotDeployed) || !errors.Is(err, events.ErrNotFound) {
		t.Errorf("history after refused deploys: %v, want not deployed", err)
	}

	d1, _, err := reg.Deploy(ctx, countRules(1), "alice")
	if err != nil {
		t.Fatal(err)
	}
	// The first version made the consumer, starting at its From.
	c, err := js.Consumer(ctx, events.DefaultStream, "counted")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := c.CachedInfo().Config; cfg.OptStartSeq != d1.From || cfg.DeliverPolicy != jetstream.DeliverByStartSequencePolicy {
		t.Errorf("consumer starts %s at %d, want at version 1's from %d", cfg.DeliverPolicy, cfg.OptStartSeq, d1.From)
	}
	again, unchanged, err := reg.Deploy(ctx, countRules(1), "bob")
	if err != nil || !unchanged || again.Version != 1 || again.By != "alice" {
		t.Errorf("same file again = %+v, unchanged %v, %v; want version 1 unchanged", again, unchanged, err)
	}
	// A version on a new subject widens the consumer before it takes over.
	wider := []byte(`name: counted
rules:
  - id: count-deletes
    on: [bucket.orders.deleted]
    then:
      - upsert: { bucket: stats, key: all, record: { id: all }, increment: { n: -1 } }
`)
	if _, _, err := reg.Deploy(ctx, wider, "alice"); err != nil {
		t.Fatal(err)
	}
	if c, err = js.Consumer(ctx, events.DefaultStream, "counted"); err != nil {
		t.Fatal(err)
	}
	if f := c.CachedInfo().Config.FilterSubjects; fmt.Sprint(f) != "[bucket.orders.deleted bucket.orders.inserted]" {
		t.Errorf("consumer filters %v, want both versions' subjects", f)
	}
	rb, err := reg.Rollback(ctx, "counted", 1, "carol")
	if err != nil || rb.Version != 3 || rb.RollbackOf != 1 || rb.Source != d1.Source || rb.Hash != d1.Hash {
		t.Errorf("rollback = %+v, %v; want version 3 with version 1's rules", rb, err)
	}
	if _, err := reg.Rollback(ctx, "counted", 9, "carol"); !errors.Is(err, ErrNotDeployed) {
		t.Errorf("rollback to a missing version: %v, want not deployed", err)
	}
}
