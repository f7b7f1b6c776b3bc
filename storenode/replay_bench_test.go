package storenode_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/events/proof"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/internal/streamread"
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
// bodies, as the store node writes them, without command ids, proved in
// flights of replayFlight with the node's key) to fill the stream quickly:
// only the replay is measured.
func BenchmarkReplay(b *testing.B) {
	ctx := context.Background()
	kp, err := nkeys.CreateServer()
	if err != nil {
		b.Fatal(err)
	}
	st := storetest.StartStore(b, storenode.WithProofKey(kp))
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
	if err := fillItems(ctx, js, kp, replayEvents); err != nil {
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

	for _, sc := range []struct {
		name string
		opt  storenode.Option
	}{{"storenode.Start", storenode.WithProofKey(kp)}, {"storenode.Start/proofs-off", storenode.WithoutProofs()}} {
		b.Run(sc.name, func(b *testing.B) {
			var replay time.Duration
			for b.Loop() {
				start := time.Now()
				n, err := storenode.Start(ctx, st.Conn, storenode.WithLogger(slog.New(slog.DiscardHandler)),
					storenode.WithEmbeddedSync(st.Dir), sc.opt)
				replay += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				var count int
				mustCall(b, st.Conn, events.CmdCount, events.CountRequest{Bucket: "items"}, &count)
				if count != replayEvents || n.Status().Quarantined != 0 {
					b.Fatalf("after replay, %d items, want %d; status %+v", count, replayEvents, n.Status())
				}
				if err := n.Stop(ctx); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(total)*float64(b.N)/replay.Seconds(), "events/s")
		})
	}

	// A start from a snapshot at the stream's end (the tail empty): what
	// a restart costs once snapshots are taken.
	b.Run("storenode.Start/from-snapshot", func(b *testing.B) {
		n, err := storenode.Start(ctx, st.Conn, storenode.WithLogger(slog.New(slog.DiscardHandler)), storenode.WithProofKey(kp))
		if err != nil {
			b.Fatal(err)
		}
		info, err := n.Snapshot(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("snapshot of %d records at seq %d: %d bytes, loop paused %dµs", info.Records, info.Seq, info.Bytes, info.PauseMicros)
		if err := n.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		var ready time.Duration
		for b.Loop() {
			start := time.Now()
			n, err := storenode.Start(ctx, st.Conn, storenode.WithLogger(slog.New(slog.DiscardHandler)), storenode.WithProofKey(kp))
			ready += time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if n.SnapshotSeq() != info.Seq {
				b.Fatalf("started from seq %d, want the snapshot's %d", n.SnapshotSeq(), info.Seq)
			}
			if err := n.Stop(ctx); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(ready.Seconds()*1000/float64(b.N), "ms-to-ready")
		b.ReportMetric(float64(total)*float64(b.N)/ready.Seconds(), "events/s")
	})

	// What replay reads with, without decoding or folding: the raw
	// stream read rate replay is measured against.
	b.Run("streamread", func(b *testing.B) {
		for b.Loop() {
			var got uint64
			if err := streamread.All(ctx, js, events.DefaultStream, func(uint64, jetstream.Msg) error { got++; return nil }); err != nil {
				b.Fatal(err)
			}
			if got != total {
				b.Fatalf("read %d messages, want %d", got, total)
			}
		}
		b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
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

// replayFlight is the group commit size fillItems proves events in: a
// store under load commits flights of tens of events; replay verifies one
// signature per flight.
const replayFlight = 64

// fillItems appends n inserted events of the items bucket after the
// stream's single message, proved with kp in flights of replayFlight.
func fillItems(ctx context.Context, js jetstream.JetStream, kp nkeys.KeyPair, n int) error {
	return fillItemsFrom(ctx, js, kp, 1, n)
}

// fillItemsFrom appends n inserted events of the items bucket, keys from
// first on, after the stream's last message, chained to it and proved
// with kp in flights of replayFlight.
func fillItemsFrom(ctx context.Context, js jetstream.JetStream, kp nkeys.KeyPair, first, n int) error {
	signer, err := proof.NewSigner(events.DefaultStream, kp)
	if err != nil {
		return err
	}
	stream, err := js.Stream(ctx, events.DefaultStream)
	if err != nil {
		return err
	}
	lastSeq := stream.CachedInfo().State.LastSeq
	last, err := stream.GetMsg(ctx, lastSeq)
	if err != nil {
		return err
	}
	p, err := proof.Parse(last.Header.Get(proof.Header))
	if err != nil {
		return err
	}
	prev := proof.Leaf(events.DefaultStream, proof.Message{Seq: lastSeq, Subject: last.Subject, Body: last.Data}, p.Prev)
	var flight []*nats.Msg
	flightStart := 0 // events already proved
	prove := func() error {
		pms := make([]proof.Message, len(flight))
		for i, m := range flight {
			pms[i] = proof.Message{Seq: lastSeq + 1 + uint64(i) + uint64(flightStart), Subject: m.Subject, Body: m.Data}
		}
		hdrs, last, err := signer.Sign(pms, prev)
		if err != nil {
			return err
		}
		prev = last
		for i, m := range flight {
			m.Header.Set(proof.Header, hdrs[i])
			// A busy machine may stall the server for a while: wait, not fail.
			if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
				return err
			}
		}
		flightStart += len(flight)
		flight = flight[:0]
		return nil
	}
	now := time.Now().UnixMilli()
	for i := first; i < first+n; i++ {
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
		m := nats.NewMsg(events.EventSubject("items", events.OpInserted))
		m.Data = body
		if flight = append(flight, m); len(flight) == replayFlight || i == first+n-1 {
			if err := prove(); err != nil {
				return err
			}
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

// replayTxEvents is how many events BenchmarkReplayTx replays, written
// by store.tx commands of replayTxOps inserts each.
const (
	replayTxEvents = 50_000
	replayTxOps    = 500
)

// BenchmarkReplayTx measures a start on a stream written by large
// transactions (the heavy case of issue 11: 500-op store.tx batches with
// command ids, so replay also rebuilds each one's reply), from the whole
// stream and from a snapshot, beside the raw stream read of the same run.
func BenchmarkReplayTx(b *testing.B) {
	ctx := context.Background()
	kp, err := nkeys.CreateServer()
	if err != nil {
		b.Fatal(err)
	}
	st := storetest.StartStore(b, storenode.WithProofKey(kp))
	define(b, st.Conn, events.BucketDef{Bucket: "items", Key: "id", Schema: map[string]events.FieldDef{
		"id":   {Type: events.TypeNumber, Generated: events.GenAutoincrement},
		"n":    {Type: events.TypeNumber},
		"name": {Type: events.TypeString},
	}, Indexes: []string{"n"}})
	for t := range replayTxEvents / replayTxOps {
		ops := make([]events.TxOp, replayTxOps)
		for i := range ops {
			ops[i] = events.TxOp{Op: events.CmdInsert, Bucket: "items", Record: events.Record{"n": float64(i), "name": fmt.Sprint("item-", t, "-", i)}}
		}
		mustCall(b, st.Conn, events.CmdTx, events.TxRequest{Ops: ops}, nil, events.HeaderCommandID, fmt.Sprint("tx-", t))
	}
	if err := st.Node.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	js, err := jetstream.New(st.Conn)
	if err != nil {
		b.Fatal(err)
	}
	stream, err := js.Stream(ctx, events.DefaultStream)
	if err != nil {
		b.Fatal(err)
	}
	total := stream.CachedInfo().State.Msgs
	start := func(b *testing.B) (*storenode.Node, time.Duration) {
		t0 := time.Now()
		n, err := storenode.Start(ctx, st.Conn, storenode.WithLogger(slog.New(slog.DiscardHandler)),
			storenode.WithEmbeddedSync(st.Dir), storenode.WithProofKey(kp))
		took := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		return n, took
	}
	stop := func(b *testing.B, n *storenode.Node) {
		var count int
		mustCall(b, st.Conn, events.CmdCount, events.CountRequest{Bucket: "items"}, &count)
		if count != replayTxEvents || n.Status().Quarantined != 0 {
			b.Fatalf("after replay, %d items, want %d; status %+v", count, replayTxEvents, n.Status())
		}
		if err := n.Stop(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("storenode.Start", func(b *testing.B) {
		var replay time.Duration
		for b.Loop() {
			n, took := start(b)
			replay += took
			b.StopTimer()
			stop(b, n)
			b.StartTimer()
		}
		b.ReportMetric(float64(total)*float64(b.N)/replay.Seconds(), "events/s")
	})
	b.Run("streamread", func(b *testing.B) {
		for b.Loop() {
			if err := streamread.All(ctx, js, events.DefaultStream, func(uint64, jetstream.Msg) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("storenode.Start/from-snapshot", func(b *testing.B) {
		n, _ := start(b)
		if _, err := n.Snapshot(ctx); err != nil {
			b.Fatal(err)
		}
		stop(b, n)
		var ready time.Duration
		for b.Loop() {
			n, took := start(b)
			ready += took
			b.StopTimer()
			stop(b, n)
			b.StartTimer()
		}
		b.ReportMetric(ready.Seconds()*1000/float64(b.N), "ms-to-ready")
		b.ReportMetric(float64(total)*float64(b.N)/ready.Seconds(), "events/s")
	})
}
