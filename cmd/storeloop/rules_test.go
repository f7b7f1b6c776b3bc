package main

import (
	"os"
	"path/filepath"
	"testing"
)

const (
	ecommerceRules = "../../examples/ecommerce/rules.yaml"
	cyclicRules    = "../../examples/cyclic/rules.yaml"
)

// writeRules writes a rule file into a temporary directory.
func writeRules(t *testing.T, name, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRulesLint(t *testing.T) {
	broken := writeRules(t, "broken.yaml", `name: broken
rules:
  - id: bad
    on: [bucket.orders.updated]
    when: event.newRecord.status == 'shipped' &&
    then:
      - upsert:
          bucket: loyalty
          colour: red
`)
	// Only a noLoop rule loops: guarded.
	guarded := writeRules(t, "audit.yaml", `name: audit
rules:
  - id: audit
    on: [bucket.audit.>]
    noLoop: true
    then:
      - insert: { bucket: audit, record: { about: "${event.key}" } }
`)
	// With the loyalty rule of ecommerce, a cycle across two rule sets.
	feedback := writeRules(t, "feedback.yaml", `name: feedback
rules:
  - id: points-reopen-order
    on: [bucket.loyalty.updated]
    then:
      - update: { bucket: orders, key: 1, changes: { status: pending } }
`)
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	usage := "Run 'storeloop rules lint --help' for usage.\n"
	brokenErrors := broken + ":5: rule \"bad\": when: column 39: Syntax error: mismatched input '<EOF>' expecting " +
		"{'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}\n" +
		broken + ":9: rule \"bad\": then[0].upsert.colour: unknown field (allowed: bucket, key, record, increment)\n" +
		broken + ":8: rule \"bad\": then[0].upsert.key: required\n"

	cases := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "no cycle", args: []string{ecommerceRules}, code: exitOK,
			stdout: ecommerceRules + ": rule set ecommerce, 2 rules, maxHop 16\nno cycles\n"},
		{name: "cycle", args: []string{cyclicRules}, code: exitCommand,
			stdout: cyclicRules + ": rule set cyclic, 1 rule, maxHop 5\n" +
				"cycle 1: cyclic/bump -[bucket.counters.updated]-> cyclic/bump\n" +
				"1 cycle, 1 unguarded\n",
			stderr: "error: 1 cycle not guarded by noLoop: only when conditions or maxHop stop such a loop at run time\n"},
		{name: "guarded by noLoop", args: []string{guarded}, code: exitOK,
			stdout: guarded + ": rule set audit, 1 rule, maxHop 16\n" +
				"cycle 1 (guarded by noLoop): audit/audit (noLoop) -[bucket.audit.inserted]-> audit/audit\n" +
				"1 cycle, 0 unguarded\n"},
		{name: "cycle across rule sets", args: []string{ecommerceRules, feedback, guarded}, code: exitCommand,
			stdout: ecommerceRules + ": rule set ecommerce, 2 rules, maxHop 16\n" +
				feedback + ": rule set feedback, 1 rule, maxHop 16\n" +
				guarded + ": rule set audit, 1 rule, maxHop 16\n" +
				"cycle 1: ecommerce/loyalty-on-ship -[bucket.loyalty.updated]-> feedback/points-reopen-order -[bucket.orders.updated]-> ecommerce/loyalty-on-ship\n" +
				"cycle 2 (guarded by noLoop): audit/audit (noLoop) -[bucket.audit.inserted]-> audit/audit\n" +
				"2 cycles, 1 unguarded\n",
			stderr: "error: 1 cycle not guarded by noLoop: only when conditions or maxHop stop such a loop at run time\n"},
		{name: "broken file", args: []string{broken}, code: exitUsage,
			stdout: "no cycles\n",
			stderr: brokenErrors + "error: 1 of 1 rule file invalid\n" + usage},
		{name: "broken and missing files beside a good one", args: []string{broken, ecommerceRules, missing}, code: exitUsage,
			stdout: ecommerceRules + ": rule set ecommerce, 2 rules, maxHop 16\nno cycles\n",
			stderr: brokenErrors + missing + ": open " + missing + ": no such file or directory\n" +
				"error: 2 of 3 rule files invalid\n" + usage},
		{name: "no file", args: nil, code: exitUsage,
			stderr: "error: requires at least 1 arg(s), only received 0\n" + usage},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, "", "", append([]string{"rules", "lint"}, tc.args...)...)
			if code != tc.code || stdout != tc.stdout || stderr != tc.stderr {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s\nwant:\n%s", code, tc.code, stdout, tc.stdout, stderr, tc.stderr)
			}
		})
	}
}

