package auth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/storenode"
)

// Neither a rule node nor a client may create or update any stream, not
// even the dead-letter stream or a KV bucket's while it does not exist: a stream on
// store.>, bucket.>, storeloop.> or an inbox would record every command,
// event or reply. The server refuses and no stream appears or changes.
func TestOnlyStoreCreatesStreams(t *testing.T) {
	s := startSecured(t, storenode.EmbeddedConfig{}, auth.ConnConfig{})
	ctx := ctxT(t)
	// The window a hostile rule node used to have: no dead-letter stream,
	// no KV bucket of budgets (the store node creates them all at start).
	kvStreams := []string{"KV_" + events.RuleStateBucket, "KV_" + events.CascadeBucket, "KV_" + events.TemporalBucket}
	for _, name := range append([]string{auth.DefaultDeadLetterStream}, kvStreams...) {
		if err := s.js.DeleteStream(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	captures := []string{"store.>", "bucket.>", "storeloop.>", auth.DefaultDeadLetterPrefix + ".>", "_INBOX_client.>",
		"_INBOX_rulenode.>", "_INBOX_store.>", "_INBOX.>", ">"}
	names := append([]string{auth.DefaultDeadLetterStream, events.DefaultStream, "HIJACK", "KV_" + events.RulesBucket}, kvStreams...)
	for _, role := range []auth.Role{auth.RoleRuleNode, auth.RoleClient} {
		t.Run(string(role), func(t *testing.T) {
			nc, errs := s.as(t, role)
			for _, name := range names {
				for _, subj := range captures {
					body, _ := json.Marshal(jetstream.StreamConfig{Name: name, Subjects: []string{subj}})
					for _, verb := range []string{"CREATE", "UPDATE"} {
						api := "$JS.API.STREAM." + verb + "." + name
						if err := nc.Publish(api, body); err != nil {
							t.Fatal(err)
						}
						wantViolation(t, errs, "publish", api)
					}
				}
			}
			// Nor may it hold the store's trust lock, keeping store nodes
			// from starting.
			for _, api := range []string{"$JS.API.CONSUMER.CREATE.STORELOOP." + events.TrustLockConsumer,
				"$JS.API.CONSUMER.DURABLE.CREATE.STORELOOP." + events.TrustLockConsumer} {
				if err := nc.Publish(api, []byte(`{"stream_name":"STORELOOP","config":{"durable_name":"`+events.TrustLockConsumer+`"}}`)); err != nil {
					t.Fatal(err)
				}
				wantViolation(t, errs, "publish", api)
			}
			// Through the jetstream API, as a rule node would call it: an
			// error, not a stream.
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			short, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if _, err := js.CreateStream(short, jetstream.StreamConfig{Name: auth.DefaultDeadLetterStream,
				Subjects: []string{"store.>"}}); err == nil {
				t.Fatal("CreateStream succeeded")
			}
		})
	}
	var streams []string
	for name := range s.js.StreamNames(ctx).Name() {
		streams = append(streams, name)
	}
	slices.Sort(streams)
	if fmt.Sprint(streams) != "["+events.DefaultStream+"]" {
		t.Fatalf("streams = %v, want only the event stream", streams)
	}
	st, err := s.js.Stream(ctx, events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.Subjects; fmt.Sprint(got) != "[bucket.> storeloop.schema.> "+events.LeaderSubject+"]" {
		t.Fatalf("event stream subjects = %v, want unchanged", got)
	}
}

// Only the store node writes its snapshots: a rule node or a client can
// neither put an object into the snapshot store (chunks or description)
// nor open it, so none can forge a state for the next start (which would
// refuse an unsigned one anyway). The admin, through store.snapshots,
// still sees the one snapshot the store took, valid.
func TestOnlyStoreWritesSnapshots(t *testing.T) {
	s := startSecured(t, storenode.EmbeddedConfig{}, auth.ConnConfig{})
	ctx := ctxT(t)
	admin := s.client(t, s.admin)
	if err := admin.Define(ctx, orders); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Bucket("orders").Insert(ctx, events.Record{"status": "new"}); err != nil {
		t.Fatal(err)
	}
	taken, err := admin.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bucket := events.SnapshotBucket(events.DefaultStream)
	for _, role := range []auth.Role{auth.RoleRuleNode, auth.RoleClient} {
		t.Run(string(role), func(t *testing.T) {
			nc, errs := s.as(t, role)
			for _, subj := range []string{"$O." + bucket + ".C.forged", "$O." + bucket + ".M." + taken.Name,
				"$JS.API.STREAM.INFO.OBJ_" + bucket, "$JS.API.STREAM.PURGE.OBJ_" + bucket} {
				if err := nc.Publish(subj, []byte(`{}`)); err != nil {
					t.Fatal(err)
				}
				wantViolation(t, errs, "publish", subj)
			}
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			short, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if _, err := js.ObjectStore(short, bucket); err == nil {
				t.Fatal("the snapshot store opened")
			}
		})
	}
	list, err := admin.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != taken.Name || !list[0].Valid {
		t.Fatalf("snapshots %+v, want only %s, valid", list, taken.Name)
	}
}
