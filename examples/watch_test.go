package examples_test

import (
	"testing"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
)

// A reactive query on the sessions scenario: the users online, as the
// rules mark them on login and the store's expiry of their sessions takes
// them off; a logout (no expiry) leaves its user online.
func TestWatchOnlineUsers(t *testing.T) {
	s, _ := startAdjusted(t, "sessions", func(d *events.BucketDef) {
		if d.Bucket == "sessions" {
			d.TTL = "2s"
		}
	})
	s.runRules(rulenode.WithConcurrency(1)) // rule writes in stream order
	users := []string{"alice", "carol", "bob"}
	for _, u := range users {
		s.insert("users", events.Record{"id": u, "name": u})
	}
	w, err := s.cl.Watch(s.ctx, "users", events.Where{"online": true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	type line struct {
		typ, key string
		online   any
	}
	var got []line
	next := func() {
		ch, err := w.Next(s.ctx)
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		key, _ := ch.Key.(string)
		got = append(got, line{ch.Type, key, ch.Record["online"]})
	}
	next() // nobody online yet: no snapshot line, ready
	for _, u := range users {
		s.insert("sessions", events.Record{"userId": u, "token": "tok-" + u})
	}
	s.delete("sessions", "bob") // a logout, well before the ttl: bob stays online
	for range 5 {
		next()
	}
	want := []line{{"ready", "", nil},
		{"added", "alice", true}, {"added", "carol", true}, {"added", "bob", true},
		{"removed", "alice", false}, {"removed", "carol", false}}
	if len(got) != len(want) {
		t.Fatalf("lines %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("lines %v, want %v", got, want)
		}
	}
	s.noDeadLetters()
}
