package storenode_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/natstest"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/storenode"
)

// TestTTLMassExpiryOnlyLeader: more records than one expiry group (500)
// fall due together on a leader with a standby. The leader expires each
// exactly once, in expiry order (_updatedAt, then key), in several
// groups; the standby, whose clock says the same, expires nothing and
// folds the leader's deletes; when the leader stops, the standby takes
// over with the same state and appends nothing but its marker.
func TestTTLMassExpiryOnlyLeader(t *testing.T) {
	const n = 1200
	srv := natstest.Server(t)
	nc := natstest.Connect(t, srv)
	leader := storetest.StartNode(t, natstest.Connect(t, srv), storenode.WithLease(testLease))
	standby := storetest.StartNode(t, natstest.Connect(t, srv), storenode.WithLease(testLease))
	if got := standby.NodeStatus().Role; got != events.RoleStandby {
		t.Fatalf("second node is %s, want standby", got)
	}
	define(t, nc, ttlSessionsDef("1s"))
	seq := lastSeq(t, nc)
	load(t, nc, "sessions", n)
	eventually(t, time.Minute, "every session to expire", func() bool { return count(t, nc, "sessions") == 0 })

	var deleted []streamMsg
	for _, m := range streamAfter(t, nc, seq) {
		if m.Subject == "bucket.sessions.deleted" {
			deleted = append(deleted, m)
		}
	}
	if len(deleted) != n {
		t.Fatalf("%d deleted events, want %d", len(deleted), n)
	}
	seen := map[string]bool{}
	for i, m := range deleted {
		ev := m.Event
		k := ev.Key.(string)
		due := int64(ev.Record[events.FieldUpdatedAt].(float64)) + time.Second.Milliseconds()
		if seen[k] || ev.Meta.Reason != events.ReasonTTL || ev.Meta.Time < due {
			t.Fatalf("deleted event %d: key %s (seen before: %v), meta %+v, due %d", i, k, seen[k], ev.Meta, due)
		}
		seen[k] = true
		if i > 0 {
			prev := deleted[i-1].Event
			pt, at := prev.Record[events.FieldUpdatedAt].(float64), ev.Record[events.FieldUpdatedAt].(float64)
			if at < pt || at == pt && k < prev.Key.(string) {
				t.Fatalf("expired out of order: %s (%v) after %s (%v)", k, at, prev.Key, pt)
			}
		}
	}

	want := snapshot(t, nc)
	last := leader.Status().LastSeq
	eventually(t, 20*time.Second, "the standby folds every expiry", func() bool { return standby.Status().LastSeq == last })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := leader.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the standby takes the lead", func() bool { return standby.NodeStatus().Role == events.RoleLeader })
	if got := snapshot(t, nc); got != want {
		t.Fatalf("state after failover differs:\n got %s\nwant %s", got, want)
	}
	if msgs := streamAfter(t, nc, last); len(msgs) != 1 || msgs[0].Subject != events.LeaderSubject {
		t.Fatalf("after the old leader's last seq: %d messages, want only the %s marker", len(msgs), events.LeaderSubject)
	}
}

// TestTTLBacklogInGroups: more records than one expiry group fall due
// while the node is down. The restarted node expires them all, in order,
// each once, before its first command is answered: the backlog is staged
// a few groups at a time (the publisher's pending acks stay bounded).
func TestTTLBacklogInGroups(t *testing.T) {
	const n = 2600
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ttlSessionsDef("1h"))
	load(t, nc, "sessions", n)
	seq := lastSeq(t, nc)
	restartNode(t, st, storenode.WithClock(func() time.Time { return time.Now().Add(2 * time.Hour) }))
	if got := count(t, nc, "sessions"); got != 0 {
		t.Fatalf("first command after the restart sees %d sessions, want 0", got)
	}
	msgs := streamAfter(t, nc, seq)
	if len(msgs) != n {
		t.Fatalf("%d events after the restart, want %d expiries", len(msgs), n)
	}
	seen := map[any]bool{}
	for i, m := range msgs {
		ev := m.Event
		if m.Subject != "bucket.sessions.deleted" || ev.Meta.Reason != events.ReasonTTL || seen[ev.Key] {
			t.Fatalf("event %d: %s %v %+v (seen before: %v)", i, m.Subject, ev.Key, ev.Meta, seen[ev.Key])
		}
		seen[ev.Key] = true
		if i > 0 {
			prev := msgs[i-1].Event
			pt, at := prev.Record[events.FieldUpdatedAt].(float64), ev.Record[events.FieldUpdatedAt].(float64)
			if at < pt || at == pt && ev.Key.(string) < prev.Key.(string) {
				t.Fatalf("expired out of order: %v (%v) after %v (%v)", ev.Key, at, prev.Key, pt)
			}
		}
	}
}

