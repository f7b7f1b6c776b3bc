package storenode_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/storenode"
)

// replayEvents is how many events BenchmarkReplay replays.
const replayEvents = 100_000

// BenchmarkReplay measures recovery: storenode.Start on a stream of
// replayEvents small inserts, which rebuilds the state by replaying the
// whole stream, beside the baseline of reading the same stream with a raw
// ordered consumer. Both report events/s.
//
// The events are appended directly with JetStream publishes (valid event
// bodies, as the store node writes them, without command ids) to fill the
// stream quickly: only the replay is measured.
func BenchmarkReplay(b *testing.B) {
	ctx := context.Background()
	st := storetest.StartStore(b)
	define(b, st.Conn, events.BucketDef{Bucket: "items", Key: "id", Schema: map[string]events.FieldDef{
		"id":   {Type: events.TypeNumber, Required: true},
		"n":    {Type: events.TypeNumber},
		"name": {Type: events.TypeString},
	}})
	if err := st.Node.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	js, err := jetstream.New(st.Conn, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	if err := fillItems(ctx, js, replayEvents); err != nil {
		b.Fatal(err)
	}
	stream, err := js.Stream(ctx, events.DefaultStream)
	if err != nil {
		b.Fatal(err)
	}
	total := stream.CachedInfo().State.Msgs // the definition too
	if total < replayEvents {
		b.Fatalf("%d messages in the stream, want %d events and more", total, replayEvents)
	}

	b.Run("storenode.Start", func(b *testing.B) {
		var replay time.Duration
		for b.Loop() {
			start := time.Now()
			n, err := storenode.Start(ctx, st.Conn, storenode.WithLogger(slog.New(slog.DiscardHandler)),
				storenode.WithEmbeddedSync(st.Dir))
			replay += time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			var count int
			mustCall(b, st.Conn, events.CmdCount, events.CountRequest{Bucket: "items"}, &count)
			if count != replayEvents {
				b.Fatalf("after replay, %d items, want %d", count, replayEvents)
			}
			if err := n.Stop(ctx); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(total)*float64(b.N)/replay.Seconds(), "events/s")
	})

	b.Run("ordered-consumer", func(b *testing.B) {
		for b.Loop() {
			if err := readAll(ctx, stream, total); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// fillItems appends n inserted events of the items bucket.
func fillItems(ctx context.Context, js jetstream.JetStream, n int) error {
	now := time.Now().UnixMilli()
	for i := 1; i <= n; i++ {
		key := float64(i)
		body, err := json.Marshal(events.Event{
			Type: events.OpInserted, Bucket: "items", Key: key,
			Record: events.Record{"id": key, "n": key, "name": "item-" + strconv.Itoa(i),
				events.FieldVersion: 1, events.FieldCreatedAt: now, events.FieldUpdatedAt: now},
			Meta: events.Meta{EventID: fmt.Sprintf("bench-%d", i), Time: now, CorrelationID: fmt.Sprintf("bench-%d", i)},
		})
		if err != nil {
			return err
		}
		if _, err := js.PublishAsync(events.EventSubject("items", events.OpInserted), body); err != nil {
			return err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// readAll reads the stream's first total messages with an ordered
// consumer, as replay does, without decoding them.
func readAll(ctx context.Context, s jetstream.Stream, total uint64) error {
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return err
	}
	it, err := c.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		return err
	}
	defer it.Stop()
	for range total {
		if _, err := it.Next(); err != nil {
			return err
		}
	}
	return nil
}
