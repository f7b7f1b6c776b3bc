package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

var compactTimesRE = regexp.MustCompile(`"_(created|updated)At":\d+`)

// TestWatchCommand prints a watch's snapshot and ready lines, then resumes
// after the ready line's seq with --from-seq and prints exactly the
// changes made since, as the JSON lines of the contract.
func TestWatchCommand(t *testing.T) {
	url := storetest.Start(t)
	c, err := client.Connect(url, client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Define(ctx, events.BucketDef{Bucket: "orders", Key: "id", Schema: map[string]events.FieldDef{
		"id":     {Type: events.TypeNumber, Generated: events.GenAutoincrement},
		"status": {Type: events.TypeString},
		"n":      {Type: events.TypeNumber},
	}}); err != nil {
		t.Fatal(err)
	}
	orders := c.Bucket("orders")
	for _, status := range []string{"paid", "new"} {
		if _, err := orders.Insert(ctx, events.Record{"status": status}); err != nil {
			t.Fatal(err)
		}
	}
	where := `{"status":"paid"}`
	rec := func(id, version int, status string) string {
		return fmt.Sprintf(`{"_createdAt":T,"_updatedAt":T,"_version":%d,"id":%d,"status":%q}`, version, id, status)
	}
	stdout, stderr, code := cli(t, url, "", "watch", "orders", "--where", where, "-n", "2")
	lines := strings.Split(stdout, "\n")
	var ready uint64
	if len(lines) == 3 {
		fmt.Sscanf(lines[1], `{"type":"ready","seq":%d}`, &ready)
	}
	if ready == 0 {
		t.Fatalf("watch printed %q (stderr %q), want a snapshot line and a ready line", stdout, stderr)
	}
	want := fmt.Sprintf(`{"type":"snapshot","key":1,"record":%s,"seq":%d}`+"\n"+`{"type":"ready","seq":%d}`+"\n", rec(1, 1, "paid"), ready, ready)
	if got := compactTimesRE.ReplaceAllString(stdout, `"_${1}At":T`); code != exitOK || got != want {
		t.Fatalf("exit %d, stdout:\n%s\nwant:\n%s", code, got, want)
	}

	for _, w := range []func() error{
		func() error { _, err := orders.Update(ctx, 2, events.Record{"status": "paid"}); return err },
		func() error { _, err := orders.Update(ctx, 1, events.Record{"status": "shipped"}); return err },
		func() error { _, err := orders.Update(ctx, 1, events.Record{"status": "returned"}); return err },
		func() error { _, err := orders.Update(ctx, 2, events.Record{"n": 1.0}); return err },
		func() error { _, err := orders.Delete(ctx, 2); return err },
	} {
		if err := w(); err != nil {
			t.Fatal(err)
		}
	}
	stdout, stderr, code = cli(t, url, "", "watch", "orders", "--where", where, "--from-seq", fmt.Sprint(ready), "-n", "4")
	line := func(typ string, key int, record string, offset uint64) string {
		return fmt.Sprintf(`{"type":%q,"key":%d,"record":%s,"seq":%d}`+"\n", typ, key, record, ready+offset)
	}
	changed := strings.Replace(rec(2, 3, "paid"), `"id":2,`, `"id":2,"n":1,`, 1)
	want = line("added", 2, rec(2, 2, "paid"), 1) + line("removed", 1, rec(1, 2, "shipped"), 2) +
		line("changed", 2, changed, 4) + line("removed", 2, changed, 5)
	if got := compactTimesRE.ReplaceAllString(stdout, `"_${1}At":T`); code != exitOK || got != want {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, stderr, got, want)
	}

	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"watch", "orders", "--where", `{"status":{"$bogus":1}}`}, exitCommand, "error: bad_request: "},
		{[]string{"watch", "nope"}, exitCommand, "error: bucket_not_found: "},
		{[]string{"watch", "orders", "-n", "-1"}, exitUsage, ""},
	} {
		_, stderr, code := cli(t, url, "", tc.args...)
		if code != tc.code || !strings.HasPrefix(stderr, tc.stderr) {
			t.Fatalf("%v: exit %d, stderr %q; want exit %d, stderr starting %q", tc.args, code, stderr, tc.code, tc.stderr)
		}
	}
}
