package projections

import (
	"strings"
	"testing"

	"github.com/storeloop/storeloop/events"
)

func TestCascades(t *testing.T) {
	ev := func(id, corr, cause string, hop int, rule, subject string, seq uint64) CausalEvent {
		bucket, op, err := events.ParseEventSubject(subject)
		if err != nil {
			t.Fatal(err)
		}
		return CausalEvent{Subject: subject, TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
			Event: &events.Event{Type: op, Bucket: bucket, Key: "k" + id,
				Meta: events.Meta{EventID: id, CorrelationID: corr, CausationID: cause, Hop: hop, RuleID: rule, Seq: seq}}}
	}
	cs := Cascades([]CausalEvent{
		ev("a", "a", "cmd1", 0, "", "bucket.orders.updated", 1),
		ev("x", "x", "cmd2", 0, "", "bucket.orders.inserted", 2),
		ev("b", "a", "a", 1, "deduct", "bucket.inventory.updated", 3),
		ev("c", "a", "b", 2, "reorder", "bucket.reorderRequests.inserted", 4),
		ev("d", "a", "a", 1, "loyalty", "bucket.loyalty.inserted", 5),
	})
	if len(cs) != 2 || cs[0].CorrelationID != "a" || cs[0].Size != 4 || cs[1].Size != 1 {
		t.Fatalf("cascades = %+v", cs)
	}
	var b strings.Builder
	cs[0].Print(&b)
	got := b.String()
	for _, want := range []string{
		"cascade a (4 events)",
		"└─ bucket.orders.updated key=ka hop=0 seq=1",
		"   ├─ [deduct] bucket.inventory.updated key=kb hop=1 seq=3",
		"   │  └─ [reorder] bucket.reorderRequests.inserted key=kc hop=2 seq=4",
		"   └─ [loyalty] bucket.loyalty.inserted key=kd hop=1 seq=5",
		"trace=0af7651916cd43dd8448eb211c80319c",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("tree lacks %q:\n%s", want, got)
		}
	}
}
