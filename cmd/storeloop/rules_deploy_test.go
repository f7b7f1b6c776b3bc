package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/storeloop/storeloop/internal/storetest"
)

// The deploy commands' answers and refusals, in order, against one store
// (the switch itself is tested with rule node processes in rulenode).
func TestRulesDeployCommands(t *testing.T) {
	url := storetest.Start(t)
	loop := writeRules(t, "loop.yaml", `name: looping
rules:
  - id: echo
    on: [bucket.stats.updated]
    then:
      - update: { bucket: stats, key: all, increment: { n: 1 } }
`)
	hash := regexp.MustCompile(`[0-9a-f]{12}`)
	date := regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
	by := localUser()
	norm := func(s string) string {
		return strings.ReplaceAll(date.ReplaceAllString(hash.ReplaceAllString(s, "HASH"), "DATE"), by, "USER")
	}
	usage := func(path, msg string) string { return "error: " + msg + "\nRun '" + path + " --help' for usage.\n" }
	steps := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string
	}{
		{name: "ls with nothing deployed", args: []string{"rules", "ls"}, stdout: "NAME  STATUS  VERSION  HASH  FROM  DEPLOYED  BY\n"},
		{name: "history of a set never deployed", args: []string{"rules", "history", "ecommerce"}, code: exitCommand,
			stderr: "error: not_found: rule set not deployed: ecommerce\n"},
		{name: "deploy a loop", args: []string{"rules", "deploy", loop}, code: exitCommand,
			stderr: "error: validation: rule set looping: rules form a loop not guarded by noLoop: looping/echo -[bucket.stats.updated]-> looping/echo\n"},
		{name: "deploy", args: []string{"rules", "deploy", ecommerceRules},
			stdout: "ecommerce version 1 deployed (hash HASH), from seq 1\n"},
		{name: "deploy the same file", args: []string{"rules", "deploy", ecommerceRules},
			stdout: "ecommerce version 1 unchanged (hash HASH), from seq 1\n"},
		{name: "rollback to a version that does not exist", args: []string{"rules", "rollback", "ecommerce", "2"}, code: exitCommand,
			stderr: "error: not_found: rule set not deployed: ecommerce version 2\n"},
		{name: "rollback to a version that is not a number", args: []string{"rules", "rollback", "ecommerce", "v1"}, code: exitUsage,
			stderr: usage("storeloop rules rollback", `VERSION "v1": want a version number from 1`)},
		{name: "rollback", args: []string{"rules", "rollback", "ecommerce", "1"},
			stdout: "ecommerce version 2 deployed (rules of version 1, hash HASH), from seq 1\n"},
		{name: "history", args: []string{"rules", "history", "ecommerce"},
			stdout: "1  HASH  1  DATE  USER\n2  HASH  1  DATE  USER (rollback to 1)\n"},
		{name: "ls", args: []string{"rules", "ls"},
			stdout: "NAME       STATUS  VERSION  HASH          FROM  DEPLOYED              BY\necommerce  ok      2        HASH  1     DATE  USER (rollback to 1)\n"},
		{name: "shadow with --last and --from", args: []string{"rules", "shadow", ecommerceRules, "--last", "2", "--from", "3"}, code: exitUsage,
			stderr: usage("storeloop rules shadow", "--last and --from exclude each other")},
		{name: "shadow with no events", args: []string{"rules", "shadow", ecommerceRules},
			stdout: "shadow of rule set ecommerce: candidate vs version 2 (hash HASH), 0 events\n\nrules added: none; removed: none; changed: none\nwrites gained: 0, lost: 0; 0 of 0 events differ\n"},
		{name: "shadow of a file that does not exist", args: []string{"rules", "shadow", "missing.yaml"}, code: exitUsage,
			stderr: usage("storeloop rules shadow", "open missing.yaml: no such file or directory")},
	}
	for _, s := range steps {
		stdout, stderr, code := cli(t, url, "", s.args...)
		if code != s.code || norm(stdout) != s.stdout || norm(stderr) != s.stderr {
			t.Errorf("%s: exit %d, stdout:\n%s\nstderr:\n%s\nwant exit %d, stdout:\n%s\nstderr:\n%s",
				s.name, code, norm(stdout), norm(stderr), s.code, s.stdout, s.stderr)
		}
	}
}
