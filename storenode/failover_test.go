package storenode_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/events/proof"
	"github.com/storeloop/storeloop/internal/natstest"
	"github.com/storeloop/storeloop/internal/procs"
)

// Failover with real processes: one NATS server (embedded in the test,
// reached over TCP) and storenode daemons on --nats with a lease.

// haLease is the daemons' lease in these tests: short, so that a failover
// is quick; every deadline below is many leases long.
const haLease = "2s"

// haNode is a storenode daemon on --nats with its HTTP endpoints.
type haNode struct {
	*procs.Storenode
	http string
	data string
}

func startHA(t testing.TB, url, data string) *haNode {
	t.Helper()
	return startHAWith(t, url, data, haLease)
}

// startHAWith starts a node with the lease given and extra flags.
func startHAWith(t testing.TB, url, data, lease string, extra ...string) *haNode {
	t.Helper()
	addr := procs.FreeAddr(t)
	args := append([]string{"--nats", url, "--lease", lease, "--http", addr}, extra...)
	spec := procs.StorenodeSpec(t, data, "127.0.0.1:0", args...)
	return &haNode{Storenode: procs.StartStorenode(t, spec), http: addr, data: data}
}

// waitReady waits until the node's /readyz body starts with prefix
// ("ready: leader" or "standby").
func (h *haNode) waitReady(t testing.TB, prefix string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		body, err := procs.Get(ctx, "http://"+h.http+"/readyz")
		cancel()
		if err == nil && strings.HasPrefix(body, prefix) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz of %s: %q, %v; want %q", h.data, body, err, prefix)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serving counts the connections subscribed to the command subjects.
func serving(t testing.TB, srv *server.Server) int {
	t.Helper()
	cz, err := srv.Connz(&server.ConnzOptions{Subscriptions: true})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range cz.Conns {
		if slices.Contains(c.Subs, events.CommandSubject(events.DefaultCommandPrefix, events.CmdInsert)) {
			n++
		}
	}
	return n
}

// haLoad is concurrent writers inserting orders, each with its command
// id as the order's sku, through clients that retry across a failover.
type haLoad struct {
	mu    sync.Mutex
	acked map[string]float64 // command id → the order id it was given
	sent  map[string]string  // command id → the writer's user
	times []time.Time        // when each acknowledged write was executed (its _createdAt)
	stop  chan struct{}
	wg    sync.WaitGroup
}

// failoverClient is the failover tests' client: short attempts, so that
// one lost in the old leader is sent again soon.
var failoverClient = []client.Option{client.WithTimeout(time.Second), client.WithRetries(30), client.WithFailoverWait(30 * time.Second)}

// startLoad starts writers with clients of opts (none: the defaults).
func startLoad(t testing.TB, url string, writers int, pace time.Duration, opts ...client.Option) *haLoad {
	t.Helper()
	l := &haLoad{acked: map[string]float64{}, sent: map[string]string{}, stop: make(chan struct{})}
	for w := range writers {
		c, err := client.Connect(url, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		orders := c.Bucket("orders")
		user := fmt.Sprint("w", w)
		l.wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, n)
				l.mu.Lock()
				l.sent[id] = user
				l.mu.Unlock()
				ctx, cancel := context.WithTimeout(client.WithCommandID(context.Background(), id), 60*time.Second)
				rec, err := orders.Insert(ctx, events.Record{"userId": user, "sku": id, "total": float64(n)})
				cancel()
				if err != nil {
					continue // unacknowledged: retried by the check
				}
				time.Sleep(pace) // the load's rate, not a synchronisation
				l.mu.Lock()
				l.acked[id] = rec["id"].(float64)
				l.times = append(l.times, time.UnixMilli(int64(rec["_createdAt"].(float64))))
				l.mu.Unlock()
			}
		})
	}
	return l
}

func (l *haLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// waitAcks waits until n more writes than now are acknowledged.
func (l *haLoad) waitAcks(t testing.TB, n int) {
	t.Helper()
	want := l.count() + n
	eventually(t, 60*time.Second, fmt.Sprintf("%d acknowledgements", want), func() bool { return l.count() >= want })
}

// firstAckAfter waits for the first acknowledged write executed after at
// (by a leader's clock: its _createdAt) and returns how long after at.
func (l *haLoad) firstAckAfter(t testing.TB, at time.Time) time.Duration {
	t.Helper()
	return firstAfter(t, &l.mu, &l.times, at)
}

// firstAfter waits for the first of times (guarded by mu) after at and
// returns how long after at.
func firstAfter(t testing.TB, mu *sync.Mutex, times *[]time.Time, at time.Time) time.Duration {
	t.Helper()
	var first time.Time
	eventually(t, 60*time.Second, "a write acknowledged after the fault", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, ts := range *times {
			if ts.After(at) && (first.IsZero() || ts.Before(first)) {
				first = ts
			}
		}
		return !first.IsZero()
	})
	return first.Sub(at)
}

