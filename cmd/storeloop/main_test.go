package main

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/natstest"
	"github.com/storeloop/storeloop/internal/storetest"
)

// cli runs the CLI in-process against NATS at url ("" for no --nats flag).
func cli(t *testing.T, url, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if url != "" {
		args = append([]string{"--nats", url}, args...)
	}
	var out, errOut bytes.Buffer
	code = execute(ctx, args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

var timesRE = regexp.MustCompile(`"_(created|updated)At": \d+`)

// normalize replaces record timestamps with T for exact comparisons.
func normalize(s string) string { return timesRE.ReplaceAllString(s, `"_${1}At": T`) }

// record is the indented JSON of an orders record with timestamps as T.
func record(version, total, status string) string {
	return "{\n  \"_createdAt\": T,\n  \"_updatedAt\": T,\n  \"_version\": " + version +
		",\n  \"id\": 1,\n  \"status\": \"" + status + "\",\n  \"total\": " + total + ",\n  \"userId\": \"alice\"\n}\n"
}

func indent(s string) string {
	var b bytes.Buffer
	for line := range strings.Lines(s) {
		b.WriteString("  " + line)
	}
	return b.String()
}

// TestCommands runs a session of commands, in order, against one store.
func TestCommands(t *testing.T) {
	url := storetest.Start(t)
	// usage is the stderr of a usage error of the command at path.
	usage := func(path, msg string) string { return "error: " + msg + "\nRun '" + path + " --help' for usage.\n" }
	steps := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "define from a YAML file", args: []string{"bucket", "define", "-f", "testdata/orders.yaml"},
			stdout: "{\n  \"bucket\": \"orders\"\n}\n"},
		{name: "define JSON from stdin", args: []string{"bucket", "define", "-f", "-"},
			stdin:  `{"bucket":"loyalty","key":"userId","schema":{"userId":{"type":"string","required":true},"points":{"type":"number","default":0}}}`,
			stdout: "{\n  \"bucket\": \"loyalty\"\n}\n"},
		{name: "define several buckets from an examples file", args: []string{"bucket", "define", "-f", "../../examples/reorder/buckets.yaml"},
			stdout: "[\n  {\n    \"bucket\": \"inventory\"\n  },\n  {\n    \"bucket\": \"reorderRequests\"\n  }\n]\n"},
		{name: "define with an unknown field", args: []string{"bucket", "define", "-f", "testdata/bogus.yaml"}, code: exitUsage,
			stderr: usage("storeloop bucket define", "testdata/bogus.yaml: yaml: unmarshal errors:\n  line 3: field color not found in type events.BucketDef")},
		{name: "define without a file", args: []string{"bucket", "define"}, code: exitUsage,
			stderr: usage("storeloop bucket define", "-f FILE is required")},
		{name: "insert", args: []string{"insert", "orders", `{"userId":"alice","total":25.5}`},
			stdout: record("1", "25.5", "pending")},
		{name: "insert an invalid record", args: []string{"insert", "orders", `{"total":-1}`}, code: exitCommand,
			stderr: "error: validation: record does not match the schema of bucket \"orders\": total: must be at least 0 (min); userId: is required (required)\n"},
		{name: "insert malformed JSON", args: []string{"insert", "orders", `{"total":`}, code: exitUsage,
			stderr: usage("storeloop insert", "record: not a JSON object: unexpected EOF")},
		{name: "insert a JSON array", args: []string{"insert", "orders", `[1]`}, code: exitUsage,
			stderr: usage("storeloop insert", "record: not a JSON object: json: cannot unmarshal array into Go value of type map[string]interface {}")},
		{name: "insert without a record", args: []string{"insert", "orders"}, code: exitUsage,
			stderr: usage("storeloop insert", "accepts 2 arg(s), received 1")},
		{name: "get", args: []string{"get", "orders", "1"}, stdout: record("1", "25.5", "pending")},
		{name: "get a missing key", args: []string{"get", "orders", "99"}, stdout: "null\n"},
		{name: "get with a string key", args: []string{"get", "orders", "1", "--string-key"}, code: exitCommand,
			stderr: "error: bad_request: key has the wrong type: id: key must be a number (type)\n"},
		{name: "update with increment", args: []string{"update", "orders", "1", `{"status":"paid"}`, "--increment", `{"total":4.5}`},
			stdout: record("2", "30", "paid")},
		{name: "update a stale version", args: []string{"update", "orders", "1", `{}`, "--expect-version", "9"}, code: exitCommand,
			stderr: "error: conflict: id 1 is at version 2, not 9\n"},
		{name: "update a missing key", args: []string{"update", "orders", "7", `{"status":"paid"}`}, code: exitCommand,
			stderr: "error: not_found: id 7 not found in orders\n"},
		{name: "update with a bad increment", args: []string{"update", "orders", "1", `{}`, "--increment", `{"total":"x"}`}, code: exitUsage,
			stderr: usage("storeloop update", `--increment: want a JSON object of numbers, like {"points": 5}`)},
		{name: "upsert inserts", args: []string{"upsert", "loyalty", "alice", `{"userId":"alice"}`, "--increment", `{"points":5}`},
			stdout: "{\n  \"_createdAt\": T,\n  \"_updatedAt\": T,\n  \"_version\": 1,\n  \"points\": 5,\n  \"userId\": \"alice\"\n}\n"},
		{name: "upsert increments", args: []string{"upsert", "loyalty", "alice", "--increment", `{"points":5}`},
			stdout: "{\n  \"_createdAt\": T,\n  \"_updatedAt\": T,\n  \"_version\": 2,\n  \"points\": 10,\n  \"userId\": \"alice\"\n}\n"},
		{name: "query", args: []string{"query", "orders", "--where", `{"userId":"alice"}`, "--limit", "1"},
			stdout: "{\n  \"records\": [\n" + indent(indent(record("2", "30", "paid"))) + "  ]\n}\n"},
		{name: "query with no match", args: []string{"query", "orders", "--where", `{"total":{"$gt":100}}`},
			stdout: "{\n  \"records\": []\n}\n"},
		{name: "count", args: []string{"count", "orders"}, stdout: "1\n"},
		{name: "count with where", args: []string{"count", "orders", "--where", `{"status":"pending"}`}, stdout: "0\n"},
		{name: "aggregate", args: []string{"aggregate", "orders", "sum", "total"}, stdout: "30\n"},
		{name: "aggregate of nothing", args: []string{"aggregate", "orders", "avg", "total", "--where", `{"userId":"bob"}`}, stdout: "null\n"},
		{name: "aggregate with an unknown function", args: []string{"aggregate", "orders", "median", "total"}, code: exitUsage,
			stderr: usage("storeloop aggregate", `unknown aggregate "median": want sum, avg, min or max`)},
		{name: "delete", args: []string{"delete", "orders", "1", "--expect-version", "2"}, stdout: "{\n  \"deleted\": true\n}\n"},
		{name: "delete again", args: []string{"delete", "orders", "1"}, stdout: "{\n  \"deleted\": false\n}\n"},
		{name: "get from a missing bucket", args: []string{"get", "nope", "1"}, code: exitCommand,
			stderr: "error: bucket_not_found: bucket \"nope\" is not defined\n"},
		{name: "unknown command", args: []string{"frobnicate"}, code: exitUsage,
			stderr: usage("storeloop", `unknown command "frobnicate" for "storeloop"`)},
		{name: "unknown flag", args: []string{"get", "--bogus"}, code: exitUsage,
			stderr: usage("storeloop get", "unknown flag: --bogus")},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, url, s.stdin, s.args...)
			if code != s.code || normalize(stdout) != s.stdout || stderr != s.stderr {
				t.Fatalf("storeloop %s\nexit %d, want %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s\nwant:\n%s",
					strings.Join(s.args, " "), code, s.code, normalize(stdout), s.stdout, stderr, s.stderr)
			}
		})
	}

	t.Run("buckets", func(t *testing.T) {
		stdout, stderr, code := cli(t, url, "", "buckets")
		var got []events.BucketInfo
		if code != exitOK || stderr != "" || json.Unmarshal([]byte(stdout), &got) != nil {
			t.Fatalf("exit %d stdout %q stderr %q", code, stdout, stderr)
		}
		counts := map[string]int{}
		for _, b := range got {
			counts[b.Bucket] = b.Count
		}
		if !reflect.DeepEqual(counts, map[string]int{"orders": 0, "loyalty": 1, "inventory": 0, "reorderRequests": 0}) {
			t.Fatalf("bucket counts = %v", counts)
		}
	})

	t.Run("tail", func(t *testing.T) {
		stdout, stderr, code := cli(t, url, "", "tail", "bucket.orders.>", "--all", "-n", "3")
		if code != exitOK || stderr != "" {
			t.Fatalf("exit %d stderr %q", code, stderr)
		}
		var got []string
		var lastSeq uint64
		for line := range strings.Lines(stdout) {
			ev, err := events.DecodeEvent([]byte(line))
			if err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			if ev.Meta.Seq <= lastSeq {
				t.Fatalf("seq %d after %d", ev.Meta.Seq, lastSeq)
			}
			lastSeq = ev.Meta.Seq
			got = append(got, string(ev.Type)+" "+ev.Bucket)
		}
		want := []string{"inserted orders", "updated orders", "deleted orders"}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("tail = %v, want %v", got, want)
		}
	})
}

