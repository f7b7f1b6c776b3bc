package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/natstest"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/storenode"
)

// TestStatusShowsNodes: `storeloop status` lists every store node of the
// stream: one leader with its lease, one standby without.
func TestStatusShowsNodes(t *testing.T) {
	srv := natstest.Server(t)
	leader := storetest.StartNode(t, natstest.Connect(t, srv), storenode.WithLease(time.Second))
	standby := storetest.StartNode(t, natstest.Connect(t, srv), storenode.WithLease(time.Second))

	out, stderr, code := cli(t, srv.ClientURL(), "", "status")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got statusOutput
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if !got.Healthy || got.LastSeq != leader.Status().LastSeq {
		t.Fatalf("leader status %+v, want healthy at seq %d", got.StatusResult, leader.Status().LastSeq)
	}
	roles := map[string]events.NodeStatus{}
	for _, n := range got.Nodes {
		roles[n.Node] = n
	}
	l, s := roles[leader.NodeStatus().Node], roles[standby.NodeStatus().Node]
	if len(got.Nodes) != 2 || l.Role != events.RoleLeader || s.Role != events.RoleStandby {
		t.Fatalf("nodes %+v, want the leader and the standby", got.Nodes)
	}
	if l.Epoch == 0 || l.LeaseExpiry.IsZero() || s.Epoch != 0 || !s.LeaseExpiry.IsZero() {
		t.Fatalf("leases: leader %+v, standby %+v; want only the leader's", l, s)
	}
}
