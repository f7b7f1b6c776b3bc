package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/rulenode"
)

// auditRules award a point per order, then write an audit record; with
// brokenTotal the audit record breaks the audit schema, so the store
// rejects the second action after the first was applied.
const (
	auditRules = `name: audited
rules:
  - id: award-and-audit
    on: [bucket.orders.inserted]
    then:
      - upsert:
          bucket: loyalty
          key: ${event.record.userId}
          record: { userId: "${event.record.userId}" }
          increment: { points: 1 }
      - insert: { bucket: audit, record: { order: "${event.key}", total: TOTAL } }
`
	brokenTotal = `"${string(event.record.total)}"`
	fixedTotal  = `"${event.record.total}"`
	strictRules = `name: strict
rules:
  - id: audit-nothing
    on: [bucket.orders.inserted]
    then:
      - insert: { bucket: audit, record: {} }
`
)

// dlqStore is a store with the buckets of auditRules, and the CLI's view
// of it.
type dlqStore struct {
	t   *testing.T
	url string
	cl  *client.Client
	js  jetstream.JetStream
}

func newDLQStore(t *testing.T) *dlqStore {
	url := storetest.Start(t)
	cl, err := client.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	js, err := jetstream.New(cl.Conn())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, def := range []events.BucketDef{
		{Bucket: "orders", Key: "id", Schema: map[string]events.FieldDef{
			"id": {Type: events.TypeNumber, Generated: events.GenAutoincrement}, "userId": {Type: events.TypeString, Required: true},
			"total": {Type: events.TypeNumber}}},
		{Bucket: "loyalty", Key: "userId", Schema: map[string]events.FieldDef{
			"userId": {Type: events.TypeString, Required: true}, "points": {Type: events.TypeNumber, Default: 0.0}}},
		{Bucket: "audit", Key: "order", Schema: map[string]events.FieldDef{
			"order": {Type: events.TypeNumber, Required: true}, "total": {Type: events.TypeNumber}}},
	} {
		if err := cl.Define(ctx, def); err != nil {
			t.Fatal(err)
		}
	}
	return &dlqStore{t: t, url: url, cl: cl, js: js}
}

// runRules runs the rule set of src, one event at a time, until its
// backlog is done; the runner stops when the test ends.
func (s *dlqStore) runRules(src string) {
	s.t.Helper()
	set, err := rulenode.Load(strings.NewReader(src), "rules.yaml")
	if err != nil {
		s.t.Fatal(err)
	}
	r := rulenode.NewRunner(s.js, s.cl, set, rulenode.WithConcurrency(1))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	s.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			s.t.Errorf("runner %s: %v", set.Name, err)
		}
	})
	sctx, scancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer scancel()
	if err := s.cl.Settle(sctx, client.SettleRuleSets(set.Name)); err != nil {
		s.t.Fatal(err)
	}
}

func (s *dlqStore) insert(bucket string, rec events.Record) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.cl.Bucket(bucket).Insert(ctx, rec); err != nil {
		s.t.Fatal(err)
	}
}

func (s *dlqStore) get(bucket string, key any) events.Record {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, err := s.cl.Bucket(bucket).Get(ctx, key)
	if err != nil {
		s.t.Fatal(err)
	}
	return rec
}

var rfc3339RE = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)

