package demo

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out strings.Builder
	if err := Run(ctx, &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"Laptop stock: 48", "Mouse stock: 195", "Alice loyalty: 274 points",
		"[deduct-inventory-on-confirm] bucket.inventory.updated key=LAPTOP-1 hop=1",
		"[loyalty-on-ship] bucket.loyalty.inserted key=alice hop=1",
		"[loyalty-on-ship] bucket.loyalty.updated key=alice hop=1",
		"rule loyalty-on-ship [internal]",
		"deployed version 2 (loyalty-on-ship: a point per 5 instead of per 10)",
		"carol ships an order of 250: 25 points  (version 1's rule",
		"bob ships an order of 250: 50 points  (version 2's rule",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(got)
	}
}
