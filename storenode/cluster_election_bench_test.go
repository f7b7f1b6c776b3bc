package storenode_test

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/procs"
)

// BenchmarkClusterElection measures what storeloop adds to an election of
// the event stream's leader. Each round kills (-9) the server leading the
// stream, under a load of 8 writers with the client's default options,
// while 8 plain nats.go publishers write to a baseline stream (replicas 3)
// that the same server leads (moved there by a leader stepdown before the
// kill). From the kill it measures: when the event stream has a new
// leader (its LEADER_ELECTED advisory received), the first publish
// acknowledged on the baseline (raw JetStream, as received: its own
// election, as random as the event stream's), and the first acknowledged
// store write executed after the kill (its _createdAt: a write retried
// across the kill and answered from the dedupe table does not count).
// Storeloop's own cost is the time from the event stream's election to
// that write. It also counts the kills after which a store node became
// the leader (again): the leader lost its lease, a store failover. b.N is
// ignored: run it with -benchtime 1x -v.
func BenchmarkClusterElection(b *testing.B) {
	kills := *electionKills
	r := startClusterRig(b)
	load := startLoad(b, r.urls, 8, 2*time.Millisecond)
	raw := startRawPublishers(b, r.urls, 8, 2*time.Millisecond)
	var electTook, rawTook, storeTook, added []time.Duration
	failedOver := 0
	for range kills {
		load.waitAcks(b, 200)
		leader := r.streamLeader(b)
		raw.leadOn(b, r, leader)
		raw.waitAcks(b, 200)
		s := r.nats.Server(leader)
		carries := s == r.serverOfStoreLeader(b)
		leasing := s.Name == r.leaderOf(b, "KV_"+events.LeaseBucket)
		survivor := r.nats.Servers[0]
		if survivor == s {
			survivor = r.nats.Servers[1]
		}
		elections := r.watchElection(b, events.DefaultStream, survivor)
		failovers := r.failovers(b)
		s.Kill(b)
		killed := time.Now()
		et := elections.electedAfter(b, killed)
		st, rt := load.firstAckAfter(b, killed), raw.firstAckAfter(b, killed)
		load.waitAcks(b, 100)
		failover := r.failovers(b) > failovers
		if failover {
			failedOver++
		}
		b.Logf("killed %s at %s (led the stream and the baseline; the lease bucket %v; carried the store leader's connection %v): "+
			"stream leader elected %s after, raw JetStream ack %s, storeloop ack %s: storeloop after the election %s; store failover %v",
			s.Name, killed.Format("15:04:05.000"), leasing, carries, et, rt, st, st-et, failover)
		electTook, rawTook, storeTook, added = append(electTook, et), append(rawTook, rt), append(storeTook, st), append(added, st-et)
		r.nats.Restart(b, s)
		r.waitStreamsLed(b)
	}
	load.finish()
	raw.finish()
	load.check(b, r.client)
	r.logNodeWarnings(b)
	for _, d := range [][]time.Duration{electTook, rawTook, storeTook, added} {
		slices.Sort(d)
	}
	b.Logf("stream leader elected: %v", electTook)
	b.Logf("raw JetStream ack:     %v", rawTook)
	b.Logf("storeloop ack:         %v", storeTook)
	b.Logf("storeloop - election:  %v", added)
	b.Logf("store failovers: after %d of %d kills", failedOver, kills)
	var moves float64
	for _, n := range r.nodes {
		moves += nodeMetric(b, n, "storeloop_store_lease_moves_total")
	}
	b.Logf("lease bucket leader moves: %v", moves)
	b.ReportMetric(electTook[len(electTook)/2].Seconds(), "elected-p50-s")
	b.ReportMetric(rawTook[len(rawTook)/2].Seconds(), "raw-p50-s")
	b.ReportMetric(rawTook[len(rawTook)-1].Seconds(), "raw-max-s")
	b.ReportMetric(storeTook[len(storeTook)/2].Seconds(), "storeloop-p50-s")
	b.ReportMetric(storeTook[len(storeTook)-1].Seconds(), "storeloop-max-s")
	b.ReportMetric(added[len(added)/2].Seconds(), "added-p50-s")
	b.ReportMetric(float64(failedOver)/float64(kills), "failovers/kill")
}

