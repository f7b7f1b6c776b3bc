package rulenode

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// loadVersionRules loads the rule of testdata/version-checks.yaml, which
// uses every form of version check.
func loadVersionRules(t *testing.T) *Rule {
	t.Helper()
	return loadTestdata(t, "version-checks.yaml").Rules[0]
}

func TestLoadVersionChecks(t *testing.T) {
	then := loadVersionRules(t).Then
	cases := []struct {
		name    string
		a       *Action
		checked bool
		policy  OnConflict
	}{
		{"update with expectVersion", then[0], true, ConflictSkip},
		{"delete with onConflict fail", then[1], true, ConflictFail},
		{"insert with onConflict skip", then[2], false, ConflictSkip},
		{"tx with reads", then[3], true, ConflictFail},
		{"tx whose op checks", then[4], true, ConflictSkip},
		{"tx without checks", then[5], false, ConflictFail},
		{"log", then[6], false, ConflictFail},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.Checked(); got != tc.checked {
				t.Errorf("Checked() = %v, want %v", got, tc.checked)
			}
			if got := tc.a.ConflictPolicy(); got != tc.policy {
				t.Errorf("ConflictPolicy() = %q, want %q", got, tc.policy)
			}
		})
	}
	reads := then[3].Reads
	if len(reads) != 2 || reads[0].Bucket != "users" || reads[0].Line != 16 || reads[1].Bucket != "orders" || reads[1].Line != 17 {
		t.Errorf("reads = %+v, want users (line 16) and orders (line 17)", reads)
	}
	if v, ok := literal(then[1].ExpectVersion); !ok || v != 4.0 {
		t.Errorf("delete expectVersion = %v, want the literal 4", v)
	}
}

// The checks reach the store as expectVersion on the op and reads on the
// tx, evaluated on the event.
func TestExecuteVersionChecks(t *testing.T) {
	ev := updated("orders", 7.0, events.Record{"userId": "u1", events.FieldVersion: 2.0},
		events.Record{"userId": "u1", events.FieldVersion: 3.0})
	st := &fakeStore{}
	if err := loadVersionRules(t).Execute(context.Background(), ev, Env{Store: st}); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		`0 update {"op":"","bucket":"orders","key":7,"changes":{"seen":true},"expectVersion":3}`,
		`1 delete {"op":"","bucket":"carts","key":"u1","expectVersion":4}`,
		`2 insert {"bucket":"audit","record":{"order":7}}`,
		`3 tx {"ops":[{"op":"upsert","bucket":"totals","key":"u1","increment":{"n":1}}],"reads":[{"bucket":"users","key":"u1","version":0},{"bucket":"orders","key":7,"version":3}]}`,
		`4 tx [{"op":"update","bucket":"orders","key":7,"changes":{"seen":false},"expectVersion":4}]`,
		`5 tx [{"op":"insert","bucket":"audit","record":{"order":7}}]`,
	}, "\n")
	if got := st.trace(); got != want {
		t.Errorf("calls:\n%s\nwant\n%s", got, want)
	}
}

// A conflict stops the rule: with skip as a *SkipError (not an
// ActionError), with fail as an ActionError. Other errors are never skips.
func TestExecuteConflict(t *testing.T) {
	conflict := events.Errorf(events.CodeConflict, "orders 7 is at version 5, not 3")
	ev := updated("orders", 7.0, events.Record{"userId": "u1", events.FieldVersion: 2.0},
		events.Record{"userId": "u1", events.FieldVersion: 3.0})
	cases := []struct {
		name      string
		failOp    string
		err       error
		wantSkip  string // path of the skip
		wantFail  string // path of the ActionError
		wantCalls int
	}{
		{"update skips", "update", conflict, "0", "", 1},
		{"delete fails", "delete", conflict, "", "1", 2},
		{"insert skips", "insert", conflict, "2", "", 3},
		{"tx with reads fails", "tx", conflict, "", "3", 4},
		{"unavailable is no skip", "update", events.Errorf(events.CodeUnavailable, "down"), "", "0", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := &fakeStore{fail: map[string]error{tc.failOp: tc.err}}
			err := loadVersionRules(t).Execute(context.Background(), ev, Env{Store: st})
			var skip *SkipError
			var ae *ActionError
			switch {
			case tc.wantSkip != "":
				if !errors.As(err, &skip) || skip.Path != tc.wantSkip || skip.RuleID != "checks" || !errors.Is(err, events.ErrConflict) {
					t.Fatalf("err = %#v, want a skip at %s wrapping the conflict", err, tc.wantSkip)
				}
				if errors.As(err, &ae) {
					t.Errorf("a skip is also an ActionError: %v", err)
				}
			default:
				if !errors.As(err, &ae) || ae.Path != tc.wantFail || errors.As(err, &skip) || !errors.Is(err, tc.err) {
					t.Fatalf("err = %#v, want an ActionError at %s", err, tc.wantFail)
				}
			}
			if len(st.calls) != tc.wantCalls {
				t.Errorf("%d calls, want %d: the rule stops at the conflict\n%s", len(st.calls), tc.wantCalls, st.trace())
			}
		})
	}
}

// A version that is not a whole number from 0 is an evaluation error (it
// would be the same on every retry), naming the action.
func TestExecuteBadVersion(t *testing.T) {
	for _, v := range []any{2.5, -1.0, "3", nil} {
		ev := updated("orders", 7.0, nil, events.Record{"userId": "u1", events.FieldVersion: v})
		err := loadVersionRules(t).Execute(context.Background(), ev, Env{Store: &fakeStore{}})
		var ee *EvalError
		if !errors.As(err, &ee) || ee.Path != "0" || ee.RuleID != "checks" {
			t.Errorf("version %v: err = %v, want an EvalError at action 0", v, err)
		}
	}
}

// Against a real store: the same event run again (a redelivery) sends the
// same command ids, so an attempt whose update committed gets the store's
// first reply, success, not a conflict with the version it wrote. Another
// event carrying the same, now stale, version is skipped.
func TestVersionCheckDedupe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cl, err := client.Connect(storetest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Define(ctx, events.BucketDef{Bucket: "counters", Key: "id", Schema: map[string]events.FieldDef{
		"id": {Type: events.TypeString, Required: true}, "go": {Type: events.TypeBoolean},
	}}); err != nil {
		t.Fatal(err)
	}
	rec, err := cl.Bucket("counters").Insert(ctx, events.Record{"id": "c"})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Load(strings.NewReader(`name: dedupe
rules:
  - id: flag
    on: [bucket.counters.inserted]
    then:
      - update: { bucket: counters, key: "${event.key}", changes: { go: true }, expectVersion: "${event.record._version}" }
`), "dedupe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ev := &events.Event{Type: events.OpInserted, Bucket: "counters", Key: "c", Record: rec}
	run := func(seq uint64) error {
		return rs.Rules[0].Execute(ctx, ev, Env{Store: newStoreClient(cl, rs.Name, "flag", seq)})
	}
	if err := run(7); err != nil {
		t.Fatalf("first attempt: %v", err)
	}
	if err := run(7); err != nil {
		t.Fatalf("redelivery of the same event: %v, want the first reply", err)
	}
	var skip *SkipError
	if err := run(8); !errors.As(err, &skip) || !errors.Is(err, events.ErrConflict) {
		t.Fatalf("another event at the stale version: %v, want a skip", err)
	}
	got, err := cl.Bucket("counters").Get(ctx, "c")
	if err != nil || got["go"] != true || got[events.FieldVersion] != 2.0 {
		t.Errorf("counter = %v (%v), want go at version 2: one write", got, err)
	}
}
