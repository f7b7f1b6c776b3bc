package rulenode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storeloop/storeloop/events"
)

func TestLoadTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) < 6 {
		t.Fatalf("testdata: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			rs, err := LoadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if rs.Name == "" || rs.MaxHop != DefaultMaxHop || len(rs.Rules) == 0 || rs.File != f {
				t.Fatalf("rule set %+v", rs)
			}
		})
	}
}

func TestLoadShape(t *testing.T) {
	rs := loadTestdata(t, "archive-on-delete.yaml")
	r := rs.Rules[0]
	if r.ID != "archive-on-user-delete" || len(r.Then) != 1 || r.Then[0].Kind != KindTx {
		t.Fatalf("rule %+v", r)
	}
	tx := r.Then[0]
	if len(tx.Ops) != 2 || tx.Ops[0].Kind != KindForEach || tx.Ops[1].Kind != KindDelete {
		t.Fatalf("tx ops %+v", tx.Ops)
	}
	fe := tx.Ops[0]
	if fe.Bucket != "orders" || fe.As != "order" || fe.ItemKey != "id" || len(fe.Do) != 2 || fe.Line != 11 {
		t.Fatalf("forEach %+v", fe)
	}
}

func TestLoadErrors(t *testing.T) {
	const head = "name: t\nrules:\n"
	tests := []struct {
		name   string
		src    string
		rule   string
		field  string
		line   int
		reason string
	}{
		{"empty file", "", "", "", 0, "empty"},
		{"not yaml", "name: [", "", "", 0, "did not find expected"},
		{"two documents", "name: a\n---\nname: b\n", "", "", 2, "one YAML document"},
		{"unknown top key", "name: t\nrulez: []\n", "", "rulez", 2, "unknown field"},
		{"bad set name", "name: a.b\nrules: []\n", "", "name", 1, "not a valid rule-set name"},
		{"maxHop zero", "name: t\nmaxHop: 0\nrules: []\n", "", "maxHop", 2, "1 to 1000"},
		{"maxHop too big", "name: t\nmaxHop: 1001\nrules: []\n", "", "maxHop", 2, "1 to 1000"},
		{"no rules", "name: t\nrules: []\n", "", "rules", 2, "non-empty list"},
		{"missing id", head + "  - on: [a]\n    then: [{log: {message: x}}]\n", "", "rules[0].id", 3, "required"},
		{"numeric id", head + "  - id: 42\n    on: [a]\n    then: [{log: {message: x}}]\n", "", "rules[0].id", 3, "want a string"},
		{"duplicate id", head + "  - id: a\n    on: [x]\n    then: [{log: {message: x}}]\n  - id: a\n    on: [x]\n    then: [{log: {message: x}}]\n",
			"", "rules[1].id", 6, "duplicate rule id \"a\" (first on line 3)"},
		{"unknown rule key", head + "  - id: r\n    on: [x]\n    then: [{log: {message: x}}]\n    priority: 1\n", "r", "priority", 6, "unknown field"},
		{"empty on", head + "  - id: r\n    on: []\n    then: [{log: {message: x}}]\n", "r", "on", 4, "non-empty list"},
		{"bad filter", head + "  - id: r\n    on: [bucket.>.x]\n    then: [{log: {message: x}}]\n", "r", "on[0]", 4, "'>' before the last token"},
		{"partial wildcard", head + "  - id: r\n    on: [bucket.ord*]\n    then: [{log: {message: x}}]\n", "r", "on[0]", 4, "wildcard inside a token"},
		{"when does not compile", head + "  - id: r\n    on: [x]\n    when: event.a ==\n    then: [{log: {message: x}}]\n", "r", "when", 5, "Syntax error"},
		{"when not bool", head + "  - id: r\n    on: [x]\n    when: \"'yes'\"\n    then: [{log: {message: x}}]\n", "r", "when", 5, "want bool"},
		{"when unknown variable", head + "  - id: r\n    on: [x]\n    when: evnt.a == 1\n    then: [{log: {message: x}}]\n", "r", "when", 5, "undeclared reference to 'evnt'"},
		{"noLoop not bool", head + "  - id: r\n    on: [x]\n    noLoop: yes please\n    then: [{log: {message: x}}]\n", "r", "noLoop", 5, "want true or false"},
		{"two kinds", head + "  - id: r\n    on: [x]\n    then:\n      - insert: {bucket: a, record: {}}\n        delete: {bucket: a, key: 1}\n", "r", "then[0]", 6, "exactly one of"},
		{"unknown kind", head + "  - id: r\n    on: [x]\n    then:\n      - email: {to: x}\n", "r", "then[0]", 6, "unknown action \"email\""},
		{"bad bucket", head + "  - id: r\n    on: [x]\n    then:\n      - insert:\n          bucket: a.b\n          record: {}\n", "r", "then[0].insert.bucket", 7, "not a valid bucket name"},
		{"missing key", head + "  - id: r\n    on: [x]\n    then:\n      - delete: {bucket: a}\n", "r", "then[0].delete.key", 6, "required"},
		{"update without changes", head + "  - id: r\n    on: [x]\n    then:\n      - update: {bucket: a, key: 1}\n", "r", "then[0].update", 6, "changes or increment"},
		{"record is a list", head + "  - id: r\n    on: [x]\n    then:\n      - insert: {bucket: a, record: [1]}\n", "r", "then[0].insert.record", 6, "want a mapping"},
		{"unknown action field", head + "  - id: r\n    on: [x]\n    then:\n      - insert: {bucket: a, record: {}, ttl: 3}\n", "r", "then[0].insert.ttl", 6, "unknown field"},
		{"template does not compile", head + "  - id: r\n    on: [x]\n    then:\n      - insert:\n          bucket: a\n          record:\n            n: ${event.a +}\n", "r", "then[0].insert.record.n", 9, "Syntax error"},
		{"unterminated template", head + "  - id: r\n    on: [x]\n    then:\n      - log: {message: \"a ${event.a\"}\n", "r", "then[0].log.message", 6, "unterminated ${"},
		{"loop variable out of scope", head + "  - id: r\n    on: [x]\n    then:\n      - delete: {bucket: a, key: \"${o.id}\"}\n", "r", "then[0].delete.key", 6, "undeclared reference to 'o'"},
		{"publish in tx", head + "  - id: r\n    on: [x]\n    then:\n      - tx:\n          - publish: {subject: a}\n", "r", "then[0].tx[0]", 7, "publish cannot be inside a tx"},
		{"publish reserved", head + "  - id: r\n    on: [x]\n    then:\n      - publish: {subject: bucket.orders.inserted}\n", "r", "then[0].publish.subject", 6, "reserved"},
		{"publish to a command", head + "  - id: r\n    on: [x]\n    then:\n      - publish: {subject: store.insert}\n", "r", "then[0].publish.subject", 6, "reserved"},
		{"log level", head + "  - id: r\n    on: [x]\n    then:\n      - log: {message: m, level: loud}\n", "r", "then[0].log.level", 6, "want debug, info, warn or error"},
		{"forEach variable shadows", head + "  - id: r\n    on: [x]\n    then:\n      - forEach:\n          query: {bucket: a}\n          as: event\n          do: [{log: {message: m}}]\n", "r", "then[0].forEach.as", 8, "already bound"},
		{"forEach variable reserved", head + "  - id: r\n    on: [x]\n    then:\n      - forEach:\n          query: {bucket: a}\n          as: in\n          do: [{log: {message: m}}]\n", "r", "then[0].forEach.as", 8, "not a usable variable name"},
		{"forEach without query", head + "  - id: r\n    on: [x]\n    then:\n      - forEach: {as: o, do: [{log: {message: m}}]}\n", "r", "then[0].forEach.query", 6, "required"},
		{"expectVersion a string", head + "  - id: r\n    on: [x]\n    then:\n      - update: {bucket: a, key: 1, changes: {}, expectVersion: two}\n", "r", "then[0].update.expectVersion", 6, "want a whole number from 0 or a ${...} expression, got a string"},
		{"expectVersion negative", head + "  - id: r\n    on: [x]\n    then:\n      - delete:\n          bucket: a\n          key: 1\n          expectVersion: -1\n", "r", "then[0].delete.expectVersion", 9, "want a whole number from 0"},
		{"expectVersion fraction", head + "  - id: r\n    on: [x]\n    then:\n      - update: {bucket: a, key: 1, changes: {}, expectVersion: 1.5}\n", "r", "then[0].update.expectVersion", 6, "got a number"},
		{"expectVersion bad expression", head + "  - id: r\n    on: [x]\n    then:\n      - update: {bucket: a, key: 1, changes: {}, expectVersion: \"${event.}\"}\n", "r", "then[0].update.expectVersion", 6, "Syntax error"},
		{"expectVersion on insert", head + "  - id: r\n    on: [x]\n    then:\n      - insert: {bucket: a, record: {}, expectVersion: 1}\n", "r", "then[0].insert.expectVersion", 6, "unknown field"},
		{"expectVersion on upsert", head + "  - id: r\n    on: [x]\n    then:\n      - upsert: {bucket: a, key: 1, expectVersion: 1}\n", "r", "then[0].upsert.expectVersion", 6, "unknown field"},
		{"onConflict unknown", head + "  - id: r\n    on: [x]\n    then:\n      - insert: {bucket: a, record: {}, onConflict: retry}\n", "r", "then[0].insert.onConflict", 6, "want skip or fail, got \"retry\""},
		{"onConflict without expectVersion", head + "  - id: r\n    on: [x]\n    then:\n      - update: {bucket: a, key: 1, changes: {}, onConflict: skip}\n", "r", "then[0].update.onConflict", 6, "update without expectVersion cannot conflict"},
		{"onConflict inside tx", head + "  - id: r\n    on: [x]\n    then:\n      - tx:\n          - delete: {bucket: a, key: 1, expectVersion: 3, onConflict: fail}\n", "r", "then[0].tx[0].delete.onConflict", 7, "set onConflict on the tx"},
		{"onMissing unknown", head + "  - id: r\n    on: [x]\n    then:\n      - update: {bucket: a, key: 1, changes: {}, onMissing: ignore}\n", "r", "then[0].update.onMissing", 6, "want skip, fail or retry, got \"ignore\""},
		{"onMissing not a string", head + "  - id: r\n    on: [x]\n    then:\n      - update:\n          bucket: a\n          key: 1\n          changes: {}\n          onMissing: [skip]\n", "r", "then[0].update.onMissing", 10, "want a string"},
		{"onMissing on insert", head + "  - id: r\n    on: [x]\n    then:\n      - insert: {bucket: a, record: {}, onMissing: skip}\n", "r", "then[0].insert.onMissing", 6, "unknown field (allowed: bucket, record, onConflict)"},
		{"onMissing on upsert", head + "  - id: r\n    on: [x]\n    then:\n      - upsert: {bucket: a, key: 1, onMissing: fail}\n", "r", "then[0].upsert.onMissing", 6, "unknown field (allowed: bucket, key, record, increment)"},
		{"onMissing on delete", head + "  - id: r\n    on: [x]\n    then:\n      - delete: {bucket: a, key: 1, onMissing: skip}\n", "r", "then[0].delete.onMissing", 6, "unknown field (allowed: bucket, key, expectVersion, onConflict)"},
		{"onMissing on publish", head + "  - id: r\n    on: [x]\n    then:\n      - publish: {subject: a, onMissing: skip}\n", "r", "then[0].publish.onMissing", 6, "unknown field"},
		{"onMissing on log", head + "  - id: r\n    on: [x]\n    then:\n      - log: {message: x, onMissing: skip}\n", "r", "then[0].log.onMissing", 6, "unknown field"},
		{"onMissing inside tx", head + "  - id: r\n    on: [x]\n    then:\n      - tx:\n          - update: {bucket: a, key: 1, changes: {}, onMissing: skip}\n", "r", "then[0].tx[0].update.onMissing", 7, "set onMissing on the tx"},
		{"onMissing inside forEach in tx", head + "  - id: r\n    on: [x]\n    then:\n      - tx:\n          - forEach:\n              query: {bucket: a}\n              as: o\n              do:\n                - update: {bucket: b, key: 1, changes: {}, onMissing: fail}\n", "r", "then[0].tx[0].forEach.do[0].update.onMissing", 11, "set onMissing on the tx"},
		{"onMissing on tx bad", head + "  - id: r\n    on: [x]\n    then:\n      - tx:\n          ops: [{update: {bucket: a, key: 1, changes: {}}}]\n          onMissing: Skip\n", "r", "then[0].tx.onMissing", 8, "want skip, fail or retry, got \"Skip\""},
		{"tx without ops", head + "  - id: r\n    on: [x]\n    then:\n      - tx:\n          onConflict: skip\n", "r", "then[0].tx.ops", 7, "required"},
		{"tx scalar", head + "  - id: r\n    on: [x]\n    then:\n      - tx: all\n", "r", "then[0].tx", 6, "want a list of actions or a mapping"},
		{"tx unknown field", head + "  - id: r\n    on: [x]\n    then:\n      - tx:\n          ops: [{delete: {bucket: a, key: 1}}]\n          retries: 3\n", "r", "then[0].tx.retries", 8, "unknown field"},
		{"reads not a list", head + "  - id: r\n    on: [x]\n    then:\n      - tx:\n          reads: {bucket: a, key: 1, version: 1}\n          ops: [{delete: {bucket: a, key: 1}}]\n", "r", "then[0].tx.reads", 7, "want a non-empty list"},
		{"read without version", head + "  - id: r\n    on: [x]\n    then:\n      - tx:\n          ops: [{delete: {bucket: a, key: 1}}]\n          reads:\n            - {bucket: a, key: 1}\n            - {bucket: b, key: 2}\n", "r", "then[0].tx.reads[0].version", 9, "required"},
		{"read bad bucket", head + "  - id: r\n    on: [x]\n    then:\n      - tx:\n          ops: [{delete: {bucket: a, key: 1}}]\n          reads:\n            - bucket: a.b\n              key: 1\n              version: 0\n", "r", "then[0].tx.reads[0].bucket", 9, "not a valid bucket name"},
		{"read version out of scope", head + "  - id: r\n    on: [x]\n    then:\n      - tx:\n          ops: [{delete: {bucket: a, key: 1}}]\n          reads:\n            - {bucket: a, key: 1, version: \"${o._version}\"}\n", "r", "then[0].tx.reads[0].version", 9, "undeclared reference to 'o'"},
		{"anchors", head + "  - id: r\n    on: &o [x]\n    then: [{log: {message: x}}]\n", "", "", 4, "anchors and aliases"},
		{"nan", head + "  - id: r\n    on: [x]\n    then:\n      - insert: {bucket: a, record: {n: .nan}}\n", "r", "then[0].insert.record.n", 6, "not a finite number"},
		{"binary", head + "  - id: r\n    on: [x]\n    then:\n      - insert: {bucket: a, record: {n: !!binary aGk=}}\n", "r", "then[0].insert.record.n", 6, "unsupported YAML value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(strings.NewReader(tc.src), "t.yaml")
			if err == nil {
				t.Fatal("loaded")
			}
			if !errors.Is(err, events.ErrValidation) {
				t.Fatalf("%v is not a validation error", err)
			}
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("%T is not a LoadError", err)
			}
			if le.File != "t.yaml" || le.RuleID != tc.rule || le.Field != tc.field || le.Line != tc.line || !strings.Contains(le.Reason, tc.reason) {
				t.Fatalf("got %#v\nwant rule %q field %q line %d reason ~%q", le, tc.rule, tc.field, tc.line, tc.reason)
			}
		})
	}
}

