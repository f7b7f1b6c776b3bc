package examples_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/rulenode"
	"github.com/storeloop/storeloop/storenode"
)

// startAdjusted is startStore with the scenario's bucket definitions
// adjusted first (a ttl a test can wait out), returning the store too so
// that a test can restart it.
func startAdjusted(t *testing.T, name string, adjust func(*events.BucketDef)) (*scenario, *storetest.Store) {
	t.Helper()
	return startScenario(t, name, 60*time.Second, adjust)
}

// Sessions expire (ttl) and the rule marks their users offline; a logout
// (a delete by command) is not an expiry; the login log keeps the latest
// three (maxSize), evicting the oldest.
func TestSessions(t *testing.T) {
	s, _ := startAdjusted(t, "sessions", func(d *events.BucketDef) {
		switch d.Bucket {
		case "sessions":
			d.TTL = "1s"
		case "recentLogins":
			d.MaxSize = 3
		}
	})
	// One worker: events in stream order, so a login's rule runs before
	// its expiry's even when the machine is slow to settle.
	s.runRules(rulenode.WithConcurrency(1))
	users := []string{"alice", "bob", "carol", "dave"}
	for _, u := range users {
		s.insert("users", events.Record{"id": u, "name": u})
	}
	for _, u := range users {
		s.insert("sessions", events.Record{"userId": u, "token": "tok-" + u})
	}
	s.settle()
	s.delete("sessions", "bob") // a logout
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := s.cl.Bucket("sessions").Count(s.ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions left after 30s, want them expired", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.settle()
	wantRecords(t, "users", s.records("users", nil), []events.Record{
		{"id": "alice", "name": "alice", "online": false, events.FieldVersion: 3.0},
		{"id": "bob", "name": "bob", "online": true, events.FieldVersion: 2.0},
		{"id": "carol", "name": "carol", "online": false, events.FieldVersion: 3.0},
		{"id": "dave", "name": "dave", "online": false, events.FieldVersion: 3.0},
	})
	reasons := map[string]string{}
	for _, ev := range s.events("bucket.sessions.deleted") {
		reasons[ev.Key.(string)] = ev.Meta.Reason
	}
	if want := map[string]string{"alice": "ttl", "bob": "", "carol": "ttl", "dave": "ttl"}; !maps.Equal(reasons, want) {
		t.Errorf("session deletes by reason %v, want %v", reasons, want)
	}
	if logins := s.records("recentLogins", nil, "at"); len(logins) != 3 {
		t.Errorf("recent logins %v, want the latest 3", logins)
	}
	evicted := s.events("bucket.recentLogins.deleted")
	if len(evicted) != 1 || evicted[0].Meta.Reason != events.ReasonMaxSize {
		t.Errorf("evictions %s, want one with reason maxSize", dump(evicted))
	}
	s.noDeadLetters()
}

// The seed's derived statistics as a view give the numbers the rules
// give, under 1000 concurrent orders and concurrent updates and deletes of
// them, and a restarted store rebuilds the view identically. (Where the
// rules leave a user at orderCount 0, the view has no record: a group
// with no orders left is deleted.)
func TestUserStatsView(t *testing.T) {
	s, st := startAdjusted(t, "userstats", func(*events.BucketDef) {})
	s.runRules()
	orders := s.cl.Bucket("orders")
	const n, workers = 1000, 16
	ids := make([]any, n)
	parallel(t, n, workers, func(i int) error {
		r, err := orders.Insert(s.ctx, events.Record{"userId": fmt.Sprint("u", i%23), "total": float64(1 + i%97)})
		if err == nil {
			ids[i] = r["id"]
		}
		return err
	})
	s.settle()
	compareStats(t, s)

	// Every third order changes its total, every fifth goes.
	parallel(t, n, workers, func(i int) error {
		var err error
		switch {
		case i%5 == 0:
			_, err = orders.Delete(s.ctx, ids[i])
		case i%3 == 0:
			_, err = orders.Update(s.ctx, ids[i], events.Record{"total": float64(rand.IntN(500))})
		}
		return err
	})
	// All of u0's orders go: its view record goes with them.
	parallel(t, n, workers, func(i int) error {
		if i%23 != 0 || i%5 == 0 {
			return nil
		}
		_, err := orders.Delete(s.ctx, ids[i])
		return err
	})
	s.settle()
	compareStats(t, s)
	if r, err := s.cl.Bucket("userStatsView").Get(s.ctx, "u0"); err != nil || r != nil {
		t.Fatalf("u0 has no orders: view record %v, %v", r, err)
	}

	want := s.records("userStatsView", nil)
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if err := st.Node.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	st.Node = storetest.StartNode(t, st.Conn, storenode.WithEmbeddedSync(st.Dir))
	wantRecords(t, "view after restart", s.records("userStatsView", nil), want)
	s.noDeadLetters()
}

// compareStats checks the view against the rules' userStats and against
// the orders themselves (the max, which the rules do not keep).
func compareStats(t *testing.T, s *scenario) {
	t.Helper()
	view := map[string]events.Record{}
	for _, r := range s.records("userStatsView", nil) {
		view[r["userId"].(string)] = r
	}
	ruled := 0
	for _, r := range s.records("userStats", nil) {
		u := r["userId"].(string)
		if r["orderCount"] == 0.0 {
			if r["totalSpent"] != 0.0 || view[u] != nil {
				t.Errorf("%s: rules %v, view %v; want no orders and no view record", u, r, view[u])
			}
			continue
		}
		ruled++
		v := view[u]
		if v == nil || v["orderCount"] != r["orderCount"] || v["totalSpent"] != r["totalSpent"] ||
			v["avgOrder"] != r["totalSpent"].(float64)/r["orderCount"].(float64) {
			t.Errorf("%s: rules %v, view %v", u, r, v)
		}
	}
	if ruled != len(view) {
		t.Errorf("%d users with orders by the rules, %d in the view", ruled, len(view))
	}
	byUser := map[string][]events.Record{}
	for _, o := range s.records("orders", nil) {
		byUser[o["userId"].(string)] = append(byUser[o["userId"].(string)], o)
	}
	for u, os := range byUser {
		maxTotal := 0.0
		for _, o := range os {
			maxTotal = max(maxTotal, o["total"].(float64))
		}
		if v := view[u]; v["maxOrder"] != maxTotal {
			t.Errorf("%s: view max %v, orders' max %v", u, v["maxOrder"], maxTotal)
		}
	}
}

// parallel runs fn(0..n-1) on workers goroutines, failing on any error.
func parallel(t *testing.T, n, workers int, fn func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					errs <- fmt.Errorf("%d: %w", i, err)
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
