package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

const rules = `
name: from-file
rules:
  - id: count-orders
    on: [bucket.orders.inserted]
    then:
      - upsert:
          bucket: stats
          key: ${event.record.userId}
          record: { userId: "${event.record.userId}" }
          increment: { orders: 1 }
`

// The daemon runs the file's rules under --name until its context ends,
// then returns nil.
func TestRunUntilStopped(t *testing.T) {
	url := storetest.Start(t)
	file := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(file, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cl, err := client.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, def := range []events.BucketDef{
		{Bucket: "orders", Key: "id", Schema: map[string]events.FieldDef{
			"id": {Type: events.TypeNumber, Generated: events.GenAutoincrement}, "userId": {Type: events.TypeString}}},
		{Bucket: "stats", Key: "userId", Schema: map[string]events.FieldDef{
			"userId": {Type: events.TypeString}, "orders": {Type: events.TypeNumber, Default: 0.0}}},
	} {
		if err := cl.Define(ctx, def); err != nil {
			t.Fatal(err)
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{"--rules", file, "--nats", url, "--name", "renamed", "--log-level", "error"})
	}()
	for range 2 {
		if _, err := cl.Bucket("orders").Insert(ctx, events.Record{"userId": "alice"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.Settle(ctx, client.SettleRuleSets("renamed")); err != nil {
		t.Fatal(err)
	}
	rec, err := cl.Bucket("stats").Get(ctx, "alice")
	if err != nil || rec["orders"] != 2.0 {
		t.Errorf("stats alice = %v, %v; want orders 2", rec, err)
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v after stop, want nil", err)
		}
	case <-ctx.Done():
		t.Fatal("run did not return after stop")
	}
}

func TestParseFlags(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "rules required", args: nil, wantErr: "--rules FILE or --ruleset NAME is required"},
		{name: "rules or ruleset", args: []string{"--rules", "r.yaml", "--ruleset", "s"}, wantErr: "--rules and --ruleset exclude each other"},
		{name: "ruleset without name", args: []string{"--ruleset", "s", "--name", "t"}, wantErr: "--name and --start apply to --rules only"},
		{name: "ruleset without start", args: []string{"--ruleset", "s", "--start", "new"}, wantErr: "--name and --start apply to --rules only"},
		{name: "ruleset", args: []string{"--ruleset", "s"}},
		{name: "no arguments", args: []string{"--rules", "r.yaml", "extra"}, wantErr: "unexpected arguments [extra]"},
		{name: "ok", args: []string{"--rules", "r.yaml", "--concurrency", "2"}},
	}
	t.Setenv("STORELOOP_RULES", "")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("parseFlags(%v) = %v, want error %q", tc.args, err, tc.wantErr)
			}
		})
	}
}