var electionKills = flag.Int("election.kills", 10, "kills of the event stream leader's server in BenchmarkClusterElection")

// failovers is how many times the rig's store nodes became the leader,
// the sum of their storeloop_store_failovers_total.
func (r *clusterRig) failovers(t testing.TB) float64 {
	t.Helper()
	var total float64
	for _, n := range r.nodes {
		total += nodeMetric(t, n, "storeloop_store_failovers_total")
	}
	return total
}

// electionWatch receives the advisories of stream's leader elections on
// a connection to a server that will survive the kill.
type electionWatch struct {
	sub *nats.Subscription
	nc  *nats.Conn
}

func (r *clusterRig) watchElection(t testing.TB, stream string, survivor *procs.NATSServer) *electionWatch {
	t.Helper()
	nc, err := nats.Connect(survivor.URL)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := nc.SubscribeSync("$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED." + stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &electionWatch{sub: sub, nc: nc}
}

// electedAfter waits for the advisory of a new leader and returns how
// long after since it arrived.
func (w *electionWatch) electedAfter(t testing.TB, since time.Time) time.Duration {
	t.Helper()
	defer w.nc.Close()
	if _, err := w.sub.NextMsg(60 * time.Second); err != nil {
		t.Fatalf("no leader elected 60 s after the kill: %v", err)
	}
	return time.Since(since)
}

// baselineStream is the raw publishers' stream, beside the event stream.
const baselineStream = "BASELINE"

// rawPublishers publish to baselineStream with plain nats.go, each
// sending again at once (no retries of the library, no backoff) after a
// failure.
type rawPublishers struct {
	nc   *nats.Conn
	mu   sync.Mutex
	acks []time.Time // when each publish ack was received
	stop chan struct{}
	wg   sync.WaitGroup
}

func startRawPublishers(t testing.TB, urls string, n int, pace time.Duration) *rawPublishers {
	t.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: baselineStream, Subjects: []string{"baseline.>"},
		Storage: jetstream.FileStorage, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	p := &rawPublishers{nc: nc, stop: make(chan struct{})}
	for i := range n {
		p.wg.Go(func() {
			subject := fmt.Sprint("baseline.", i)
			for {
				select {
				case <-p.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_, err := js.Publish(ctx, subject, []byte(`{"total":1}`), jetstream.WithRetryAttempts(0))
				cancel()
				if err != nil {
					continue
				}
				p.mu.Lock()
				p.acks = append(p.acks, time.Now())
				p.mu.Unlock()
				time.Sleep(pace) // the load's rate, not a synchronisation
			}
		})
	}
	return p
}

// leadOn makes server lead baselineStream (a stepdown to it, if another
// leads it) and waits until it does.
func (p *rawPublishers) leadOn(t testing.TB, r *clusterRig, server string) {
	t.Helper()
	eventually(t, 60*time.Second, baselineStream+" led by "+server, func() bool {
		if r.leaderOf(t, baselineStream) == server {
			return true
		}
		_, _ = p.nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+baselineStream,
			[]byte(`{"placement":{"preferred":"`+server+`"}}`), 5*time.Second)
		return false
	})
}

func (p *rawPublishers) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acks)
}

// waitAcks waits until n more publishes than now are acknowledged.
func (p *rawPublishers) waitAcks(t testing.TB, n int) {
	t.Helper()
	want := p.count() + n
	eventually(t, 60*time.Second, fmt.Sprintf("%d raw acknowledgements", want), func() bool { return p.count() >= want })
}

// firstAckAfter waits for the first publish acknowledged after at and
// returns how long after at.
func (p *rawPublishers) firstAckAfter(t testing.TB, at time.Time) time.Duration {
	t.Helper()
	return firstAfter(t, &p.mu, &p.acks, at)
}

func (p *rawPublishers) finish() {
	close(p.stop)
	p.wg.Wait()
}
