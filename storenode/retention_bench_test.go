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
// command's wait behind the burst). With writers, as many callers insert
// into another bucket (store.batch of 64) from before the jump until the
// last delete is durable: expiry under a steady command load. One
// iteration is the whole run: use -benchtime=1x.
func BenchmarkExpiry(b *testing.B) {
	for _, c := range []struct{ n, writers int }{{10_000, 0}, {100_000, 0}, {10_000, 2}} {
		name := fmt.Sprintf("records=%d", c.n)
		if c.writers > 0 {
			name += fmt.Sprintf("-writers=%d", c.writers)
		}
		n := c.n
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				var offset atomic.Int64
				st := storetest.StartStore(b, storenode.WithClock(func() time.Time {
					return time.Now().Add(time.Duration(offset.Load()))
				}))
				nc := st.Conn
				def := ttlSessionsDef("1h")
				plain := sessionsDef()
				plain.Bucket = "plain"
				busy := sessionsDef()
				busy.Bucket = "busy"
				define(b, nc, def, plain, busy)
				load(b, nc, "sessions", n)
				load(b, nc, "plain", n)

				writes := keepWriting(b, nc, "busy", c.writers)
				start := lastSeq(b, nc)
				jumped := time.Now()
				due := jumped.Add(time.Hour)
				offset.Store(int64(time.Hour))
				probe := probeGets(b, nc, "plain", sessionKey(0))
				lastSeq(b, nc) // a command: the loop sets its timer by the clock
				waitCount(b, nc, "sessions", 0)
				durable := time.Since(jumped)
				if c.writers > 0 {
					b.ReportMetric(float64(writes())/durable.Seconds(), "writer-inserts/s")
				}
				b.ReportMetric(float64(durable.Milliseconds()), "durable-ms")
				b.ReportMetric(float64(n)/durable.Seconds(), "expiry-events/s")
				b.ReportMetric(float64(probe().Milliseconds()), "get-max-ms")
				late := expiryLateness(b, nc, start, n, time.Hour, due.UnixMilli(), "bucket.sessions.deleted")
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

// keepWriting has callers insert into bucket by store.batch of 64, one
// request after the other each, until the returned stop is called, which
// returns how many records they inserted.
func keepWriting(b testing.TB, nc *nats.Conn, bucket string, callers int) (stop func() int) {
	b.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	var inserted atomic.Int64
	var failed atomic.Value
	for w := range callers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				var req events.BatchRequest
				for j := range 64 {
					key := fmt.Sprintf("w%d-%d-%d", w, i, j)
					req.Commands = append(req.Commands, events.BatchCommand{Cmd: events.CmdInsert, Bucket: bucket, Record: events.Record{"userId": key, "token": "t"}})
				}
				body, _ := json.Marshal(req)
				if _, err := request(nc, events.CmdBatch, body); err != nil {
					failed.Store(err)
					return
				}
				inserted.Add(64)
			}
		})
	}
	return func() int {
		close(done)
		wg.Wait()
		if err, ok := failed.Load().(error); ok {
			b.Fatal(err)
		}
		return int(inserted.Load())
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

// expiryLateness reads the n expiry events after seq on subject with an
// ordered consumer and returns each one's lateness in ms: its meta.time
// minus its due time, _updatedAt + ttl but not before jump (unix ms).
func expiryLateness(b *testing.B, nc *nats.Conn, seq uint64, n int, ttl time.Duration, jump int64, subject string) (late []int64) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	c, err := js.OrderedConsumer(ctx, events.DefaultStream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: seq + 1, FilterSubjects: []string{subject}})
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