func (l *haLoad) finish() {
	close(l.stop)
	l.wg.Wait()
}

// check verifies that every acknowledged write is stored exactly once
// with the id it was acknowledged with, retries the unacknowledged ones
// by their command ids, and checks again: each is then stored once.
func (l *haLoad) check(t testing.TB, c *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	verify := func() {
		t.Helper()
		bySku := map[string]float64{}
		recs, err := c.Bucket("orders").Where(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			sku := r["sku"].(string)
			if _, ok := l.sent[sku]; !ok {
				t.Fatalf("order %v was never sent", r)
			}
			if _, dup := bySku[sku]; dup {
				t.Fatalf("%s stored twice", sku)
			}
			bySku[sku] = r["id"].(float64)
		}
		for id, orderID := range l.acked {
			if got, ok := bySku[id]; !ok || got != orderID {
				t.Fatalf("acknowledged %s (order %v) stored as %v, %v", id, orderID, got, ok)
			}
		}
	}
	verify()
	for id, user := range l.sent {
		if _, ok := l.acked[id]; ok {
			continue
		}
		rec, err := c.Bucket("orders").Insert(client.WithCommandID(ctx, id), events.Record{"userId": user, "sku": id, "total": 0.0})
		if err != nil {
			t.Fatalf("retry of %s: %v", id, err)
		}
		l.acked[id] = rec["id"].(float64)
	}
	verify()
}

// singleWriter checks the stream: after each leader marker, every message
// is proved by the key that proved the marker, up to the next marker. A
// deposed leader appending after its successor fenced the stream would
// break it.
func singleWriter(t testing.TB, nc *nats.Conn) (markers int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx, events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	last := s.CachedInfo().State.LastSeq
	writer := ""
	for seq := uint64(1); seq <= last; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		p, err := proof.Parse(m.Header.Get(proof.Header))
		if err != nil {
			t.Fatalf("seq %d (%s) without a valid proof: %v", seq, m.Subject, err)
		}
		switch {
		case m.Subject == events.LeaderSubject:
			writer = p.Key
			markers++
		case writer != "" && p.Key != writer:
			t.Fatalf("seq %d (%s) proved by %s after the marker of %s: two writers", seq, m.Subject, p.Key, writer)
		}
	}
	return markers
}

// loyaltyRules count each user's orders in loyalty.points.
const loyaltyRules = `name: failover
rules:
  - id: points
    on: [bucket.orders.inserted]
    then:
      - upsert:
          bucket: loyalty
          key: ${event.record.userId}
          record: { userId: "${event.record.userId}" }
          increment: { points: 1 }
`

