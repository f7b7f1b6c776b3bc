package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/storenode"
)

// Each role can do its job on a server that enforces the roles.
func TestRolesDoTheirJobs(t *testing.T) {
	s := startSecured(t, storenode.EmbeddedConfig{}, auth.ConnConfig{})
	ctx := ctxT(t)

	t.Run("client", func(t *testing.T) {
		nc, errs := s.as(t, auth.RoleClient)
		cl := s.client(t, nc)
		if err := cl.Define(ctx, orders); err != nil {
			t.Fatal(err)
		}
		rec, err := cl.Bucket("orders").Insert(ctx, events.Record{"status": "new"})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := cl.Bucket("orders").Get(ctx, rec["id"]); err != nil || got["status"] != "new" {
			t.Fatalf("get = %v, %v", got, err)
		}
		var seen []string
		if err := cl.History(ctx, "", func(ev *events.Event, _ nats.Header) error {
			seen = append(seen, fmt.Sprintf("%s/%s", ev.Bucket, ev.Type))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(seen) != "[orders/inserted]" {
			t.Fatalf("history = %v", seen)
		}
		if err := cl.Settle(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errs:
			t.Fatalf("client: %v", err)
		default:
		}
	})

	t.Run("rulenode", func(t *testing.T) {
		nc, errs := s.as(t, auth.RoleRuleNode)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		cons, err := js.CreateOrUpdateConsumer(ctx, events.DefaultStream, jetstream.ConsumerConfig{
			Durable: "commerce", FilterSubject: "bucket.orders.>", AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			t.Fatal(err)
		}
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 1 {
			t.Fatalf("fetched %d events, want 1 (%v)", n, batch.Error())
		}
		if info, err := cons.Info(ctx); err != nil || info.AckFloor.Stream != 2 {
			t.Fatalf("ack floor = %+v, %v; want stream seq 2 (after the definition)", info, err)
		}
		// Commands, and its dead-letter stream.
		if _, err := s.client(t, nc).Bucket("orders").Update(ctx, 1, events.Record{"status": "paid"}); err != nil {
			t.Fatal(err)
		}
		// The store node made the dead-letter stream: the rule node binds it.
		if _, err := js.Stream(ctx, auth.DefaultDeadLetterStream); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, auth.DefaultDeadLetterPrefix+".commerce.failed", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errs:
			t.Fatalf("rulenode: %v", err)
		default:
		}
	})

	t.Run("admin", func(t *testing.T) {
		// Snapshots: the store node writes them to its object store.
		cl := s.client(t, s.admin)
		info, err := cl.Snapshot(ctx)
		if err != nil || !info.Valid || info.Seq == 0 {
			t.Fatalf("snapshot = %+v, %v", info, err)
		}
		if list, err := cl.Snapshots(ctx); err != nil || len(list) != 1 || list[0].Name != info.Name || !list[0].Valid {
			t.Fatalf("snapshots = %+v, %v; want %s", list, err, info.Name)
		}
		if err := s.js.DeleteConsumer(ctx, events.DefaultStream, "commerce"); err != nil {
			t.Fatal(err)
		}
		if err := s.js.DeleteStream(ctx, auth.DefaultDeadLetterStream); err != nil {
			t.Fatal(err)
		}
	})
}

// A rule node or client cannot write events, administer the stream or
// others' consumers, create streams, or read other roles' replies; the
// server refuses and nothing changes.
func TestRolesAreRefused(t *testing.T) {
	s := startSecured(t, storenode.EmbeddedConfig{}, auth.ConnConfig{})
	ctx := ctxT(t)
	cl := s.client(t, s.admin)
	if err := cl.Define(ctx, orders); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Bucket("orders").Insert(ctx, events.Record{"status": "new"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.js.CreateOrUpdateConsumer(ctx, events.DefaultStream, jetstream.ConsumerConfig{
		Durable: "commerce", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	before := streamState(t, s)

	event, _ := json.Marshal(map[string]any{"type": "inserted", "bucket": "orders", "key": 99,
		"record": map[string]any{"id": 99, "status": "forged", "_version": 1}})
	api := "$JS.API."
	sealed, _ := json.Marshal(jetstream.StreamConfig{Name: events.DefaultStream, Subjects: []string{"bucket.>"}, Sealed: true})
	hijack, _ := json.Marshal(jetstream.StreamConfig{Name: "HIJACK", Subjects: []string{"store.>"}})
	publishes := []struct {
		subject string
		body    []byte
	}{
		{"bucket.orders.inserted", event},
		{"storeloop.schema.orders", []byte(`{}`)},
		{api + "STREAM.DELETE.STORELOOP", nil},
		{api + "STREAM.PURGE.STORELOOP", nil},
		{api + "STREAM.UPDATE.STORELOOP", sealed},
		{api + "STREAM.MSG.DELETE.STORELOOP", []byte(`{"seq":2}`)},
		{api + "STREAM.CREATE.HIJACK", hijack},
		{api + "CONSUMER.DELETE.STORELOOP.commerce", nil},
		{api + "CONSUMER.DURABLE.CREATE.STORELOOP.evil", nil},
		{"store." + events.CmdSnapshot, []byte(`{}`)},
		{"store." + events.CmdSnapshots, []byte(`{}`)},
	}
	subscribes := []string{">", "bucket.>", "store.>", "_INBOX.>", "$JS.API.>"}
	for _, r := range auth.Roles {
		subscribes = append(subscribes, auth.InboxPrefix(r)+".>")
	}

	for _, role := range []auth.Role{auth.RoleRuleNode, auth.RoleClient} {
		t.Run(string(role), func(t *testing.T) {
			nc, errs := s.as(t, role)
			for _, p := range publishes {
				if err := nc.Publish(p.subject, p.body); err != nil {
					t.Fatal(err)
				}
				wantViolation(t, errs, "publish", p.subject)
			}
			for _, sub := range subscribes {
				if sub == auth.InboxPrefix(role)+".>" {
					continue // its own
				}
				if _, err := nc.SubscribeSync(sub); err != nil {
					t.Fatal(err)
				}
				wantViolation(t, errs, "subscription", sub)
			}
			if role == auth.RoleClient {
				for _, subj := range []string{"$JS.ACK.STORELOOP.commerce.1.2.2.0.0", auth.DefaultDeadLetterPrefix + ".x.failed"} {
					if err := nc.Publish(subj, nil); err != nil {
						t.Fatal(err)
					}
					wantViolation(t, errs, "publish", subj)
				}
			}
			// Through the jetstream API as a user would call it: an
			// error, not a deleted stream.
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			short, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if err := js.DeleteStream(short, events.DefaultStream); err == nil {
				t.Fatal("DeleteStream succeeded")
			}
		})
	}
	t.Run("store", func(t *testing.T) {
		nc, errs := s.as(t, auth.RoleStore)
		for _, subj := range []string{api + "STREAM.DELETE.STORELOOP", api + "STREAM.PURGE.STORELOOP", api + "STREAM.CREATE.HIJACK"} {
			if err := nc.Publish(subj, nil); err != nil {
				t.Fatal(err)
			}
			wantViolation(t, errs, "publish", subj)
		}
	})

	if after := streamState(t, s); after != before {
		t.Fatalf("stream changed:\nbefore %s\nafter  %s", before, after)
	}
	if _, err := s.js.Stream(ctxT(t), "HIJACK"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("HIJACK stream: %v, want not found", err)
	}
	if n, err := cl.Bucket("orders").Count(ctxT(t), nil); err != nil || n != 1 {
		t.Fatalf("orders = %d, %v; want the 1 record, nothing forged", n, err)
	}
}

// streamState summarises what a refused call must not change: the
// stream's messages and configuration, and its consumers.
func streamState(t *testing.T, s *secured) string {
	t.Helper()
	ctx := ctxT(t)
	st, err := s.js.Stream(ctx, events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info := st.CachedInfo()
	var names []string
	for n := range st.ConsumerNames(ctx).Name() {
		names = append(names, n)
	}
	return fmt.Sprintf("msgs=%d last=%d sealed=%v denyDelete=%v denyPurge=%v subjects=%v consumers=%v",
		info.State.Msgs, info.State.LastSeq, info.Config.Sealed, info.Config.DenyDelete, info.Config.DenyPurge,
		info.Config.Subjects, names)
}

// With WithRuleSets, rulenode.creds run those rule sets only: another rule
// set's consumer can be neither created nor reconfigured, and no ordered
// consumer reads the stream.
func TestRuleSetRestriction(t *testing.T) {
	s := startSecured(t, storenode.EmbeddedConfig{}, auth.ConnConfig{}, auth.WithRuleSets("ecommerce"))
	ctx := ctxT(t)
	if _, err := s.js.CreateOrUpdateConsumer(ctx, events.DefaultStream, jetstream.ConsumerConfig{
		Durable: "billing", FilterSubjects: []string{"bucket.orders.>"}, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	nc, errs := s.as(t, auth.RoleRuleNode)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, events.DefaultStream, jetstream.ConsumerConfig{
		Durable: "ecommerce", FilterSubjects: []string{"bucket.orders.>", "bucket.inventory.>"}, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{
		"$JS.API.CONSUMER.CREATE.STORELOOP.billing",
		"$JS.API.CONSUMER.CREATE.STORELOOP.billing.bucket.>",
		"$JS.API.CONSUMER.MSG.NEXT.STORELOOP.billing",
		"$JS.ACK.STORELOOP.billing.1.1.1.0.0",
		"$JS.API.CONSUMER.CREATE.STORELOOP.ordered_1",
	} {
		if err := nc.Publish(subj, []byte(`{"stream_name":"STORELOOP","config":{"durable_name":"billing","filter_subject":">"}}`)); err != nil {
			t.Fatal(err)
		}
		wantViolation(t, errs, "publish", subj)
	}
	cons, err := s.js.Consumer(ctx, events.DefaultStream, "billing")
	if err != nil {
		t.Fatal(err)
	}
	if f := cons.CachedInfo().Config.FilterSubjects; fmt.Sprint(f) != "[bucket.orders.>]" {
		t.Fatalf("billing's filters = %v, want unchanged", f)
	}

	// A client, whose reads go through ordered consumers of its own, may
	// neither reconfigure nor pull from a known rule set's consumer.
	cnc, cerrs := s.as(t, auth.RoleClient)
	for _, subj := range []string{
		"$JS.API.CONSUMER.CREATE.STORELOOP.ecommerce",
		"$JS.API.CONSUMER.CREATE.STORELOOP.ecommerce.bucket.>",
		"$JS.API.CONSUMER.DURABLE.CREATE.STORELOOP.ecommerce",
		"$JS.API.CONSUMER.MSG.NEXT.STORELOOP.ecommerce",
	} {
		if err := cnc.Publish(subj, []byte(`{"stream_name":"STORELOOP","config":{"durable_name":"ecommerce","filter_subject":">"}}`)); err != nil {
			t.Fatal(err)
		}
		wantViolation(t, cerrs, "publish", subj)
	}
	cons, err = s.js.Consumer(ctx, events.DefaultStream, "ecommerce")
	if err != nil {
		t.Fatal(err)
	}
	if f := cons.CachedInfo().Config.FilterSubjects; fmt.Sprint(f) != "[bucket.orders.> bucket.inventory.>]" {
		t.Fatalf("ecommerce's filters = %v, want unchanged", f)
	}
	cjs, err := jetstream.New(cnc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cjs.OrderedConsumer(ctx, events.DefaultStream, jetstream.OrderedConsumerConfig{}); err != nil {
		t.Fatalf("the client's own ordered consumer: %v", err)
	}
}