// onMissing is kept on the update or tx it is set on; unset, it is "",
// which the runner treats as retry.
func TestLoadOnMissing(t *testing.T) {
	const src = `name: t
rules:
  - id: r
    on: [x]
    then:
      - update: {bucket: a, key: 1, changes: {}, onMissing: skip}
      - update: {bucket: a, key: 1, changes: {}, onMissing: fail}
      - update: {bucket: a, key: 1, changes: {}, onMissing: retry}
      - update: {bucket: a, key: 1, changes: {}}
      - tx:
          ops: [{update: {bucket: a, key: 1, changes: {}}}]
          onMissing: skip
`
	rs, err := Load(strings.NewReader(src), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []OnMissing{MissingSkip, MissingFail, MissingRetry, "", MissingSkip}
	then := rs.Rules[0].Then
	if len(then) != len(want) {
		t.Fatalf("%d actions, want %d", len(then), len(want))
	}
	for i, w := range want {
		if then[i].OnMissing != w {
			t.Errorf("action %d (%s) onMissing = %q, want %q", i, then[i].Kind, then[i].OnMissing, w)
		}
	}
	if op := then[4].Ops[0]; op.OnMissing != "" {
		t.Errorf("tx op onMissing = %q, want unset (the tx has it)", op.OnMissing)
	}
}

func TestLoadErrorsCollected(t *testing.T) {
	src := "name: t\nrules:\n" +
		"  - id: a\n    on: [x]\n    then:\n      - insert: {bucket: 'b c', record: {}}\n" +
		"  - id: b\n    on: [x]\n    when: nope\n    then: [{log: {message: m}}]\n"
	_, err := Load(strings.NewReader(src), "many.yaml")
	var errs LoadErrors
	if !errors.As(err, &errs) || len(errs) != 2 {
		t.Fatalf("err = %v", err)
	}
	want := "many.yaml:6: rule \"a\": then[0].insert.bucket: \"b c\" is not a valid bucket name (1-64 of A-Z a-z 0-9 _ -)\n" +
		"many.yaml:9: rule \"b\": when: "
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Error() =\n%s\nwant prefix\n%s", err, want)
	}
}