func TestNATSFromEnvironment(t *testing.T) {
	url := storetest.Start(t)
	t.Setenv(envNATSURL, url)
	if stdout, stderr, code := cli(t, "", "", "count", "orders"); code != exitCommand ||
		stderr != "error: bucket_not_found: bucket \"orders\" is not defined\n" || stdout != "" {
		t.Fatalf("exit %d stdout %q stderr %q: want the store at $%s to answer", code, stdout, stderr, envNATSURL)
	}
	// The flag wins over the environment.
	if _, stderr, code := cli(t, "nats://127.0.0.1:1", "", "count", "orders"); code != exitUnavailable {
		t.Fatalf("exit %d stderr %q: want --nats to be used", code, stderr)
	}
}

func TestUnavailable(t *testing.T) {
	noStore := natstest.Server(t).ClientURL()
	tests := []struct {
		name   string
		url    string
		args   []string
		stderr string
	}{
		{"no NATS server", "nats://127.0.0.1:1", []string{"get", "orders", "1"},
			"error: unavailable: connect to NATS at nats://127.0.0.1:1: nats: no servers available for connection\n"},
		{"no store node", noStore, []string{"--failover-wait", "1s", "get", "orders", "1"},
			"error: unavailable: no store node is serving store.get: nats: no responders available for request\n"},
		{"other prefix", noStore, []string{"--failover-wait", "0", "--prefix", "shop", "insert", "orders", "{}"},
			"error: unavailable: no store node is serving shop.insert: nats: no responders available for request\n"},
		{"no stream to tail", noStore, []string{"tail"},
			"error: unavailable: event stream STORELOOP: nats: API error: code=404 err_code=10059 description=stream not found\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, tt.url, "", tt.args...)
			if code != exitUnavailable || stdout != "" || stderr != tt.stderr {
				t.Fatalf("exit %d, want %d\nstdout %q\nstderr %q\nwant   %q", code, exitUnavailable, stdout, stderr, tt.stderr)
			}
		})
	}
}

