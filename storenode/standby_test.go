package storenode_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/natstest"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/storenode"
)

// testLease is short, so that tests wait little for expiries; the
// deadlines below are many leases long.
const testLease = time.Second

// TestStandbyFollowsAndTakesOver: of two nodes with a lease the first
// leads and the second follows the stream (state and dedupe table); when
// the leader stops, the standby takes over and answers a retried command
// id with its first reply, applying nothing twice.
func TestStandbyFollowsAndTakesOver(t *testing.T) {
	srv := natstest.Server(t)
	nc := natstest.Connect(t, srv)
	leader := storetest.StartNode(t, natstest.Connect(t, srv), storenode.WithLease(testLease))
	standby := storetest.StartNode(t, natstest.Connect(t, srv), storenode.WithLease(testLease))
	if got := leader.NodeStatus().Role; got != events.RoleLeader {
		t.Fatalf("first node is %s, want leader", got)
	}
	if got := standby.NodeStatus().Role; got != events.RoleStandby {
		t.Fatalf("second node is %s, want standby", got)
	}
	if text, err := standby.Ready(); err != nil || text[:8] != "standby:" {
		t.Fatalf("standby Ready() = %q, %v; want a standby text", text, err)
	}

	define(t, nc, ordersDef())
	var first events.Record
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "a", "total": 1.0}}, &first,
		events.HeaderCommandID, "cmd-1")
	for i := range 20 {
		mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": fmt.Sprint("u", i), "total": 2.0}}, nil)
	}
	want := snapshot(t, nc)
	last := leader.Status().LastSeq
	eventually(t, 20*time.Second, "the standby folds every event", func() bool { return standby.Status().LastSeq == last })
	if lag := standby.NodeStatus().Lag; lag != 0 {
		t.Fatalf("standby lag %d after catching up, want 0", lag)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := leader.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the standby takes the lead", func() bool { return standby.NodeStatus().Role == events.RoleLeader })
	if got := snapshot(t, nc); got != want {
		t.Fatalf("state after failover differs:\n got %s\nwant %s", got, want)
	}
	// The marker fenced the stream: one message past the leader's last.
	msgs := streamAfter(t, nc, last)
	if len(msgs) != 1 || msgs[0].Subject != events.LeaderSubject {
		t.Fatalf("after the old leader's last seq: %+v, want one %s marker", msgs, events.LeaderSubject)
	}
	var again events.Record
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "a", "total": 1.0}}, &again,
		events.HeaderCommandID, "cmd-1")
	if fmt.Sprint(again) != fmt.Sprint(first) {
		t.Fatalf("retried command id answered %v, want the first reply %v", again, first)
	}
	wantNoNewEvents(t, nc, msgs[0].Seq)
	var rec events.Record
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "b", "total": 3.0}}, &rec)
	if rec["id"] != 22.0 {
		t.Fatalf("new leader's insert got id %v, want 22 (autoincrement followed)", rec["id"])
	}
}

// TestFencedLeaderStepsDown: a leader whose lease was taken while it still
// believed it held it (a paused process, here the key deleted behind its
// back) has its next write refused, steps down to standby, and follows
// the new leader; nothing it was refused is applied.
func TestFencedLeaderStepsDown(t *testing.T) {
	srv := natstest.Server(t)
	nc := natstest.Connect(t, srv)
	// A long lease: the old node renews only every 7.5 s, so it still
	// believes it leads when the new one has taken over and writes.
	const lease = 30 * time.Second
	old := storetest.StartNode(t, natstest.Connect(t, srv), storenode.WithLease(lease), storenode.WithCommandPrefix("old"))
	oldID := old.NodeStatus().Node
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, events.LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	defineOn(t, nc, "old", ordersDef())

	// The key deleted: the new node acquires it at start and fences the
	// stream while the old one's clock still says it leads.
	if err := kv.Delete(ctx, events.DefaultStream); err != nil {
		t.Fatal(err)
	}
	next := storetest.StartNode(t, natstest.Connect(t, srv), storenode.WithLease(lease))
	if got := next.NodeStatus().Role; got != events.RoleLeader {
		t.Fatalf("new node is %s, want leader", got)
	}
	insert := events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "late", "total": 1.0}}
	e := callOn(t, nc, "old", events.CmdInsert, insert)
	// Refused by the stream (the marker moved its last sequence), not by
	// the old node's clock: its lease is still good by it.
	if e == nil || e.Code != events.CodeUnavailable || e.Message != "append failed, nothing applied: retry" {
		t.Fatalf("old leader's write: %v, want unavailable: append failed", e)
	}
	eventually(t, 20*time.Second, "the old leader steps down", func() bool { return old.NodeStatus().Role == events.RoleStandby })
	if got := queryAll(t, nc, "orders", events.Where{"userId": "late"}, 10); len(got) != 0 {
		t.Fatalf("refused write applied: %v", got)
	}
	mustCall(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "new", "total": 2.0}}, nil)
	eventually(t, 20*time.Second, "the old leader follows the new one", func() bool {
		return old.Status().LastSeq == next.Status().LastSeq && old.Status().Healthy
	})
	entry, err := kv.Get(ctx, events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	var holder events.Lease
	json.Unmarshal(entry.Value(), &holder)
	if holder.Node != next.NodeStatus().Node || holder.Node == oldID {
		t.Fatalf("lease held by %q, want the new node %q", holder.Node, next.NodeStatus().Node)
	}
}

// defineOn defines buckets through the node serving prefix.
func defineOn(t *testing.T, nc *nats.Conn, prefix string, defs ...events.BucketDef) {
	t.Helper()
	for _, d := range defs {
		if e := callOn(t, nc, prefix, events.CmdDefine, d); e != nil {
			t.Fatal(e)
		}
	}
}

// callOn sends one command to the node serving prefix; no responder is
// unavailable, as the client reports it.
func callOn(t *testing.T, nc *nats.Conn, prefix, cmd string, req any) *events.Error {
	t.Helper()
	body, _ := json.Marshal(req)
	m, err := nc.Request(events.CommandSubject(prefix, cmd), body, 10*time.Second)
	if err == nats.ErrNoResponders {
		return events.Errorf(events.CodeUnavailable, "no responders")
	}
	if err != nil {
		t.Fatal(err)
	}
	return decodeReply(t, cmd, m.Data, nil)
}

// TestLeaseBucketTTLWins: a node configured with another lease than the
// bucket's joins as a standby under the bucket's (its clock must not
// outlast the server's expiry), and takes over when the leader stops.
func TestLeaseBucketTTLWins(t *testing.T) {
	srv := natstest.Server(t)
	nc := natstest.Connect(t, srv)
	leader := storetest.StartNode(t, natstest.Connect(t, srv), storenode.WithLease(testLease))
	other := storetest.StartNode(t, natstest.Connect(t, srv), storenode.WithLease(20*time.Second))
	if got := other.NodeStatus().Role; got != events.RoleStandby {
		t.Fatalf("second node is %s, want standby", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := leader.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the other node takes the lead", func() bool { return other.NodeStatus().Role == events.RoleLeader })
	// It holds the lease for the bucket's TTL, not its own 20 s.
	if until := other.NodeStatus().LeaseExpiry; time.Until(until) > 2*testLease {
		t.Fatalf("lease held until %s (in %s), want within the bucket's TTL of %s", until, time.Until(until), testLease)
	}
	define(t, nc, ordersDef())
}
