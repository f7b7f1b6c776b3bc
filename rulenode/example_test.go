package rulenode_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
)

// printStore prints every call with its action path instead of storing.
type printStore struct{ rulenode.Store }

func (printStore) Upsert(ctx context.Context, bucket string, key any, rec events.Record, inc map[string]float64) (events.Record, error) {
	fmt.Printf("path %s: upsert %s key=%v record=%v increment=%v\n", rulenode.ActionPath(ctx), bucket, key, rec, inc)
	return rec, nil
}

func ExampleLoad() {
	rs, err := rulenode.Load(strings.NewReader(`
name: commerce
rules:
  - id: loyalty-on-ship
    on: [bucket.orders.updated]
    when: event.oldRecord.status != 'shipped' && event.newRecord.status == 'shipped'
    then:
      - upsert:
          bucket: loyalty
          key: ${event.newRecord.userId}
          record: { userId: "${event.newRecord.userId}" }
          increment: { points: "${int(event.newRecord.total / 10)}" }
`), "commerce.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	ev := &events.Event{
		Type: events.OpUpdated, Bucket: "orders", Key: 1.0,
		OldRecord: events.Record{"userId": "alice", "total": 25.5, "status": "paid"},
		NewRecord: events.Record{"userId": "alice", "total": 25.5, "status": "shipped"},
	}
	fmt.Println("consumer filters:", rs.Subjects())
	for _, r := range rs.Match(events.EventSubject(ev.Bucket, ev.Type)) {
		if ok, err := r.Eligible(context.Background(), ev); err != nil || !ok {
			continue
		}
		if err := r.Execute(context.Background(), ev, rulenode.Env{Store: printStore{}}); err != nil {
			fmt.Println(err)
		}
	}
	// Output:
	// consumer filters: [bucket.orders.updated]
	// path 0: upsert loyalty key=alice record=map[userId:alice] increment=map[points:2]
}

func ExampleLoad_errors() {
	_, err := rulenode.Load(strings.NewReader(`
name: broken
rules:
  - id: r1
    on: [bucket.orders.updated]
    when: event.newRecord.totl > 1 && evnt.x
    then:
      - insert: { bucket: "no spaces", record: {} }
`), "broken.yaml")
	fmt.Println(err)
	// Output:
	// broken.yaml:6: rule "r1": when: column 29: undeclared reference to 'evnt' (did you mean 'event'?)
	// broken.yaml:8: rule "r1": then[0].insert.bucket: "no spaces" is not a valid bucket name (1-64 of A-Z a-z 0-9 _ -)
}
