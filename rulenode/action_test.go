package rulenode

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/storeloop/storeloop/events"
)

func updated(bucket string, key any, old, new events.Record) *events.Event {
	return &events.Event{Type: events.OpUpdated, Bucket: bucket, Key: key, OldRecord: old, NewRecord: new,
		Meta: events.Meta{EventID: "ev-1", Time: 1700000000000, CorrelationID: "c-1", Hop: 0, Seq: 42}}
}

func TestExecuteSeedRules(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		rule    string
		ev      *events.Event
		records map[string][]events.Record
		want    string
	}{
		{
			name: "loyalty on ship, total 2598",
			file: exampleRules("loyalty"), rule: "loyalty-on-ship",
			ev: updated("orders", 1.0,
				events.Record{"userId": "alice", "total": 2598.0, "status": "confirmed"},
				events.Record{"userId": "alice", "total": 2598.0, "status": "shipped"}),
			want: `0 upsert {"op":"","bucket":"loyalty","key":"alice","record":{"userId":"alice"},"increment":{"points":259}}`,
		},
		{
			name: "user stats on insert",
			file: "testdata/user-stats.yaml", rule: "user-stats-on-order",
			ev: &events.Event{Type: events.OpInserted, Bucket: "orders", Key: 7.0,
				Record: events.Record{"userId": "bob", "total": 25.5},
				Meta:   events.Meta{EventID: "e", Time: 1700000000000}},
			want: `0 upsert {"op":"","bucket":"userStats","key":"bob","record":{"lastOrder":1700000000000,"userId":"bob"},"increment":{"orderCount":1,"totalSpent":25.5}}`,
		},
		{
			name: "reorder tx",
			file: "testdata/reorder.yaml", rule: "reorder-on-low-stock",
			ev: updated("inventory", "SKU-1",
				events.Record{"sku": "SKU-1", "quantity": 12.0, "reorder": false},
				events.Record{"sku": "SKU-1", "quantity": 8.0, "reorder": false}),
			want: `0 tx [{"op":"update","bucket":"inventory","key":"SKU-1","changes":{"reorder":true}},{"op":"insert","bucket":"reorderRequests","record":{"quantity":100,"sku":"SKU-1"}}]`,
		},
		{
			name: "inventory deduction",
			file: exampleRules("ecommerce"), rule: "deduct-inventory-on-confirm",
			ev: updated("orders", 1.0,
				events.Record{"sku": "LAPTOP-1", "qty": 2.0, "status": "pending"},
				events.Record{"sku": "LAPTOP-1", "qty": 2.0, "status": "confirmed"}),
			want: `0 update {"op":"","bucket":"inventory","key":"LAPTOP-1","increment":{"quantity":-2}}`,
		},
		{
			name: "archive on user delete: one tx with a forEach",
			file: "testdata/archive-on-delete.yaml", rule: "archive-on-user-delete",
			ev: &events.Event{Type: events.OpDeleted, Bucket: "users", Key: "u1",
				Record: events.Record{"id": "u1", "name": "Alice"}},
			records: map[string][]events.Record{"orders": {
				{"id": 1.0, "userId": "u1", "total": 100.0},
				{"id": 2.0, "userId": "u1", "total": 250.0},
			}},
			want: strings.Join([]string{
				`0.0 query {"bucket":"orders","where":{"userId":"u1"}}`,
				`0 tx [` +
					`{"op":"insert","bucket":"archivedOrders","record":{"total":100,"userId":"u1"}},` +
					`{"op":"delete","bucket":"orders","key":1},` +
					`{"op":"insert","bucket":"archivedOrders","record":{"total":250,"userId":"u1"}},` +
					`{"op":"delete","bucket":"orders","key":2},` +
					`{"op":"delete","bucket":"sessions","key":"u1"}]`,
			}, "\n"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ruleByID(t, loadRules(t, tc.file), tc.rule)
			ok, err := r.Eligible(context.Background(), tc.ev)
			if err != nil || !ok {
				t.Fatalf("Eligible = %v, %v; want true", ok, err)
			}
			st := &fakeStore{records: tc.records}
			if err := r.Execute(context.Background(), tc.ev, Env{Store: st}); err != nil {
				t.Fatalf("Execute: %v", err)
			}
			if got := st.trace(); got != tc.want {
				t.Fatalf("calls:\n%s\nwant:\n%s", got, tc.want)
			}
			// Running again for the same event repeats the same calls:
			// this is what makes command ids derived from paths idempotent.
			again := &fakeStore{records: tc.records}
			if err := r.Execute(context.Background(), tc.ev, Env{Store: again}); err != nil {
				t.Fatal(err)
			}
			if again.trace() != st.trace() {
				t.Fatalf("second run differs:\n%s", again.trace())
			}
		})
	}
}

