package storenode_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/procs"
)

// A real cluster: three nats-server processes as one JetStream cluster,
// the stream at --replicas 3, two store node daemons (leader and standby)
// and two rule node daemons, all given every server's URL.

type clusterRig struct {
	nats   *procs.NATSCluster
	urls   string
	nodes  []*haNode
	client *client.Client
	nc     *nats.Conn
}

func startClusterRig(t testing.TB) *clusterRig {
	t.Helper()
	r := &clusterRig{nats: procs.StartNATSCluster(t, t.TempDir(), 3)}
	r.urls = r.nats.URLs()
	r.nodes = []*haNode{r.startNode(t, t.TempDir())}
	r.nodes[0].waitReady(t, "ready: leader")
	r.nodes = append(r.nodes, r.startNode(t, t.TempDir()))
	r.nodes[1].waitReady(t, "standby")
	r.client = haClient(t, r.urls)
	nc, err := nats.Connect(r.urls, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	r.nc = nc
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, d := range []events.BucketDef{ordersDef(), loyaltyDef()} {
		if err := r.client.Define(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func (r *clusterRig) startNode(t testing.TB, data string) *haNode {
	t.Helper()
	return startHAWith(t, r.urls, data, haLease, "--replicas", "3")
}

func (r *clusterRig) startRulenodes(t *testing.T) {
	t.Helper()
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte(loyaltyRules), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		// The defaults ride through an election: no flag for it.
		procs.StartRulenode(t, procs.RulenodeSpec(t, fmt.Sprint("rulenode", i), rules, r.urls))
	}
}

// streamLeader is the name of the server leading the event stream's group.
func (r *clusterRig) streamLeader(t testing.TB) string {
	t.Helper()
	return r.leaderOf(t, events.DefaultStream)
}

// leaderOf is the name of the server leading stream's group.
func (r *clusterRig) leaderOf(t testing.TB, stream string) string {
	t.Helper()
	var leader string
	eventually(t, 60*time.Second, stream+" has a leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		js, _ := jetstream.New(r.nc)
		s, err := js.Stream(ctx, stream)
		if err != nil || s.CachedInfo().Cluster == nil {
			return false
		}
		leader = s.CachedInfo().Cluster.Leader
		return leader != ""
	})
	return leader
}

// waitStreamsLed waits until every stream (the events, the key-value
// buckets, the dead letters) has a leader: after a restart of the whole
// cluster they elect one after the servers are healthy, and a store node
// starting before that fails its first request (a supervisor would start it
// again; the test waits instead).
func (r *clusterRig) waitStreamsLed(t testing.TB) {
	t.Helper()
	js, _ := jetstream.New(r.nc)
	eventually(t, 60*time.Second, "every stream has a leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		streams := js.ListStreams(ctx)
		n := 0
		for info := range streams.Info() {
			if info.Cluster == nil || info.Cluster.Leader == "" {
				return false
			}
			n++
		}
		return streams.Err() == nil && n > 0
	})
}

// serverOfStoreLeader is the server the serving store node is connected
// to: the one whose connections include a subscriber to the commands.
func (r *clusterRig) serverOfStoreLeader(t testing.TB) *procs.NATSServer {
	t.Helper()
	subject := `"` + events.CommandSubject(events.DefaultCommandPrefix, events.CmdInsert) + `"`
	for _, s := range r.nats.Servers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		body, err := procs.Get(ctx, "http://"+s.Monitor+"/connz?subs=1")
		cancel()
		if err == nil && strings.Contains(body, subject) {
			return s
		}
	}
	t.Fatal("no server has the store leader's connection")
	return nil
}

// victim is a way to pick the NATS server to kill.
type victim struct {
	what string
	pick func() *procs.NATSServer
}

// victims: the stream leader's server, the store leader's server, and a
// server that is neither (if there is one).
func (r *clusterRig) victims(t testing.TB) []victim {
	return []victim{
		{"the stream leader's server", func() *procs.NATSServer { return r.nats.Server(r.streamLeader(t)) }},
		{"the store leader's server", func() *procs.NATSServer { return r.serverOfStoreLeader(t) }},
		{"another server", func() *procs.NATSServer {
			for _, s := range r.nats.Servers {
				if s.Name != r.streamLeader(t) && s != r.serverOfStoreLeader(t) {
					return s
				}
			}
			return r.nats.Servers[0]
		}},
	}
}