// TestDLQ runs a session of dlq commands, in order, against dead letters
// of two rule sets: audited (2 letters, seq 1 and 2) and strict (3, 4).
func TestDLQ(t *testing.T) {
	s := newDLQStore(t)
	s.insert("orders", events.Record{"userId": "ann", "total": 7})
	s.insert("orders", events.Record{"userId": "bob", "total": 9})
	s.runRules(strings.Replace(auditRules, "TOTAL", brokenTotal, 1))
	s.runRules(strictRules)

	broken := writeRules(t, "broken.yaml", strings.Replace(auditRules, "TOTAL", brokenTotal, 1))
	fixed := writeRules(t, "fixed.yaml", strings.Replace(auditRules, "TOTAL", fixedTotal, 1))
	usage := func(path, msg string) string { return "error: " + msg + "\nRun '" + path + " --help' for usage.\n" }
	const (
		auditErr  = `rule "award-and-audit" action 1 (insert): validation: record does not match the schema of bucket "audit": total: must be a number, not a string (type)`
		strictErr = `rule "audit-nothing" action 0 (insert): validation: record does not match the schema of bucket "audit": order: is required (required)`
	)
	ls := "SEQ  TIME                  RULE SET  RULE             REASON    SUBJECT                 STREAM SEQ  DELIVERIES  ERROR\n"
	row := map[int]string{
		1: "1    YYYY-MM-DDThh:mm:ssZ  audited   award-and-audit  rejected  bucket.orders.inserted  4           1           " + auditErr + "\n",
		2: "2    YYYY-MM-DDThh:mm:ssZ  audited   award-and-audit  rejected  bucket.orders.inserted  5           1           " + auditErr + "\n",
		3: "3    YYYY-MM-DDThh:mm:ssZ  strict    audit-nothing    rejected  bucket.orders.inserted  4           1           " + strictErr + "\n",
		4: "4    YYYY-MM-DDThh:mm:ssZ  strict    audit-nothing    rejected  bucket.orders.inserted  5           1           " + strictErr + "\n",
	}
	jsonRow := func(seq int, set, rule string, streamSeq int, err string) string {
		b, _ := json.Marshal(err)
		return fmt.Sprintf(`{"seq":%d,"time":"YYYY-MM-DDThh:mm:ssZ","ruleSet":"%s","ruleId":"%s","reason":"rejected",`+
			`"subject":"bucket.orders.inserted","streamSeq":%d,"deliveries":1,"error":%s}`+"\n", seq, set, rule, streamSeq, b)
	}
	steps := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
		after  func(t *testing.T)
	}{
		{name: "ls", args: []string{"dlq", "ls"}, stdout: ls + row[1] + row[2] + row[3] + row[4]},
		{name: "ls a rule set as JSON", args: []string{"dlq", "ls", "--rule-set", "strict", "--json"},
			stdout: jsonRow(3, "strict", "audit-nothing", 4, strictErr) + jsonRow(4, "strict", "audit-nothing", 5, strictErr)},
		{name: "ls the last", args: []string{"dlq", "ls", "-n", "1", "--reason", "rejected"}, stdout: strings.Replace(ls, "RULE             ", "RULE           ", 1) +
			strings.Replace(row[4], "audit-nothing    ", "audit-nothing  ", 1)},
		{name: "ls a reason with none", args: []string{"dlq", "ls", "--reason", "max_hop"}, stdout: "no dead letters\n"},
		{name: "ls -n negative", args: []string{"dlq", "ls", "-n", "-1"}, code: exitUsage,
			stderr: usage("storeloop dlq ls", "-n must be >= 0")},
		{name: "show a missing letter", args: []string{"dlq", "show", "99"}, code: exitCommand,
			stderr: "error: no dead letter 99 in STORELOOP_DLQ\n"},
		{name: "show a bad SEQ", args: []string{"dlq", "show", "first"}, code: exitUsage,
			stderr: usage("storeloop dlq show", `SEQ "first": want a dead letter's sequence (a positive number)`)},
		{name: "retry without rules", args: []string{"dlq", "retry", "1"}, code: exitUsage,
			stderr: usage("storeloop dlq retry", "--rules FILE is required")},
		{name: "retry with the broken rules", args: []string{"dlq", "retry", "1", "--rules", broken}, code: exitCommand,
			stderr: "error: dead letter 1: " + auditErr + "\n",
			after: func(t *testing.T) {
				if rec := s.get("loyalty", "ann"); rec["points"] != 1.0 || rec[events.FieldVersion] != 1.0 {
					t.Errorf("loyalty ann = %v, want 1 point at version 1", rec)
				}
			}},
		{name: "retry and keep", args: []string{"dlq", "retry", "1", "--rules", fixed, "--keep"},
			stdout: "dead letter 1: ran award-and-audit on bucket.orders.inserted #4\n",
			after: func(t *testing.T) {
				// The applied upsert was not sent again; the rejected insert was.
				if rec := s.get("loyalty", "ann"); rec["points"] != 1.0 || rec[events.FieldVersion] != 1.0 {
					t.Errorf("loyalty ann = %v, want 1 point at version 1", rec)
				}
				if rec := s.get("audit", 1); rec["total"] != 7.0 {
					t.Errorf("audit 1 = %v, want total 7", rec)
				}
			}},
		{name: "retry again", args: []string{"dlq", "retry", "1", "--rules", fixed},
			stdout: "dead letter 1: ran award-and-audit on bucket.orders.inserted #4\ndeleted dead letter 1\n",
			after: func(t *testing.T) {
				if rec := s.get("audit", 1); rec[events.FieldVersion] != 1.0 {
					t.Errorf("audit 1 = %v, want version 1", rec)
				}
			}},
		{name: "retry with another rule set's rules", args: []string{"dlq", "retry", "3", "--rules", fixed}, code: exitCommand,
			stderr: "error: dead letter 3: rulenode: dead letter cannot be retried: it is rule set strict's, not audited's\n"},
		{name: "rm", args: []string{"dlq", "rm", "3", "4"}, stdout: "deleted dead letter 3\ndeleted dead letter 4\n"},
		{name: "rm a missing letter", args: []string{"dlq", "rm", "3"}, code: exitCommand,
			stderr: "error: no dead letter 3 in STORELOOP_DLQ\n"},
		{name: "ls what is left", args: []string{"dlq", "ls"}, stdout: ls + row[2]},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, s.url, "", st.args...)
			stdout = rfc3339RE.ReplaceAllString(stdout, "YYYY-MM-DDThh:mm:ssZ")
			if code != st.code || stdout != st.stdout || stderr != st.stderr {
				t.Fatalf("storeloop %s\nexit %d, want %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s\nwant:\n%s",
					strings.Join(st.args, " "), code, st.code, stdout, st.stdout, stderr, st.stderr)
			}
			if st.after != nil {
				st.after(t)
			}
		})
	}

	t.Run("show", func(t *testing.T) {
		stdout, stderr, code := cli(t, s.url, "", "dlq", "show", "2")
		var d struct {
			Seq uint64 `json:"seq"`
			rulenode.DeadLetter
		}
		if code != exitOK || stderr != "" || json.Unmarshal([]byte(stdout), &d) != nil {
			t.Fatalf("exit %d stdout %q stderr %q", code, stdout, stderr)
		}
		ev, err := events.DecodeEvent(d.Payload)
		if err != nil {
			t.Fatalf("payload %s: %v", d.Payload, err)
		}
		if d.Seq != 2 || d.RuleSet != "audited" || d.Reason != rulenode.ReasonRejected || d.StreamSeq != 5 ||
			d.EventID != ev.Meta.EventID || ev.Type != events.OpInserted || ev.Record["userId"] != "bob" {
			t.Errorf("dead letter = %+v, event %+v", d, ev)
		}
	})
}

func TestDLQWithoutStream(t *testing.T) {
	url := storetest.Start(t)
	stdout, stderr, code := cli(t, url, "", "dlq", "ls", "--dlq-stream", "OTHER_DLQ")
	if code != exitCommand || stdout != "" || stderr != "error: no dead-letter stream OTHER_DLQ: no store node has created it yet\n" {
		t.Fatalf("exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	t.Setenv("STORELOOP_DLQ_STREAM", "ENV_DLQ") // the daemons' variable
	stdout, stderr, code = cli(t, url, "", "dlq", "ls")
	if code != exitCommand || stdout != "" || stderr != "error: no dead-letter stream ENV_DLQ: no store node has created it yet\n" {
		t.Fatalf("from the environment: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
}
