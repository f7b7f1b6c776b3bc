package rulenode

import (
	"context"
	"strings"
	"testing"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/internal/natstest"
)

// A publish action cannot send a command to the store under the prefix the
// rule node's client uses, whatever it is: the command would bypass the
// rule's idempotent command ids.
func TestPublishRefusesTheCommandPrefix(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	cl, err := client.New(nc, client.WithCommandPrefix("shop"))
	if err != nil {
		t.Fatal(err)
	}
	sc := newStoreClient(cl, "set", "rule", 1)
	ctx := withPath(context.Background(), "0")
	if err := sc.Publish(ctx, "shop.insert", []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("publish to shop.insert: %v, want reserved", err)
	}
	// Nor, from a Go handler, forge an event or reach the store's streams.
	for _, subject := range []string{"bucket.orders.inserted", "store.insert", "storeloop.x", "$JS.API.INFO"} {
		if err := sc.Publish(ctx, subject, []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("publish to %s: %v, want reserved", subject, err)
		}
	}
	if err := sc.Publish(ctx, "shipping.requested", []byte(`{}`)); err != nil {
		t.Fatalf("publish to another subject: %v", err)
	}
}