// killServer kills (-9) the server pick chooses once the load has had 200
// more writes acknowledged, returns how long after the kill the first
// write was acknowledged, and restarts the server once 100 more were.
func (r *clusterRig) killServer(t testing.TB, load *haLoad, v victim) time.Duration {
	t.Helper()
	load.waitAcks(t, 200)
	s := v.pick()
	// The roles overlap: one server may lead the stream and carry the
	// store leader's connection.
	leads, carries := s.Name == r.streamLeader(t), s == r.serverOfStoreLeader(t)
	leasing := s.Name == r.leaderOf(t, "KV_"+events.LeaseBucket)
	s.Kill(t)
	killed := time.Now()
	took := load.firstAckAfter(t, killed)
	t.Logf("killed %s, %s (stream leader %v, lease bucket leader %v, the store leader's %v): first write acknowledged %s after",
		v.what, s.Name, leads, leasing, carries, took)
	load.waitAcks(t, 100)
	r.nats.Restart(t, s)
	r.waitStreamsLed(t)
	return took
}

// logNodeWarnings logs what the faults did to the store nodes: their
// warnings and errors (rebuilds, lease losses, waits).
func (r *clusterRig) logNodeWarnings(t testing.TB) {
	t.Helper()
	for _, n := range r.nodes {
		for _, l := range n.Lines(true, "level=") {
			t.Log(n.data, l)
		}
	}
}

// state is every record of the test's buckets, by bucket.
func (r *clusterRig) state(t *testing.T) map[string][]events.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := map[string][]events.Record{}
	for _, b := range []string{"orders", "loyalty"} {
		recs, err := r.client.Bucket(b).Where(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		out[b] = recs
	}
	return out
}

// TestClusterNATSServerLoss: under a load of concurrent writers with
// command ids and two rule nodes, all with their default options (no
// tuning for elections), one NATS server of three is killed (-9)
// at a time, then restarted: the stream leader's server, then the server
// the store leader is connected to. Writes resume each time (how soon is
// logged, and measured by BenchmarkClusterNATSServerLoss); every
// acknowledged write is stored exactly once and every rule effect applied
// once. Then the leader store node is killed (failover), and finally
// everything is stopped and restarted: the state is what it was.
func TestClusterNATSServerLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-server NATS cluster and daemons as processes")
	}
	r := startClusterRig(t)
	r.startRulenodes(t)
	load := startLoad(t, r.urls, 8, 2*time.Millisecond)
	for _, v := range r.victims(t)[:2] {
		r.killServer(t, load, v)
	}

	// Failover of the store node, the cluster whole again.
	load.waitAcks(t, 100)
	waitCaughtUp(t, r.client, 100)
	leader, standby := r.nodes[0], r.nodes[1]
	if body, _ := procs.Get(context.Background(), "http://"+standby.http+"/readyz"); strings.HasPrefix(body, "ready: leader") {
		leader, standby = standby, leader
	}
	leader.Kill(t)
	killed := time.Now()
	t.Logf("killed the leader store node: first write acknowledged %s after", load.firstAckAfter(t, killed))
	standby.waitReady(t, "ready: leader")
	r.nodes = []*haNode{standby, r.startNode(t, leader.data)}
	r.nodes[1].waitReady(t, "standby")
	load.waitAcks(t, 100)
	load.finish()
	t.Logf("%d acknowledged, %d sent", len(load.acked), len(load.sent))
	load.check(t, r.client)
	singleWriter(t, r.nc)
	checkEffects(t, r.nc, r.client)
	noDeadLetters(t, r.nc)

	// Stop everything and start it again: the same state.
	before := r.state(t)
	for _, n := range r.nodes {
		n.Stop(t, 30*time.Second)
	}
	for _, s := range r.nats.Servers {
		s.Stop(t, 30*time.Second)
	}
	r.nats.Restart(t, r.nats.Servers...)
	r.waitStreamsLed(t)
	for i, n := range r.nodes {
		r.nodes[i] = r.startNode(t, n.data)
	}
	eventually(t, 60*time.Second, "one store node leads", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		nodes, err := r.client.Nodes(ctx)
		return err == nil && len(nodes) == 2 && (nodes[0].Role == events.RoleLeader) != (nodes[1].Role == events.RoleLeader)
	})
	if after := r.state(t); !reflect.DeepEqual(after, before) {
		t.Fatalf("state after the restart differs:\nbefore %v\nafter  %v", before, after)
	}
}

// noDeadLetters checks that no event was dead-lettered: the rule nodes
// rode through every fault.
func noDeadLetters(t *testing.T, nc *nats.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx, events.DefaultDeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 0 {
		t.Fatalf("%d dead letters, want none", n)
	}
}
