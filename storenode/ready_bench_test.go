//go:build unix

package storenode_test

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/events/proof"
	"github.com/storeloop/storeloop/internal/natstest"
	"github.com/storeloop/storeloop/internal/snapcodec"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/internal/streamread"
	"github.com/storeloop/storeloop/projections"
	"github.com/storeloop/storeloop/storenode"
)

// The sizes of BenchmarkReady: -args -ready.events=… -ready.tail=….
var (
	readyEvents = flag.Int("ready.events", 1_000_000, "events in BenchmarkReady's stream before its snapshot")
	readyTail   = flag.Int("ready.tail", 100_000, "events BenchmarkReady appends after its snapshot")
)

// benchLogHandler hands the node's warnings and errors, with their
// attributes, to log.
type benchLogHandler struct{ log func(string) }

func (h benchLogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h benchLogHandler) Handle(_ context.Context, r slog.Record) error {
	msg := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		msg += " " + a.String()
		return true
	})
	h.log(msg)
	return nil
}

func (h benchLogHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h benchLogHandler) WithGroup(string) slog.Handler      { return h }

// cpuTime is the CPU time (user + system) the process has used so far:
// the store node's and the embedded server's together. On a machine
// shared with other work, wall time stretches with the load and CPU time
// much less, so each part reports both.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// timed runs fn and reports its wall and CPU seconds.
func timed(b *testing.B, fn func()) (wall, cpu time.Duration) {
	t0, c0 := time.Now(), cpuTime()
	fn()
	wall, cpu = time.Since(t0), cpuTime()-c0
	b.ReportMetric(wall.Seconds(), "s")
	b.ReportMetric(cpu.Seconds(), "cpu-s")
	return wall, cpu
}

