package storenode_test

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/storeloop/storeloop/internal/natstest"
)

// BenchmarkPubAck measures one JetStream append's round trip, publish to
// PubAck, the way the store node pays it (an in-process connection, a
// file stream), four ways in the same run: nats.go's async publish and
// its future, the same expecting the last sequence (what the store sends),
// a plain publish replying to one wildcard subscription of our own (the
// PubAck found by hand), and a plain request; then the store's way and
// the hand-made one again while a consumer reads every event as it is
// stored, as a rule node does. Run it with -bench PubAck -count 3.
func BenchmarkPubAck(b *testing.B) {
	ctx := context.Background()
	srv := natstest.Server(b)
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		b.Fatal(err)
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"b.>"}, Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	lastSeq := func(b *testing.B) uint64 {
		info, err := stream.Info(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return info.State.LastSeq
	}
	body := bytes.Repeat([]byte("x"), 200)
	msg := func(expect uint64) *nats.Msg {
		m := &nats.Msg{Subject: "b.orders.inserted", Header: nats.Header{"Storeloop-Proof": []string{"p"}}, Data: body}
		if expect > 0 {
			m.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(expect, 10))
		}
		return m
	}
	wantAck := func(b *testing.B, data []byte) {
		if !bytes.Contains(data, []byte(`"seq":`)) {
			b.Fatalf("ack %s", data)
		}
	}
	async := func(expect bool) func(*testing.B) {
		return func(b *testing.B) {
			seq := lastSeq(b)
			for range b.N {
				var opts []jetstream.PublishOpt
				if expect {
					opts = append(opts, jetstream.WithExpectLastSequence(seq))
				}
				f, err := js.PublishMsgAsync(msg(0), opts...)
				if err != nil {
					b.Fatal(err)
				}
				select {
				case <-f.Ok():
				case err := <-f.Err():
					b.Fatal(err)
				case <-time.After(10 * time.Second):
					b.Fatal("no ack")
				}
				seq++
			}
		}
	}
	replySub := func(b *testing.B) {
		acks := make(chan *nats.Msg, 64)
		prefix := nats.NewInbox() + "."
		sub, err := nc.ChanSubscribe(prefix+"*", acks)
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Unsubscribe()
		seq := lastSeq(b)
		for i := range b.N {
			m := msg(seq)
			m.Reply = prefix + strconv.Itoa(i)
			if err := nc.PublishMsg(m); err != nil {
				b.Fatal(err)
			}
			select {
			case a := <-acks:
				wantAck(b, a.Data)
			case <-time.After(10 * time.Second):
				b.Fatal("no ack")
			}
			seq++
		}
	}
	request := func(b *testing.B) {
		seq := lastSeq(b)
		for range b.N {
			a, err := nc.RequestMsg(msg(seq), 10*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			wantAck(b, a.Data)
			seq++
		}
	}
	b.Run("async", withCPU(async(false)))
	b.Run("async-expect", withCPU(async(true)))
	b.Run("reply-sub-expect", withCPU(replySub))
	b.Run("request-expect", withCPU(request))

	// A rule node's consumer, on its own connection, reading from now on.
	cnc := natstest.Connect(b, srv)
	cjs, err := jetstream.New(cnc)
	if err != nil {
		b.Fatal(err)
	}
	cons, err := cjs.CreateOrUpdateConsumer(ctx, "S", jetstream.ConsumerConfig{Durable: "rules", DeliverPolicy: jetstream.DeliverNewPolicy, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		b.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { _ = m.Ack() })
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()
	b.Run("consumed/async-expect", withCPU(async(true)))
	b.Run("consumed/reply-sub-expect", withCPU(replySub))
}

// withCPU reports the process's CPU time per operation (client, server and
// consumer alike: they share the process) beside the wall time.
func withCPU(f func(*testing.B)) func(*testing.B) {
	return func(b *testing.B) {
		before := cpuTime()
		f(b)
		b.ReportMetric(float64((cpuTime()-before).Microseconds())/float64(b.N), "cpu-µs/op")
	}
}
