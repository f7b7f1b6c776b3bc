package rulenode

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// DryRun collects a set's writes, evaluated, reading forEach items from
// the store, and writes nothing.
func TestDryRun(t *testing.T) {
	url := storetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := client.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Define(ctx, events.BucketDef{Bucket: "lines", Key: "id", Schema: map[string]events.FieldDef{
		"id": {Type: events.TypeString}, "order": {Type: events.TypeNumber}, "qty": {Type: events.TypeNumber}}}); err != nil {
		t.Fatal(err)
	}
	for _, l := range []events.Record{{"id": "a", "order": 7.0, "qty": 2.0}, {"id": "b", "order": 7.0, "qty": 3.0}, {"id": "c", "order": 8.0, "qty": 1.0}} {
		if _, err := cl.Bucket("lines").Insert(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	set, err := Load(strings.NewReader(`name: dry
maxHop: 2
rules:
  - id: release
    on: [bucket.orders.updated]
    when: event.newRecord.status == 'cancelled'
    then:
      - forEach:
          query: { bucket: lines, where: { order: "${event.key}" } }
          as: line
          key: id
          do:
            - upsert: { bucket: stock, key: "${line.id}", record: { id: "${line.id}" }, increment: { free: "${line.qty}" } }
      - tx:
          - delete: { bucket: orders, key: "${event.key}", expectVersion: "${event.newRecord._version}" }
          - insert: { bucket: audit, record: { order: "${event.key}" } }
  - id: never
    on: [bucket.orders.updated]
    when: event.newRecord.status == 'lost'
    then:
      - publish: { subject: "alerts.lost", data: { order: "${event.key}" } }
`), "dry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ev := &events.Event{Type: events.OpUpdated, Bucket: "orders", Key: 7.0,
		OldRecord: events.Record{"status": "open", events.FieldVersion: 1.0},
		NewRecord: events.Record{"status": "cancelled", events.FieldVersion: 2.0}, Meta: events.Meta{Seq: 40, Hop: 1}}
	out := DryRun(ctx, set, ev, cl)
	var got []string
	for _, w := range out.Writes {
		got = append(got, w.String())
	}
	want := []string{
		`release/0.s:a.0 upsert stock key="a" record={"id":"a"} increment={"free":2}`,
		`release/0.s:b.0 upsert stock key="b" record={"id":"b"} increment={"free":3}`,
		`release/1 tx ops=[{"op":"delete","bucket":"orders","key":7,"expectVersion":2},{"op":"insert","bucket":"audit","record":{"order":7}}]`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || len(out.Failed) != 0 || out.MaxHop {
		t.Errorf("writes:\n%s\nfailed %v, maxHop %v; want:\n%s", strings.Join(got, "\n"), out.Failed, out.MaxHop, strings.Join(want, "\n"))
	}
	if n, err := cl.Bucket("lines").Count(ctx, nil); err != nil || n != 3 {
		t.Errorf("lines = %d, %v after a dry run; want 3", n, err)
	}

	ev.Meta.Hop = 2
	if out := DryRun(ctx, set, ev, cl); !out.MaxHop {
		t.Error("an event at maxHop: MaxHop not set")
	}
	if out := DryRun(ctx, set, ev, nil); len(out.Failed) != 1 || out.Failed[0].RuleID != "release" {
		t.Errorf("without a store to read: failed %v, want release", out.Failed)
	}
}