// BenchmarkReady measures issue 11's two goals on one stream of
// -ready.events small inserts (two indexes on the items bucket, one a
// distinct string per record): the time until a store node is ready from
// a snapshot at the stream's head, and from that snapshot with
// -ready.tail events after it, beside the raw costs of the same run —
// reading the snapshot object, decoding its body, reading the tail with
// streamread alone, then with decoding, applying and proof verification
// added one by one — and the time the embedded NATS server needs to
// open the stream again. One iteration of each part: the stream takes
// minutes to fill on a busy machine. The full replay that takes the
// snapshot is timed too (the start without one).
func BenchmarkReady(b *testing.B) {
	ctx := context.Background()
	kp, err := nkeys.CreateServer()
	if err != nil {
		b.Fatal(err)
	}
	// The node's warnings (a snapshot skipped, and why) go to the log of
	// the benchmark part that started it.
	var logTo atomic.Pointer[testing.B]
	warnings := storenode.WithLogger(slog.New(benchLogHandler{func(msg string) { logTo.Load().Log(msg) }}))
	st := storetest.StartStore(b, storenode.WithProofKey(kp))
	def := events.BucketDef{Bucket: "items", Key: "id", Indexes: []string{"n", "name"}, Schema: map[string]events.FieldDef{
		"id":   {Type: events.TypeNumber, Required: true},
		"n":    {Type: events.TypeNumber},
		"name": {Type: events.TypeString},
	}}
	define(b, st.Conn, def)
	if err := st.Node.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	js, err := jetstream.New(st.Conn, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if err := fillItems(ctx, js, kp, *readyEvents); err != nil {
		b.Fatal(err)
	}
	b.Logf("filled %d events in %s", *readyEvents, time.Since(t0).Round(time.Millisecond))
	// start starts a store node on the stream, timed, and checks it holds
	// wantItems records.
	start := func(b *testing.B, wantItems int) *storenode.Node {
		logTo.Store(b)
		var n *storenode.Node
		// A full replay of 1M events on a busy machine takes minutes.
		long := storenode.WithStartTimeout(time.Hour)
		timed(b, func() {
			if n, err = storenode.Start(ctx, st.Conn, warnings, storenode.WithEmbeddedSync(st.Dir), storenode.WithProofKey(kp), long); err != nil {
				b.Fatal(err)
			}
		})
		var count int
		mustCall(b, st.Conn, events.CmdCount, events.CountRequest{Bucket: "items"}, &count)
		if count != wantItems || n.Status().Quarantined != 0 {
			b.Fatalf("started with %d items, want %d; status %+v", count, wantItems, n.Status())
		}
		return n
	}
	stop := func(b *testing.B, n *storenode.Node) {
		if err := n.Stop(ctx); err != nil {
			b.Fatal(err)
		}
	}

	var snap events.SnapshotInfo
	b.Run("full-replay", func(b *testing.B) {
		n := start(b, *readyEvents)
		if snap, err = n.Snapshot(ctx); err != nil {
			b.Fatal(err)
		}
		b.Logf("snapshot of %d records at seq %d: %d bytes, loop paused %dµs", snap.Records, snap.Seq, snap.Bytes, snap.PauseMicros)
		stop(b, n)
	})

	b.Run("from-snapshot-at-head", func(b *testing.B) {
		n := start(b, *readyEvents)
		defer stop(b, n) // a node left running would answer the next part's count
		if n.SnapshotSeq() != snap.Seq {
			b.Fatalf("started from seq %d, want the snapshot's %d", n.SnapshotSeq(), snap.Seq)
		}
	})

	// The snapshot's parts, as a start meets them.
	var obj []byte
	b.Run("snapshot/object-read", func(b *testing.B) {
		os, err := js.ObjectStore(ctx, events.SnapshotBucket(events.DefaultStream))
		if err != nil {
			b.Fatal(err)
		}
		timed(b, func() {
			if obj, err = os.GetBytes(ctx, snap.Name); err != nil {
				b.Fatal(err)
			}
		})
		b.ReportMetric(float64(len(obj)), "bytes")
	})
	b.Run("snapshot/decode", func(b *testing.B) {
		_, body, _ := bytes.Cut(obj, []byte{'\n'})
		var state *projections.State
		timed(b, func() {
			if state, err = projections.DecodeState(snapcodec.NewReader(body)); err != nil {
				b.Fatal(err)
			}
		})
		if state.Bucket("items").Len() != *readyEvents {
			b.Fatalf("decoded %d records, want %d", state.Bucket("items").Len(), *readyEvents)
		}
	})
	obj = nil

	if err := fillItemsFrom(ctx, js, kp, *readyEvents+1, *readyTail); err != nil {
		b.Fatal(err)
	}
	stream, err := js.Stream(ctx, events.DefaultStream)
	if err != nil {
		b.Fatal(err)
	}
	tailFrom := snap.Seq + 1
	tail := stream.CachedInfo().State.LastSeq - snap.Seq

	b.Run("from-snapshot+tail", func(b *testing.B) {
		stop(b, start(b, *readyEvents+*readyTail))
	})

	// The tail alone, read and folded as replay does, one cost added at a
	// time: the raw read, decoding, applying, verifying proofs.
	anchor, err := stream.GetMsg(ctx, snap.Seq)
	if err != nil {
		b.Fatal(err)
	}
	ap, err := proof.Parse(anchor.Header.Get(proof.Header))
	if err != nil {
		b.Fatal(err)
	}
	prev := proof.Leaf(events.DefaultStream, proof.Message{Seq: snap.Seq, Subject: anchor.Subject, Body: anchor.Data}, ap.Prev)
	pub, _ := kp.PublicKey()
	for _, part := range []struct {
		name                   string
		decode, apply, proving bool
	}{{"tail/streamread", false, false, false}, {"tail/decode", true, false, false},
		{"tail/decode+apply", true, true, false}, {"tail/decode+apply+proofs", true, true, true}} {
		b.Run(part.name, func(b *testing.B) {
			st := projections.NewState()
			if _, err := st.Define(def); err != nil {
				b.Fatal(err)
			}
			v, err := proof.NewVerifier(events.DefaultStream, pub)
			if err != nil {
				b.Fatal(err)
			}
			chain, got := prev, uint64(0)
			wall, cpu := timed(b, func() {
				err = streamread.Upto(ctx, stream, tailFrom, func(seq uint64, msg jetstream.Msg) error {
					got++
					if part.proving {
						p, leaf, err := v.Verify(proof.Message{Seq: seq, Subject: msg.Subject(), Body: msg.Data()}, msg.Headers().Get(proof.Header))
						if err != nil {
							return err
						}
						if p.Prev != chain {
							b.Fatalf("seq %d not chained", seq)
						}
						chain = leaf
					}
					if !part.decode {
						return nil
					}
					m, err := projections.DecodeMessage(msg.Subject(), msg.Data())
					if err != nil || !part.apply {
						return err
					}
					return st.ApplyDecoded(seq, m)
				})
			})
			if err != nil {
				b.Fatal(err)
			}
			if got != tail || part.apply && st.Bucket("items").Len() != int(tail) {
				b.Fatalf("read %d, want %d", got, tail)
			}
			b.ReportMetric(float64(tail)/wall.Seconds(), "events/s")
			b.ReportMetric(float64(tail)/cpu.Seconds(), "events/cpu-s")
		})
	}

	// What the embedded server needs to open the stream again: from a
	// new server on the same directory to the stream's info answered.
	b.Run("nats-server-open", func(b *testing.B) {
		st.Conn.Close()
		st.Server.Shutdown()
		st.Server.WaitForShutdown()
		timed(b, func() {
			s := natstest.ServerAt(b, st.Dir)
			js2, err := jetstream.New(natstest.Connect(b, s))
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			for {
				info, err := js2.Stream(ctx, events.DefaultStream)
				if err == nil && info.CachedInfo().State.LastSeq == snap.Seq+tail {
					return
				}
				if ctx.Err() != nil {
					b.Fatalf("stream not open after 5 minutes: %v", err)
				}
			}
		})
	})
}
