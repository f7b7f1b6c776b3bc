package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

var (
	timeRE    = regexp.MustCompile(`time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`)
	outsideRE = regexp.MustCompile(`command=[0-9A-Za-z]{22} `)
)

// TestExplain explains the seed's loyalty record after two shipments of
// the e-commerce example: both upserts of the loyalty-on-ship rule, each
// back to the order update from outside that triggered it.
func TestExplain(t *testing.T) {
	url := storetest.Start(t)
	order := func(total float64) func(context.Context, *client.Client) error {
		return func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Bucket("orders").Insert(ctx, events.Record{"userId": "alice", "sku": "MOUSE-1", "qty": 1.0, "total": total})
			return err
		}
	}
	ship := func(id int) func(context.Context, *client.Client) error {
		return func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Bucket("orders").Update(ctx, id, events.Record{"status": "shipped"})
			return err
		}
	}
	_, seq := runCascades(t, url, []cascadeStep{
		{"order-1", order(2598)},
		{"ship-1", ship(1)},
		{"order-2", order(150)},
		{"ship-2", ship(2)},
	})
	line := func(offset uint64, format string) string {
		return strings.ReplaceAll(format, "SEQ", fmt.Sprint(seq+offset)) + "\n"
	}
	ruleWrite := func(offset uint64, op, corr string) string {
		return line(offset, "seq=SEQ time=T bucket.loyalty."+op+" key=alice hop=1 rule=loyalty-on-ship "+
			fmt.Sprintf("cause=bucket.orders.updated#%d command=ecommerce/loyalty-on-ship/%d/0 correlation=%s", seq+offset-1, seq+offset-1, corr))
	}
	shipment := func(offset uint64, key int, corr string) string {
		return line(offset, fmt.Sprintf("  <- seq=SEQ time=T bucket.orders.updated key=%d hop=0 (outside write) command=C correlation=%s", key, corr))
	}
	inserted := func(offset uint64, key int, corr string) string {
		return line(offset, fmt.Sprintf("seq=SEQ time=T bucket.orders.inserted key=%d hop=0 (outside write) command=C correlation=%s", key, corr))
	}
	second := ruleWrite(5, "updated", "ship-2") + shipment(4, 2, "ship-2")
	first := ruleWrite(2, "inserted", "ship-1") + shipment(1, 1, "ship-1")
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "loyalty record", args: []string{"explain", "loyalty", "alice"}, stdout: second + first},
		{name: "a field both writes changed", args: []string{"explain", "loyalty", "alice", "points"}, stdout: second + first},
		{name: "a field only the insert set", args: []string{"explain", "loyalty", "alice", "userId"}, stdout: first},
		{name: "an order: outside writes only", args: []string{"explain", "orders", "1"},
			stdout: strings.TrimPrefix(shipment(1, 1, "ship-1"), "  <- ") + inserted(0, 1, "order-1")},
		{name: "a string key that looks like a number", args: []string{"explain", "orders", "1", "--string-key"}, code: exitCommand,
			stderr: "error: not_found: no record 1 in bucket orders\n"},
		{name: "missing record", args: []string{"explain", "loyalty", "bob"}, code: exitCommand,
			stderr: "error: not_found: no record bob in bucket loyalty\n"},
		{name: "field never written", args: []string{"explain", "loyalty", "alice", "nope"}, code: exitCommand,
			stderr: "error: no write of field \"nope\" of loyalty alice\n"},
		{name: "no key", args: []string{"explain", "loyalty"}, code: exitUsage,
			stderr: "error: accepts between 2 and 3 arg(s), received 1\nRun 'storeloop explain --help' for usage.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, url, "", tt.args...)
			stdout = outsideRE.ReplaceAllString(timeRE.ReplaceAllString(stdout, "time=T"), "command=C ")
			if code != tt.code || stdout != tt.stdout || stderr != tt.stderr {
				t.Fatalf("storeloop %s\nexit %d, want %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s\nwant:\n%s",
					strings.Join(tt.args, " "), code, tt.code, stdout, tt.stdout, stderr, tt.stderr)
			}
		})
	}
}