// TestTTLDueSetDecidedAtOnce: 12,000 records fall due at one instant (the
// store's clock jumps). Expiry takes the first 10,000 (ten groups, the
// in-flight bound) out of the state in one turn of the loop, their
// deletes all stamped with that instant; the rest follow a group at a
// time as groups commit. So a command, answered between turns, counts
// every record, or 2,000 or fewer in whole groups, never a part of the
// first ten groups; and the stream holds each delete once, in expiry
// order, never earlier than due.
func TestTTLDueSetDecidedAtOnce(t *testing.T) {
	const n, group, first = 12_000, 1000, 10_000
	var offset atomic.Int64
	st := storetest.StartStore(t, storenode.WithClock(func() time.Time {
		return time.Now().Add(time.Duration(offset.Load()))
	}))
	nc := st.Conn
	define(t, nc, ttlSessionsDef("1h"))
	load(t, nc, "sessions", n)
	seq := lastSeq(t, nc)

	offset.Store(int64(2 * time.Hour))
	var counts []int
	for c := -1; c != 0; {
		c = patientCount(t, nc, "sessions")
		counts = append(counts, c)
	}
	for _, c := range counts {
		if c != n && (c > n-first || c%group != 0) {
			t.Fatalf("a count during the expiry saw %d sessions (all counts: %v), want %d or at most %d in whole groups of %d", c, counts, n, n-first, group)
		}
	}

	msgs := streamAfter(t, nc, seq)
	if len(msgs) != n {
		t.Fatalf("%d events after the clock jump, want %d expiries", len(msgs), n)
	}
	decided := msgs[0].Event.Meta.Time
	seen := map[any]bool{}
	for i, m := range msgs {
		ev := m.Event
		due := int64(ev.Record[events.FieldUpdatedAt].(float64)) + time.Hour.Milliseconds()
		if m.Subject != "bucket.sessions.deleted" || ev.Meta.Reason != events.ReasonTTL || seen[ev.Key] || ev.Meta.Time < due {
			t.Fatalf("event %d: %s %v %+v due %d (seen before: %v)", i, m.Subject, ev.Key, ev.Meta, due, seen[ev.Key])
		}
		seen[ev.Key] = true
		if i < first && ev.Meta.Time != decided || ev.Meta.Time < decided {
			t.Fatalf("event %d stamped %d, want the first %d stamped %d and none before", i, ev.Meta.Time, first, decided)
		}
		if i > 0 {
			prev := msgs[i-1].Event
			pt, at := prev.Record[events.FieldUpdatedAt].(float64), ev.Record[events.FieldUpdatedAt].(float64)
			if at < pt || at == pt && ev.Key.(string) < prev.Key.(string) {
				t.Fatalf("expired out of order: %v (%v) after %v (%v)", ev.Key, at, prev.Key, pt)
			}
		}
	}
}

// patientCount is count with a deadline past any expiry burst: a command
// staged behind ten groups is answered once they are durable, which a
// slow machine (or the race detector) can stretch past request's 10 s.
func patientCount(t *testing.T, nc *nats.Conn, bucket string) int {
	t.Helper()
	body, _ := json.Marshal(events.CountRequest{Bucket: bucket})
	msg, err := nc.Request(events.CommandSubject(events.DefaultCommandPrefix, events.CmdCount), body, 2*time.Minute)
	if err != nil {
		t.Fatalf("count %s: %v", bucket, err)
	}
	var reply struct {
		Result *int
		Error  *events.Error
	}
	if err := json.Unmarshal(msg.Data, &reply); err != nil || reply.Error != nil || reply.Result == nil {
		t.Fatalf("count %s: %s (%v)", bucket, msg.Data, err)
	}
	return *reply.Result
}
