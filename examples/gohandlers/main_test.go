package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
)

// TestRun runs the program's scenario on a real embedded store and checks
// the results and the printed report exactly.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	res, err := run(ctx, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if want := map[string]float64{"alice": 25}; !reflect.DeepEqual(res.Points, want) {
		t.Errorf("loyalty points = %v, want %v (250 / 10, for the shipped order only)", res.Points, want)
	}
	if n := len(res.OrderTimes["alice"]); n != 2 || len(res.OrderTimes["bob"]) != 1 {
		t.Fatalf("order inserts in the stream = %v, want 2 of alice and 1 of bob", res.OrderTimes)
	}
	last := func(user string) int64 { ts := res.OrderTimes[user]; return ts[len(ts)-1] }
	want := map[string]stats{
		"alice": {OrderCount: 2, TotalSpent: 350, LastOrder: last("alice")},
		"bob":   {OrderCount: 1, TotalSpent: 75, LastOrder: last("bob")},
	}
	if !reflect.DeepEqual(res.Stats, want) {
		t.Errorf("userStats = %+v, want %+v", res.Stats, want)
	}

	stamp := func(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }
	report := fmt.Sprintf("alice's loyalty points: 25\n"+
		"alice: orderCount 2, totalSpent 350, lastOrder %s\n"+
		"bob: orderCount 1, totalSpent 75, lastOrder %s\n", stamp(last("alice")), stamp(last("bob")))
	_, got, _ := bytes.Cut(out.Bytes(), []byte("\n")) // the first line names a random port
	if string(got) != report {
		t.Errorf("report:\n%s\nwant:\n%s", got, report)
	}
}

// The handlers alone, on events built by hand: the guards, the writes and
// the typed error of a malformed order.
func TestHandlers(t *testing.T) {
	order := func(status string) events.Record {
		return events.Record{"userId": "alice", "total": 259.0, "status": status}
	}
	cases := []struct {
		name    string
		rule    string
		ev      *events.Event
		want    []write
		wantErr error
	}{
		{name: "shipped gives points", rule: "loyalty-on-ship",
			ev:   &events.Event{Type: events.OpUpdated, Bucket: "orders", Key: 1.0, OldRecord: order("paid"), NewRecord: order("shipped")},
			want: []write{{bucket: "loyalty", key: "alice", rec: events.Record{"userId": "alice"}, inc: map[string]float64{"points": 25}}}},
		{name: "paid gives nothing", rule: "loyalty-on-ship",
			ev: &events.Event{Type: events.OpUpdated, Bucket: "orders", Key: 1.0, OldRecord: order("pending"), NewRecord: order("paid")}},
		{name: "shipped again gives nothing", rule: "loyalty-on-ship",
			ev: &events.Event{Type: events.OpUpdated, Bucket: "orders", Key: 1.0, OldRecord: order("shipped"), NewRecord: order("shipped")}},
		{name: "insert counts", rule: "user-stats-on-order",
			ev: &events.Event{Type: events.OpInserted, Bucket: "orders", Key: 1.0, Record: order("pending"), Meta: events.Meta{Time: 1700000000123}},
			want: []write{{bucket: "userStats", key: "alice", rec: events.Record{"userId": "alice", "lastOrder": 1700000000123.0},
				inc: map[string]float64{"orderCount": 1, "totalSpent": 259}}}},
		{name: "malformed order", rule: "user-stats-on-order",
			ev:      &events.Event{Type: events.OpInserted, Bucket: "orders", Key: 1.0, Record: events.Record{"userId": 7.0}},
			wantErr: events.ErrValidation},
	}
	set, err := ruleSet()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var rule *rulenode.Rule
			for _, r := range set.Rules {
				if r.ID == tc.rule {
					rule = r
				}
			}
			store := &recorder{}
			err := rule.Execute(context.Background(), tc.ev, rulenode.Env{Store: store})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !reflect.DeepEqual(store.writes, tc.want) {
				t.Errorf("writes = %+v, want %+v", store.writes, tc.want)
			}
		})
	}
}

func TestRulesDoNotLoop(t *testing.T) {
	set, err := ruleSet()
	if err != nil {
		t.Fatal(err)
	}
	if c := rulenode.Lint(set); len(c) != 0 {
		t.Errorf("cycles: %v", c)
	}
}

// write is an upsert a handler made.
type write struct {
	bucket string
	key    any
	rec    events.Record
	inc    map[string]float64
}

// recorder is a rulenode.Store that records upserts; the handlers make no
// other call, so any other is an error.
type recorder struct {
	rulenode.Store // nil: any other call panics
	writes         []write
}

func (r *recorder) Upsert(ctx context.Context, bucket string, key any, rec events.Record, inc map[string]float64) (events.Record, error) {
	if rulenode.ActionPath(ctx) == "" {
		return nil, errors.New("upsert without an action path")
	}
	r.writes = append(r.writes, write{bucket, key, rec, inc})
	return rec, nil
}
