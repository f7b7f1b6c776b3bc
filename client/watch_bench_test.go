package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// BenchmarkWatchLatency measures, in one run, how long after a write is
// sent its change reaches a watch of the bucket and a raw NATS
// subscription on the same subjects (bucket.orders.>): the watch's cost
// over the baseline is reading the event from JetStream through an ordered
// consumer, decoding and matching it. Each iteration writes once and waits
// for both, so the figures are latencies, not throughput.
func BenchmarkWatchLatency(b *testing.B) {
	url := storetest.Start(b)
	c, err := client.Connect(url, client.WithTimeout(5*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.Define(ctx, ordersDef); err != nil {
		b.Fatal(err)
	}
	orders := c.Bucket("orders")
	if _, err := orders.Insert(ctx, events.Record{"userId": "a", "total": 0.0}); err != nil {
		b.Fatal(err)
	}

	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	rawAt := make(chan time.Time, 1)
	sub, err := nc.Subscribe("bucket.orders.>", func(*nats.Msg) { rawAt <- time.Now() })
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}

	w, err := c.Watch(ctx, "orders", events.Where{"total": map[string]any{"$gte": 0}})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	for range 2 { // the snapshot line and ready
		if _, err := w.Next(ctx); err != nil {
			b.Fatal(err)
		}
	}
	watchAt := make(chan time.Time, 1)
	go func() {
		for {
			if _, err := w.Next(ctx); err != nil {
				return
			}
			watchAt <- time.Now()
		}
	}()

	var raw, watch time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := orders.Update(ctx, 1, events.Record{"total": float64(i + 1)}); err != nil {
			b.Fatal(err)
		}
		raw += (<-rawAt).Sub(start)
		watch += (<-watchAt).Sub(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(raw.Microseconds())/float64(b.N), "raw-µs/change")
	b.ReportMetric(float64(watch.Microseconds())/float64(b.N), "watch-µs/change")
}