// checkEffects waits until the rule set's consumer has nothing pending and
// checks that each user's points are its orders: every rule effect
// applied once.
func checkEffects(t *testing.T, nc *nats.Conn, c *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	js, _ := jetstream.New(nc)
	eventually(t, 120*time.Second, "the rule node has applied every event", func() bool {
		cons, err := js.Consumer(ctx, events.DefaultStream, "failover")
		if err != nil {
			return false
		}
		info, err := cons.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	orders := map[string]float64{}
	recs, err := c.Bucket("orders").Where(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		orders[r["userId"].(string)]++
	}
	points := map[string]float64{}
	if recs, err = c.Bucket("loyalty").Where(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		points[r["userId"].(string)] = r["points"].(float64)
	}
	if fmt.Sprint(points) != fmt.Sprint(orders) {
		t.Fatalf("loyalty points %v, want the orders per user %v", points, orders)
	}
}

// waitCaughtUp waits until a leader serves and a standby's lag is at most
// maxLag: a standby just restarted replays, then catches up.
func waitCaughtUp(t testing.TB, c *client.Client, maxLag uint64) {
	t.Helper()
	eventually(t, 120*time.Second, "a standby caught up with the leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		nodes, err := c.Nodes(ctx)
		if err != nil {
			return false
		}
		roles := map[string]int{}
		for _, n := range nodes {
			if n.Role == events.RoleLeader || n.Lag <= maxLag {
				roles[n.Role]++
			}
		}
		return roles[events.RoleLeader] == 1 && roles[events.RoleStandby] >= 1
	})
}

func haClient(t testing.TB, url string) *client.Client {
	t.Helper()
	c, err := client.Connect(url, client.WithFailoverWait(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestFailoverKill9: two store node daemons on one NATS server; exactly
// one serves and the other's /readyz says standby. Under a load of
// concurrent writers with command ids, and a rule node applying effects,
// the leader is killed (-9) twice (the killed one restarted as the
// standby): each time the standby takes over, every acknowledged write is
// stored exactly once, and every rule effect is applied once.
func TestFailoverKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills storenode daemons")
	}
	srv := natstest.Server(t)
	url := srv.ClientURL()
	nodes := []*haNode{startHA(t, url, t.TempDir())}
	nodes[0].waitReady(t, "ready: leader")
	nodes = append(nodes, startHA(t, url, t.TempDir()))
	nodes[1].waitReady(t, "standby")
	if n := serving(t, srv); n != 1 {
		t.Fatalf("%d connections serve the commands, want 1", n)
	}
	c := haClient(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, d := range []events.BucketDef{ordersDef(), loyaltyDef()} {
		if err := c.Define(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte(loyaltyRules), 0o600); err != nil {
		t.Fatal(err)
	}
	procs.StartRulenode(t, procs.RulenodeSpec(t, "rulenode", rules, url))

	load := startLoad(t, url, 8, 2*time.Millisecond, failoverClient...)
	for round := range 2 {
		load.waitAcks(t, 200)
		waitCaughtUp(t, c, 100)
		leader, standby := nodes[0], nodes[1]
		leader.Kill(t)
		killed := time.Now()
		took := load.firstAckAfter(t, killed)
		t.Logf("round %d: first write acknowledged %s after the kill", round, took)
		standby.waitReady(t, "ready: leader")
		// The killed one comes back, as the standby.
		nodes = []*haNode{standby, startHA(t, url, leader.data)}
		nodes[1].waitReady(t, "standby")
		eventually(t, 30*time.Second, "one node serves", func() bool { return serving(t, srv) == 1 })
	}
	load.waitAcks(t, 100)
	load.finish()
	t.Logf("%d acknowledged, %d sent", len(load.acked), len(load.sent))
	load.check(t, c)
	nc := natstest.Connect(t, srv)
	// The first leader's marker and one per failover; more if a renewal
	// starved past the lease on a loaded machine (the node then steps
	// down and leads again, legitimately).
	if markers := singleWriter(t, nc); markers < 3 {
		t.Fatalf("%d leader markers, want at least 3", markers)
	}
	checkEffects(t, nc, c)
}

// TestFailoverPausedLeader: a leader paused (SIGSTOP) longer than its
// lease loses it; the standby takes over and writes. Resumed, the old
// leader's writes are refused, it steps down to standby, and the stream
// shows one writer per leader epoch; no acknowledged write is lost or
// doubled.
func TestFailoverPausedLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and pauses storenode daemons")
	}
	srv := natstest.Server(t)
	url := srv.ClientURL()
	a := startHA(t, url, t.TempDir())
	a.waitReady(t, "ready: leader")
	b := startHA(t, url, t.TempDir())
	b.waitReady(t, "standby")
	c := haClient(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Define(ctx, ordersDef()); err != nil {
		t.Fatal(err)
	}

	load := startLoad(t, url, 8, 2*time.Millisecond, failoverClient...)
	load.waitAcks(t, 200)
	a.Pause()
	b.waitReady(t, "ready: leader")
	load.waitAcks(t, 100)
	a.Resume()
	a.waitReady(t, "standby")
	t.Logf("old leader: %s", a.WaitLine(t, true, "store node is a standby", 30*time.Second))
	load.waitAcks(t, 100)
	load.finish()
	load.check(t, c)
	if markers := singleWriter(t, natstest.Connect(t, srv)); markers < 2 {
		t.Fatalf("%d leader markers, want at least 2 (see TestFailoverKill9)", markers)
	}
	// Each became the leader (at least) once; now b leads.
	for _, m := range []struct {
		node   *haNode
		leader float64
	}{{a, 0}, {b, 1}} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		body, err := procs.Get(ctx, "http://"+m.node.http+"/metrics")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if l, f := procs.Sum(body, "storeloop_store_leader"), procs.Sum(body, "storeloop_store_failovers_total"); l != m.leader || f < 1 {
			t.Fatalf("%s: storeloop_store_leader %v, storeloop_store_failovers_total %v; want %v, at least 1", m.node.data, l, f, m.leader)
		}
	}
}