func TestLoadCaps(t *testing.T) {
	rule := func(id string, then string) string {
		return fmt.Sprintf("  - id: %s\n    on: [x]\n    then:\n%s", id, then)
	}
	logs := func(n int) string {
		return strings.Repeat("      - log: {message: m}\n", n)
	}
	nestedForEach := func(depth int) string {
		var b strings.Builder
		for i := 0; i < depth; i++ {
			ind := strings.Repeat("    ", i)
			fmt.Fprintf(&b, "%s      - forEach:\n%s          query: {bucket: a}\n%s          as: v%d\n%s          do:\n", ind, ind, ind, i, ind)
		}
		fmt.Fprintf(&b, "%s      - log: {message: m}\n", strings.Repeat("    ", depth))
		return b.String()
	}
	var many strings.Builder
	for i := 0; i <= MaxRules; i++ {
		many.WriteString(rule(fmt.Sprintf("r%d", i), logs(1)))
	}
	tests := []struct {
		name   string
		src    string
		reason string // "" loads
	}{
		{"100 actions", rule("r", logs(MaxActions)), ""},
		{"101 actions", rule("r", logs(MaxActions+1)), "more than 100 actions"},
		{"forEach 4 deep", rule("r", nestedForEach(MaxForEachDepth)), ""},
		{"forEach 5 deep", rule("r", nestedForEach(MaxForEachDepth+1)), "forEach nested more than 4 deep"},
		{"1001 rules", many.String(), "1001 rules, more than 1000"},
		{"long expression", rule("r", "      - log: {message: \"${'"+strings.Repeat("a", MaxExprLen)+"'}\"}\n"), "more than 4096"},
		{"huge file", rule("r", logs(1)) + "# " + strings.Repeat("x", MaxFileSize), "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(strings.NewReader("name: t\nrules:\n"+tc.src), "caps.yaml")
			if tc.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err = %v, want %q", err, tc.reason)
			}
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	if _, err := LoadFile(filepath.Join(t.TempDir(), "none.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
}

func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("name: t\nrules:\n  - id: r\n    on: [x]\n    then: [{log: {message: \"${1 + }\"}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Load(strings.NewReader(string(data)), "fuzz.yaml")
		if (rs == nil) == (err == nil) {
			t.Fatalf("rs = %v, err = %v", rs, err)
		}
		if err != nil && !errors.Is(err, events.ErrValidation) {
			t.Fatalf("err %v is not a validation error", err)
		}
	})
}