func TestParseKey(t *testing.T) {
	tests := []struct {
		in        string
		stringKey bool
		want      any
	}{
		{"1", false, json.Number("1")},
		{"-2.5", false, json.Number("-2.5")},
		{"0", false, json.Number("0")},
		{"1", true, "1"},
		{"007", false, "007"},
		{"1e3", false, "1e3"},
		{"alice", false, "alice"},
		{"", false, ""},
	}
	for _, tt := range tests {
		if got := parseKey(tt.in, tt.stringKey); got != tt.want {
			t.Errorf("parseKey(%q, %v) = %#v, want %#v", tt.in, tt.stringKey, got, tt.want)
		}
	}
}

// --prefix falls back on STORELOOP_PREFIX, as --nats on STORELOOP_NATS and
// the daemons' --prefix do; the flag wins over the variable.
func TestPrefixFromEnvironment(t *testing.T) {
	url := storetest.Start(t)
	t.Setenv("STORELOOP_PREFIX", "elsewhere")
	cases := []struct {
		name string
		args []string
		code int
	}{
		{name: "environment: nothing answers on elsewhere.>", args: []string{"buckets", "--timeout", "200ms", "--failover-wait", "0"}, code: exitUnavailable},
		{name: "flag over environment", args: []string{"--prefix", events.DefaultCommandPrefix, "buckets"}, code: exitOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, stderr, code := cli(t, url, "", tc.args...); code != tc.code {
				t.Fatalf("exit %d (%s), want %d", code, stderr, tc.code)
			}
		})
	}
}

func TestStreamFlagAndEnvironment(t *testing.T) {
	url := storetest.Start(t)
	if _, stderr, code := cli(t, url, "", "trace"); code != exitOK {
		t.Fatalf("trace on the default stream: exit %d stderr %q", code, stderr)
	}
	if _, stderr, code := cli(t, url, "", "trace", "--stream", "NOPE"); code == exitOK || !strings.Contains(stderr, "NOPE") && !strings.Contains(stderr, "stream") {
		t.Fatalf("trace --stream NOPE: exit %d stderr %q, want a failure naming the stream", code, stderr)
	}
	t.Setenv(envStream, "NOPE")
	if _, _, code := cli(t, url, "", "trace"); code == exitOK {
		t.Fatalf("trace with %s=NOPE succeeded: the environment was not used", envStream)
	}
	if _, stderr, code := cli(t, url, "", "trace", "--stream", "STORELOOP"); code != exitOK {
		t.Fatalf("--stream over the environment: exit %d stderr %q", code, stderr)
	}
}