func TestEligible(t *testing.T) {
	rs := loadTestdata(t, "reorder.yaml")
	r := ruleByID(t, rs, "reorder-on-low-stock")
	noLoop := ruleByID(t, loadTestdata(t, "cyclic.yaml"), "audit")
	tests := []struct {
		name string
		rule *Rule
		ev   *events.Event
		want bool
	}{
		{"crossing below 10", r, updated("inventory", "s", nil, events.Record{"quantity": 8.0, "reorder": false}), true},
		{"already flagged", r, updated("inventory", "s", nil, events.Record{"quantity": 8.0, "reorder": true}), false},
		{"enough stock", r, updated("inventory", "s", nil, events.Record{"quantity": 10.0, "reorder": false}), false},
		{"noLoop: own write", noLoop, &events.Event{Type: events.OpInserted, Bucket: "audit", Meta: events.Meta{RuleID: "audit"}}, false},
		{"noLoop: other's write", noLoop, &events.Event{Type: events.OpInserted, Bucket: "audit", Meta: events.Meta{RuleID: "x"}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.rule.Eligible(context.Background(), tc.ev)
			if err != nil || got != tc.want {
				t.Fatalf("Eligible = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestEligibleEvalError(t *testing.T) {
	r := ruleByID(t, loadRules(t, exampleRules("loyalty")), "loyalty-on-ship")
	// An inserted event has no oldRecord: CEL reports the missing key.
	_, err := r.Eligible(context.Background(), &events.Event{Type: events.OpInserted, Bucket: "orders"})
	var ee *EvalError
	if !errors.As(err, &ee) || ee.RuleID != "loyalty-on-ship" || ee.Path != "" || !strings.Contains(err.Error(), "oldRecord") {
		t.Fatalf("err = %v, want an EvalError about oldRecord", err)
	}
}

const forEachRules = `
name: fe
rules:
  - id: by-index
    on: [bucket.users.deleted]
    then:
      - log: { message: "start" }
      - forEach:
          query: { bucket: orders }
          as: o
          do:
            - delete: { bucket: orders, key: "${o.id}" }
            - forEach:
                query: { bucket: lines, where: { order: "${o.id}" } }
                as: l
                do:
                  - update: { bucket: lines, key: "${l.id}", changes: { order: "${o.id}", line: "${l.id}" } }
  - id: by-key
    on: [bucket.users.deleted]
    then:
      - forEach:
          query: { bucket: orders }
          as: o
          key: id
          do:
            - delete: { bucket: orders, key: "${o.id}" }
            - publish: { subject: "orders.archived.${o.id}", data: { id: "${o.id}", note: "order ${o.id} of ${event.key}" } }
`

func TestExecuteForEachPaths(t *testing.T) {
	rs, err := Load(strings.NewReader(forEachRules), "fe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ev := &events.Event{Type: events.OpDeleted, Bucket: "users", Key: "u1"}
	records := map[string][]events.Record{
		"orders": {{"id": 1.0}, {"id": "a.b"}},
		"lines":  {{"id": 10.0}},
	}
	tests := []struct {
		rule string
		want string
	}{
		{"by-index", strings.Join([]string{
			`1 query {"bucket":"orders","where":null}`,
			`1.0.0 delete {"op":"","bucket":"orders","key":1}`,
			`1.0.1 query {"bucket":"lines","where":{"order":1}}`,
			`1.0.1.0.0 update {"op":"","bucket":"lines","key":10,"changes":{"line":10,"order":1}}`,
			`1.1.0 delete {"op":"","bucket":"orders","key":"a.b"}`,
			`1.1.1 query {"bucket":"lines","where":{"order":"a.b"}}`,
			`1.1.1.0.0 update {"op":"","bucket":"lines","key":10,"changes":{"line":10,"order":"a.b"}}`,
		}, "\n")},
		{"by-key", strings.Join([]string{
			`0 query {"bucket":"orders","where":null}`,
			`0.n:1.0 delete {"op":"","bucket":"orders","key":1}`,
			`0.n:1.1 publish {"data":"{\"id\":1,\"note\":\"order 1 of u1\"}","subject":"orders.archived.1"}`,
			`0.s:a%2Eb.0 delete {"op":"","bucket":"orders","key":"a.b"}`,
		}, "\n")},
	}
	for _, tc := range tests {
		t.Run(tc.rule, func(t *testing.T) {
			var logs bytes.Buffer
			st := &fakeStore{records: records}
			err := ruleByID(t, rs, tc.rule).Execute(context.Background(), ev,
				Env{Store: st, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if tc.rule == "by-key" {
				// "orders.archived.a.b" is a valid subject: the second
				// item's publish goes through; nothing else fails.
				if err != nil {
					t.Fatal(err)
				}
				tc.want += "\n" + `0.s:a%2Eb.1 publish {"data":"{\"id\":\"a.b\",\"note\":\"order a.b of u1\"}","subject":"orders.archived.a.b"}`
			} else if err != nil {
				t.Fatal(err)
			}
			if got := st.trace(); got != tc.want {
				t.Fatalf("calls:\n%s\nwant:\n%s", got, tc.want)
			}
			if tc.rule == "by-index" && !strings.Contains(logs.String(), `msg=start rule=by-index path=0`) {
				t.Fatalf("log output %q", logs.String())
			}
		})
	}
}

func TestExecuteErrors(t *testing.T) {
	const src = `
name: errs
rules:
  - id: r
    on: [bucket.x.updated]
    then:
      - insert: { bucket: a, record: { n: 1 } }
      - update: { bucket: b, key: "${event.newRecord.k}", changes: { n: 2 } }
`
	rs, err := Load(strings.NewReader(src), "errs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := rs.Rules[0]
	tests := []struct {
		name   string
		ev     *events.Event
		fail   map[string]error
		check  func(error) bool
		nCalls int
	}{
		{
			name: "store error keeps its code",
			ev:   updated("x", 1.0, nil, events.Record{"k": "a"}),
			fail: map[string]error{"insert": events.Errorf(events.CodeUnique, "taken")},
			check: func(err error) bool {
				var ae *ActionError
				return errors.Is(err, events.ErrUnique) && errors.As(err, &ae) && ae.Path == "0" && ae.Kind == KindInsert
			},
			nCalls: 1,
		},
		{
			name: "missing field is an EvalError at its path",
			ev:   updated("x", 1.0, nil, events.Record{}),
			check: func(err error) bool {
				var ee *EvalError
				return errors.As(err, &ee) && ee.Path == "1" && ee.RuleID == "r" && ee.Expr == "event.newRecord.k"
			},
			nCalls: 1,
		},
		{
			name: "key of the wrong type",
			ev:   updated("x", 1.0, nil, events.Record{"k": true}),
			check: func(err error) bool {
				var ae *ActionError
				return errors.As(err, &ae) && ae.Path == "1" && strings.Contains(err.Error(), "key must be a string or a number")
			},
			nCalls: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &fakeStore{fail: tc.fail}
			err := r.Execute(context.Background(), tc.ev, Env{Store: st})
			if err == nil || !tc.check(err) {
				t.Fatalf("err = %v", err)
			}
			if len(st.calls) != tc.nCalls {
				t.Fatalf("calls = %s", st.trace())
			}
		})
	}
}

func TestPublishReservedSubject(t *testing.T) {
	const src = `
name: p
rules:
  - id: p
    on: [bucket.x.updated]
    then:
      - publish: { subject: "${event.newRecord.to}" }
`
	rs, err := Load(strings.NewReader(src), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{"bucket.orders.deleted", "store.insert", "storeloop.dlq.x"} {
		st := &fakeStore{}
		err = rs.Rules[0].Execute(context.Background(), updated("x", 1.0, nil, events.Record{"to": subject}), Env{Store: st})
		if err == nil || !strings.Contains(err.Error(), "reserved") || len(st.calls) != 0 {
			t.Fatalf("publish to %s: err = %v, calls %s", subject, err, st.trace())
		}
	}
}

func TestExecuteHandlerPaths(t *testing.T) {
	rs, err := NewRuleSet("go", &Rule{
		ID: "h", On: []string{"bucket.orders.inserted"}, When: "event.record.total > 100",
		Handler: func(ctx context.Context, ev *events.Event, env *Env) error {
			if _, err := env.Store.Insert(ctx, "audit", events.Record{"k": ev.Key}); err != nil {
				return err
			}
			_, err := env.Store.Delete(ctx, "orders", ev.Key)
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := rs.Rules[0]
	ev := &events.Event{Type: events.OpInserted, Bucket: "orders", Key: 3.0, Record: events.Record{"total": 150.0}}
	if ok, err := r.Eligible(context.Background(), ev); !ok || err != nil {
		t.Fatalf("Eligible = %v, %v", ok, err)
	}
	st := &fakeStore{}
	if err := r.Execute(context.Background(), ev, Env{Store: st}); err != nil {
		t.Fatal(err)
	}
	want := `0 insert {"bucket":"audit","record":{"k":3}}` + "\n" + `1 delete {"op":"","bucket":"orders","key":3}`
	if st.trace() != want {
		t.Fatalf("calls:\n%s\nwant:\n%s", st.trace(), want)
	}
}
