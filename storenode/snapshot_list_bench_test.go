//go:build unix

package storenode_test

import (
	"context"
	"flag"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/storenode"
)

var listingEvents = flag.Int("listing.events", 200_000, "events in BenchmarkSnapshotListing's stream before its first snapshot")

// BenchmarkSnapshotListing measures store.snapshots over three snapshots
// of -listing.events small inserts (the items bucket of BenchmarkReady):
// by header (the default) and verifying (each read whole), beside the raw
// JetStream costs of the same run: one object read whole, one chunk read
// by subject. One iteration of each part: the stream takes a while to
// fill on a busy machine.
func BenchmarkSnapshotListing(b *testing.B) {
	ctx := context.Background()
	kp, err := nkeys.CreateServer()
	if err != nil {
		b.Fatal(err)
	}
	st := storetest.StartStore(b, storenode.WithProofKey(kp))
	define(b, st.Conn, events.BucketDef{Bucket: "items", Key: "id", Indexes: []string{"n", "name"}, Schema: map[string]events.FieldDef{
		"id":   {Type: events.TypeNumber, Required: true},
		"n":    {Type: events.TypeNumber},
		"name": {Type: events.TypeString},
	}})
	js, err := jetstream.New(st.Conn, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	// Three snapshots, one event apart: the node stops while the stream
	// is filled behind its back, and starts again from its last snapshot.
	next, add := 1, *listingEvents
	var taken []events.SnapshotInfo
	for range 3 {
		if err := st.Node.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		if err := fillItemsFrom(ctx, js, kp, next, add); err != nil {
			b.Fatal(err)
		}
		next, add = next+add, 1
		if st.Node, err = storenode.Start(ctx, st.Conn, storenode.WithEmbeddedSync(st.Dir), storenode.WithProofKey(kp)); err != nil {
			b.Fatal(err)
		}
		info, err := st.Node.Snapshot(ctx)
		if err != nil {
			b.Fatal(err)
		}
		taken = append(taken, info)
	}
	b.Cleanup(func() { st.Node.Stop(ctx) })
	b.Logf("3 snapshots of %d records, %d bytes each", taken[2].Records, taken[2].Bytes)

	list := func(b *testing.B, req events.SnapshotsRequest) {
		var out []events.SnapshotInfo
		timed(b, func() { mustCall(b, st.Conn, events.CmdSnapshots, req, &out) })
		if len(out) != 3 || !out[0].Valid || out[0].Verified != req.Verify || out[0].Seq != taken[2].Seq {
			b.Fatalf("listed %+v", out)
		}
	}
	b.Run("by-header", func(b *testing.B) { list(b, events.SnapshotsRequest{}) })
	b.Run("verify", func(b *testing.B) { list(b, events.SnapshotsRequest{Verify: true}) })

	os, err := js.ObjectStore(ctx, events.SnapshotBucket(events.DefaultStream))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("raw/object-read", func(b *testing.B) {
		timed(b, func() {
			if _, err := os.GetBytes(ctx, taken[2].Name); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("raw/first-chunk", func(b *testing.B) {
		oi, err := os.GetInfo(ctx, taken[2].Name)
		if err != nil {
			b.Fatal(err)
		}
		s, err := js.Stream(ctx, "OBJ_"+events.SnapshotBucket(events.DefaultStream))
		if err != nil {
			b.Fatal(err)
		}
		timed(b, func() {
			if _, err := s.GetMsg(ctx, 1, jetstream.WithGetMsgSubject("$O."+oi.Bucket+".C."+oi.NUID)); err != nil {
				b.Fatal(err)
			}
		})
	})
}
