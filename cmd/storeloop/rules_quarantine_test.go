package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/examples"
	"github.com/storeloop/storeloop/internal/storetest"
	"github.com/storeloop/storeloop/rulenode"
)

var (
	sinceRE  = regexp.MustCompile(`since=\S+`)
	deployRE = regexp.MustCompile(`\(hash [0-9a-f]{12}\), from seq \d+`)
	// versionRE is a version's hash, sequence, time and author in rules ls.
	versionRE = regexp.MustCompile(`[0-9a-f]{12}  \d+ +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  \S+`)
)

// TestRulesQuarantine quarantines a runaway fan-out with a real runner,
// then lists and resumes it with the CLI.
func TestRulesQuarantine(t *testing.T) {
	url := storetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := client.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, b := range []string{"users", "notes", "announcements", "audit"} {
		def := events.BucketDef{Bucket: b, Key: "id", Schema: map[string]events.FieldDef{"id": {Type: events.TypeString, Required: true}}}
		if err := cl.Define(ctx, def); err != nil {
			t.Fatal(err)
		}
	}
	set, err := rulenode.LoadFile("testdata/fanout.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := examples.RunRules(ctx, url, set)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rules.Stop(); err != nil {
			t.Errorf("runner: %v", err)
		}
	})

	run := func(steps ...cliStep) {
		t.Helper()
		for _, s := range steps {
			stdout, stderr, code := cli(t, url, "", s.args...)
			stdout = sinceRE.ReplaceAllString(stdout, "since=T")
			stdout = deployRE.ReplaceAllString(stdout, "(hash HASH), from seq SEQ")
			stdout = versionRE.ReplaceAllString(stdout, "HASH  SEQ  DATE  USER")
			if code != s.code || stdout != s.stdout || stderr != s.stderr {
				t.Errorf("%s: storeloop %s\nexit %d, want %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s\nwant:\n%s",
					s.name, strings.Join(s.args, " "), code, s.code, stdout, s.stdout, stderr, s.stderr)
			}
		}
	}
	run(
		cliStep{name: "lint accepts budget keys", args: []string{"rules", "lint", "testdata/fanout.yaml"},
			stdout: "testdata/fanout.yaml: rule set fanout, 2 rules, maxHop 16\nno cycles\n"},
		cliStep{name: "none quarantined yet", args: []string{"rules", "quarantined"}},
		cliStep{name: "resume a rule not quarantined", args: []string{"rules", "resume", "fanout", "notify"}, code: exitCommand,
			stderr: "error: not_found: rule notify of rule set fanout is not quarantined\n"},
	)

	for _, u := range []string{"u1", "u2", "u3"} {
		if _, err := cl.Bucket("users").Insert(ctx, events.Record{"id": u}); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []string{"a1", "a2", "a3"} {
		if _, err := cl.Bucket("announcements").Insert(ctx, events.Record{"id": a}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.Settle(ctx, client.SettleRuleSets("fanout")); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(cl.Conn())
	if err != nil {
		t.Fatal(err)
	}
	dls, err := examples.DeadLetters(ctx, js, "fanout")
	if err != nil || len(dls) != 3 {
		t.Fatalf("dead letters %+v, %v; want 3", dls, err)
	}

	const deployed = "fanout version 1 deployed (hash HASH), from seq SEQ\n"
	ls := func(status string) string {
		w := max(len(status), len("STATUS"))
		return fmt.Sprintf("NAME    %-*s  VERSION  HASH          FROM  DEPLOYED              BY\nfanout  %-*s  1        HASH  SEQ  DATE  USER\n",
			w, "STATUS", w, status)
	}
	const quarantined = "fanout notify quarantined since=T reason=rule \"notify\": 3 writes for one event, over its maxWritesPerEvent 2\n"
	run(
		cliStep{name: "quarantined", args: []string{"rules", "quarantined"}, stdout: quarantined},
		cliStep{name: "quarantined of the set", args: []string{"rules", "quarantined", "fanout"}, stdout: quarantined},
		cliStep{name: "quarantined of another set", args: []string{"rules", "quarantined", "other"}},
		cliStep{name: "deploy the set", args: []string{"rules", "deploy", "testdata/fanout.yaml"}, stdout: deployed},
		cliStep{name: "ls shows the quarantine", args: []string{"rules", "ls"}, stdout: ls("quarantined: notify")},
		cliStep{name: "resume an invalid rule id", args: []string{"rules", "resume", "fanout", "no such"}, code: exitUsage,
			stderr: "error: bad_request: \"fanout\" is not a rule set name or \"no such\" not a rule id\nRun 'storeloop rules resume --help' for usage.\n"},
		cliStep{name: "resume", args: []string{"rules", "resume", "fanout", "notify"}, stdout: "fanout notify resumed\n"},
		cliStep{name: "none quarantined after resume", args: []string{"rules", "quarantined"}},
		cliStep{name: "ls after resume", args: []string{"rules", "ls"}, stdout: ls("ok")},
		cliStep{name: "resume twice", args: []string{"rules", "resume", "fanout", "notify"}, code: exitCommand,
			stderr: "error: not_found: rule notify of rule set fanout is not quarantined\n"},
	)
}

// cliStep is one CLI call and its exact outcome.
type cliStep struct {
	name   string
	args   []string
	code   int
	stdout string
	stderr string
}
