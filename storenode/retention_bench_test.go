package storenode_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/storenode"
)

// BenchmarkExpiry measures, in the same run on one embedded server (the
// default batch fsync), TTL expiry of n records all due at once against
// the raw baseline of deleting the same n records by command (store.batch
// of 256 deletes, 4 callers): events per second of each (expiry's from
// the clock jump until a store.count answers 0: the last delete is
// durable), and how late the
// expiries are after the records fell due (p50, p99, max of each deleted
// event's meta.time minus its due time; the bound: ≤ 1 s at 10k).
// The store's clock jumps past the ttl, so that every record falls due at
// one instant: a record's due time is its _updatedAt + ttl or the jump,
// whichever is later. Beside them: how long after the jump the last
// delete is durable (a store.count answers 0), and the slowest reply to
// a store.get sent one after the other from the jump until then (a
// command's wait behind the burst). One iteration is the whole run: use
// -benchtime=1x.
func BenchmarkExpiry(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			for b.Loop() {
				var offset atomic.Int64
				st := storetest.StartStore(b, storenode.WithClock(func() time.Time {
					return time.Now().Add(time.Duration(offset.Load()))
				}))
				nc := st.Conn
				def := ttlSessionsDef("1h")
				plain := sessionsDef()
				plain.Bucket = "plain"
				define(b, nc, def, plain)
				load(b, nc, "sessions", n)
				load(b, nc, "plain", n)

				start := lastSeq(b, nc)
				jumped := time.Now()
				due := jumped.Add(time.Hour)
				offset.Store(int64(time.Hour))
				probe := probeGets(b, nc, "plain", sessionKey(0))
				lastSeq(b, nc) // a command: the loop sets its timer by the clock
				waitCount(b, nc, "sessions", 0)
				durable := time.Since(jumped)
				b.ReportMetric(float64(durable.Milliseconds()), "durable-ms")
				b.ReportMetric(float64(n)/durable.Seconds(), "expiry-events/s")
				b.ReportMetric(float64(probe().Milliseconds()), "get-max-ms")
				late := expiryLateness(b, nc, start, n, time.Hour, due.UnixMilli())
				slices.Sort(late)
				b.ReportMetric(float64(late[len(late)/2]), "p50-late-ms")
				b.ReportMetric(float64(late[len(late)*99/100]), "p99-late-ms")
				b.ReportMetric(float64(late[len(late)-1]), "max-late-ms")

				began := time.Now()
				deleteAll(b, nc, "plain", n)
				b.ReportMetric(float64(n)/time.Since(began).Seconds(), "delete-events/s")
			}
		})
	}
}

// probeGets sends store.get of key in bucket one after the other until
// the returned stop is called, which returns the slowest reply's wait.
func probeGets(b testing.TB, nc *nats.Conn, bucket, key string) (stop func() time.Duration) {
	b.Helper()
	body, _ := json.Marshal(events.GetRequest{Bucket: bucket, Key: key})
	done := make(chan struct{})
	slowest := make(chan time.Duration, 1)
	var failed atomic.Value
	go func() {
		var worst time.Duration
		defer func() { slowest <- worst }()
		for {
			select {
			case <-done:
				return
			default:
			}
			sent := time.Now()
			if _, err := request(nc, events.CmdGet, body); err != nil {
				failed.Store(err)
				return
			}
			worst = max(worst, time.Since(sent))
		}
	}()
	return func() time.Duration {
		close(done)
		worst := <-slowest
		if err, ok := failed.Load().(error); ok {
			b.Fatal(err)
		}
		return worst
	}
}

func sessionKey(i int) string { return fmt.Sprintf("u%07d", i) }

// load inserts n sessions by store.batch, 256 a request, 4 callers.
func load(b testing.TB, nc *nats.Conn, bucket string, n int) {
	b.Helper()
	batches(b, nc, n, func(i int) events.BatchCommand {
		return events.BatchCommand{Cmd: events.CmdInsert, Bucket: bucket, Record: events.Record{"userId": sessionKey(i), "token": "t"}}
	})
}

func deleteAll(b testing.TB, nc *nats.Conn, bucket string, n int) {
	b.Helper()
	batches(b, nc, n, func(i int) events.BatchCommand {
		return events.BatchCommand{Cmd: events.CmdDelete, Bucket: bucket, Key: sessionKey(i)}
	})
}

func batches(b testing.TB, nc *nats.Conn, n int, cmd func(i int) events.BatchCommand) {
	b.Helper()
	const per, callers = 256, 4
	next := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Value
	for range callers {
		wg.Go(func() {
			for from := range next {
				var req events.BatchRequest
				for i := from; i < min(from+per, n); i++ {
					req.Commands = append(req.Commands, cmd(i))
				}
				body, _ := json.Marshal(req)
				reply, err := request(nc, events.CmdBatch, body)
				var res events.BatchResult
				if err == nil {
					err = json.Unmarshal(reply, &struct{ Result *events.BatchResult }{&res})
				}
				for _, r := range res.Results {
					if r.Error != nil && err == nil {
						err = r.Error
					}
				}
				if err != nil {
					failed.Store(err)
				}
			}
		})
	}
	for from := 0; from < n; from += per {
		next <- from
	}
	close(next)
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
}

func waitCount(b *testing.B, nc *nats.Conn, bucket string, want int) {
	b.Helper()
	eventually(b, 5*time.Minute, fmt.Sprintf("%s at %d records", bucket, want), func() bool { return count(b, nc, bucket) == want })
}

// expiryLateness reads the n expiry events after seq with an ordered
// consumer and returns each one's lateness in ms: its meta.time minus its
// due time, _updatedAt + ttl but not before jump (unix ms).
func expiryLateness(b *testing.B, nc *nats.Conn, seq uint64, n int, ttl time.Duration, jump int64) (late []int64) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	c, err := js.OrderedConsumer(ctx, events.DefaultStream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: seq + 1})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		m, err := c.Next(jetstream.FetchMaxWait(30 * time.Second))
		if err != nil {
			b.Fatalf("event %d after the clock jump: %v", i, err)
		}
		var ev events.Event
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			b.Fatal(err)
		}
		if ev.Meta.Reason != events.ReasonTTL {
			b.Fatalf("event %d: %s reason %q, want only expiries", i, m.Subject(), ev.Meta.Reason)
		}
		due := max(int64(ev.Record[events.FieldUpdatedAt].(float64))+ttl.Milliseconds(), jump)
		late = append(late, ev.Meta.Time-due)
	}
	return late
}
