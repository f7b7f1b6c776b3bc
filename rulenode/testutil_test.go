package rulenode

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/storeloop/storeloop/events"
)

func equalJSON(a, b any) bool { return reflect.DeepEqual(a, b) }

// call is one Store call as the fake saw it.
type call struct {
	Path string
	Op   string
	Args any
}

func (c call) String() string {
	b, _ := json.Marshal(c.Args)
	return fmt.Sprintf("%s %s %s", c.Path, c.Op, b)
}

// fakeStore is an in-memory Store of this package's interface (not NATS):
// it records every call and answers queries from canned records.
type fakeStore struct {
	calls   []call
	records map[string][]events.Record // bucket → query result
	fail    map[string]error           // op → error to return
}

func (f *fakeStore) rec(ctx context.Context, op string, args any) error {
	f.calls = append(f.calls, call{Path: ActionPath(ctx), Op: op, Args: args})
	return f.fail[op]
}

func (f *fakeStore) Insert(ctx context.Context, bucket string, rec events.Record) (events.Record, error) {
	return rec, f.rec(ctx, "insert", map[string]any{"bucket": bucket, "record": rec})
}

func (f *fakeStore) Update(ctx context.Context, bucket string, key any, changes events.Record, inc map[string]float64, opts ...WriteOption) (events.Record, error) {
	return changes, f.rec(ctx, "update", events.TxOp{Bucket: bucket, Key: key, Changes: changes, Increment: inc,
		ExpectVersion: ApplyWriteOptions(opts...).ExpectVersion})
}

func (f *fakeStore) Upsert(ctx context.Context, bucket string, key any, rec events.Record, inc map[string]float64) (events.Record, error) {
	return rec, f.rec(ctx, "upsert", events.TxOp{Bucket: bucket, Key: key, Record: rec, Increment: inc})
}

func (f *fakeStore) Delete(ctx context.Context, bucket string, key any, opts ...WriteOption) (bool, error) {
	return true, f.rec(ctx, "delete", events.TxOp{Bucket: bucket, Key: key, ExpectVersion: ApplyWriteOptions(opts...).ExpectVersion})
}

func (f *fakeStore) Tx(ctx context.Context, ops []events.TxOp, reads ...events.TxRead) ([]any, error) {
	if len(reads) > 0 {
		return make([]any, len(ops)), f.rec(ctx, "tx", map[string]any{"ops": ops, "reads": reads})
	}
	return make([]any, len(ops)), f.rec(ctx, "tx", ops)
}

func (f *fakeStore) Query(ctx context.Context, bucket string, where events.Where) ([]events.Record, error) {
	return f.records[bucket], f.rec(ctx, "query", map[string]any{"bucket": bucket, "where": where})
}

func (f *fakeStore) Publish(ctx context.Context, subject string, data []byte) error {
	return f.rec(ctx, "publish", map[string]any{"subject": subject, "data": string(data)})
}

// trace renders the calls one per line, for exact comparison.
func (f *fakeStore) trace() string {
	lines := make([]string, len(f.calls))
	for i, c := range f.calls {
		lines[i] = c.String()
	}
	return strings.Join(lines, "\n")
}

// loadTestdata loads testdata/<name>.
func loadTestdata(t *testing.T, name string) *RuleSet {
	t.Helper()
	return loadRules(t, filepath.Join("testdata", name))
}

// exampleRules is the rule file of a seed scenario in examples/: the tests
// use the examples' own files rather than copies that could drift.
func exampleRules(scenario string) string {
	return filepath.Join("..", "examples", scenario, "rules.yaml")
}

func loadRules(t *testing.T, path string) *RuleSet {
	t.Helper()
	rs, err := LoadFile(path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	return rs
}

func ruleByID(t *testing.T, rs *RuleSet, id string) *Rule {
	t.Helper()
	for _, r := range rs.Rules {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no rule %q", id)
	return nil
}

func sortedStrings(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}
