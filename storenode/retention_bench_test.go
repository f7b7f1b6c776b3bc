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
// of 256 deletes, 4 callers): events per second of each, and how late the
// expiries are after the records fell due (p50, p99, max of each deleted
// event's meta.time minus its due time; the bound: ≤ 1 s at 10k).
// The store's clock jumps past the ttl, so that every record falls due at
// one instant: a record's due time is its _updatedAt + ttl or the jump,
// whichever is later. One iteration is the whole run: use -benchtime=1x.
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
				due := time.Now().Add(time.Hour)
				offset.Store(int64(time.Hour))
				lastSeq(b, nc) // a command: the loop sets its timer by the clock
				waitCount(b, nc, "sessions", 0)
				first, last, late := expiryTimes(b, nc, start, n, time.Hour, due.UnixMilli())
				took := time.Duration(last-first) * time.Millisecond
				b.ReportMetric(float64(n)/max(took, time.Millisecond).Seconds(), "expiry-events/s")
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

// expiryTimes returns the meta.time of the first and the last of the n
// expiry events after seq, read with an ordered consumer, and each one's
// lateness in ms: its meta.time minus its due time, _updatedAt + ttl but
// not before jump (unix ms).
func expiryTimes(b *testing.B, nc *nats.Conn, seq uint64, n int, ttl time.Duration, jump int64) (first, last int64, late []int64) {
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
		if i == 0 {
			first = ev.Meta.Time
		}
		last = ev.Meta.Time
		due := max(int64(ev.Record[events.FieldUpdatedAt].(float64))+ttl.Milliseconds(), jump)
		late = append(late, ev.Meta.Time-due)
	}
	return first, last, late
}