func TestRulesShow(t *testing.T) {
	broken := writeRules(t, "broken.yaml", "name: broken\nrules: []\n")
	audit := writeRules(t, "audit.yaml", `name: audit
maxHop: 3
rules:
  - id: audit
    on: [bucket.audit.>, bucket.orders.*]
    noLoop: true
    then:
      - insert: { bucket: audit, record: { about: "${event.key}" } }
      - publish: { subject: audit.written, data: "${event.key}" }
      - publish: { subject: "audit.${event.bucket}" }
`)
	usage := "Run 'storeloop rules show --help' for usage.\n"
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "ecommerce", args: []string{ecommerceRules}, stdout: `rule set: ecommerce (durable consumer ecommerce)
maxHop:   16
filters:  bucket.orders.updated

rule deduct-inventory-on-confirm
  on:     bucket.orders.updated
  when:   event.oldRecord.status != 'confirmed' && event.newRecord.status == 'confirmed'
  then:
    update inventory (line 10), onMissing skip

rule loyalty-on-ship
  on:     bucket.orders.updated
  when:   event.oldRecord.status != 'shipped' && event.newRecord.status == 'shipped'
  then:
    upsert loyalty (line 19)
`},
		{name: "transaction with forEach", args: []string{"../../examples/archive/rules.yaml"}, stdout: `rule set: archive (durable consumer archive)
maxHop:   16
filters:  bucket.users.deleted

rule archive-on-user-delete
  on:     bucket.users.deleted
  when:   (always)
  then:
    tx of 2 ops, atomic (line 12)
      forEach order in orders (line 13)
        insert archivedOrders (line 20)
        delete orders (line 25)
      delete sessions (line 28)
`},
		{name: "tx with a version check, and log", args: []string{"../../examples/reorder/rules.yaml"}, stdout: `rule set: reorder (durable consumer reorder)
maxHop:   16
filters:  bucket.inventory.updated

rule reorder-on-low-stock
  on:     bucket.inventory.updated
  when:   event.newRecord.quantity < 10 && !event.newRecord.reorder
  noLoop: ignores events of its own writes
  then:
    tx of 2 ops, atomic (line 22), onConflict skip
      update inventory (line 25), expectVersion ${event.newRecord._version}
      insert reorderRequests (line 30)
    log info (line 33)
`},
		{name: "version checks", args: []string{"../../rulenode/testdata/version-checks.yaml"}, stdout: `rule set: versions (durable consumer versions)
maxHop:   16
filters:  bucket.orders.updated

rule checks
  on:     bucket.orders.updated
  when:   (always)
  then:
    update orders (line 6), expectVersion ${event.newRecord._version}, onConflict skip (default of a version check)
    delete carts (line 11), expectVersion 4, onConflict fail
    insert audit (line 12), onConflict skip
    tx of 1 op, atomic (line 13), onConflict fail
      reads users ${event.newRecord.userId} at version 0 (line 16)
      reads orders ${event.key} at version ${event.newRecord._version} (line 17)
      upsert totals (line 21)
    tx of 1 op, atomic (line 22), onConflict skip (default of a version check)
      update orders (line 23), expectVersion ${event.newRecord._version + 1}
    tx of 1 op, atomic (line 24)
      insert audit (line 25)
    log info (line 26)
`},
		{name: "noLoop and publish", args: []string{audit}, stdout: `rule set: audit (durable consumer audit)
maxHop:   3
filters:  bucket.audit.> bucket.orders.*

rule audit
  on:     bucket.audit.> bucket.orders.*
  when:   (always)
  noLoop: ignores events of its own writes
  then:
    insert audit (line 8)
    publish audit.written (line 9)
    publish (templated subject) (line 10)
`},
		{name: "broken file", args: []string{broken}, code: exitUsage,
			stderr: broken + ":2: rules: want a non-empty list of rules\nerror: " + broken + " is invalid\n" + usage},
		{name: "two files", args: []string{ecommerceRules, cyclicRules}, code: exitUsage,
			stderr: "error: accepts 1 arg(s), received 2\n" + usage},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, "", "", append([]string{"rules", "show"}, tc.args...)...)
			if code != tc.code || stdout != tc.stdout || stderr != tc.stderr {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s\nwant:\n%s", code, tc.code, stdout, tc.stdout, stderr, tc.stderr)
			}
		})
	}
}
