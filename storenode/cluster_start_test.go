package storenode_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/procs"
)

// TestClusterStoreStartsDuringElection: a store node started while its
// streams have no leader (two of the three NATS servers down, so no
// quorum) waits for the cluster instead of failing, and says so once;
// when a second server is back and the streams elect leaders, it takes the
// lead and serves the state the stream holds, without a restart.
func TestClusterStoreStartsDuringElection(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-server NATS cluster and daemons as processes")
	}
	r := startClusterRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	orders := r.client.Bucket("orders")
	var written []events.Record
	for i := range 5 {
		rec, err := orders.Insert(ctx, events.Record{"userId": "u" + string(rune('1'+i)), "total": float64(10 * (i + 1))})
		if err != nil {
			t.Fatal(err)
		}
		written = append(written, rec)
	}
	for _, n := range r.nodes {
		n.Stop(t, 30*time.Second)
	}
	data := r.nodes[0].data

	// The stream leader's server and one more go: the last one has no
	// quorum, and neither the meta group nor any stream has a leader.
	leader := r.nats.Server(r.streamLeader(t))
	down := []*procs.NATSServer{leader}
	for _, s := range r.nats.Servers {
		if s != leader && len(down) < 2 {
			down = append(down, s)
		}
	}
	for _, s := range down {
		s.Kill(t)
	}

	addr := procs.FreeAddr(t)
	spec := procs.StorenodeSpec(t, data, "127.0.0.1:0", "--nats", r.urls, "--lease", haLease, "--http", addr, "--replicas", "3")
	p := procs.Start(t, spec)
	wait := p.WaitLine(t, true, "start: waiting for the NATS cluster", 2*time.Minute)
	t.Logf("the store node waits: %s", wait)
	if p.Exited() {
		t.Fatalf("the store node exited instead of waiting:\n%s", p.Output())
	}

	r.nats.Launch(t, down[0])
	ready := p.WaitLine(t, false, "storenode ready nats=", 2*time.Minute)
	_, url, _ := strings.Cut(ready, "nats=")
	n := &haNode{Storenode: &procs.Storenode{Proc: p, URL: url}, http: addr, data: data}
	n.waitReady(t, "ready: leader")
	if waits := p.Lines(true, "start: waiting for the NATS cluster"); len(waits) > 5 {
		// Once per start step at most: checks, stream, rule buckets,
		// dead letters, lease bucket.
		t.Errorf("the wait was logged %d times, want once per step:\n%s", len(waits), strings.Join(waits, "\n"))
	}

	got, err := orders.Where(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, written) {
		t.Fatalf("state after the start in an election:\n got %v\nwant %v", got, written)
	}
	rec, err := orders.Insert(ctx, events.Record{"userId": "u9", "total": 99.0})
	if err != nil {
		t.Fatalf("write after the start in an election: %v", err)
	}
	if rec["id"] != float64(len(written)+1) {
		t.Fatalf("the new order's id = %v, want %d", rec["id"], len(written)+1)
	}
}
