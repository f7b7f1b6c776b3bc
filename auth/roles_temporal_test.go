package auth_test

import (
	"testing"
	"time"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/storenode"
)

// A rule node on rulenode.creds runs temporal rules: it opens and watches
// the temporal KV bucket the store node made, keeps matches in it and
// fires a deadline, without a permission violation.
func TestRuleNodeTemporal(t *testing.T) {
	s := startSecured(t, storenode.EmbeddedConfig{}, auth.ConnConfig{})
	ctx := ctxT(t)
	cl, _, errs := runExampleOnRuleNodeCreds(t, s, "shipping")

	orders := cl.Bucket("orders")
	if _, err := orders.Insert(ctx, events.Record{"userId": "u"}); err != nil {
		t.Fatal(err)
	}
	if _, err := orders.Update(ctx, 1.0, events.Record{"status": "confirmed"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n, err := cl.Bucket("flags").Count(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		select {
		case err := <-errs:
			t.Fatalf("rule node: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("flags: %d, want 1 within 20s", n)
		}
	}
	select {
	case err := <-errs:
		t.Fatalf("rule node: %v", err)
	default:
	}
}
