package rulenode_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/storeloop/storeloop/internal/bench"
	"github.com/storeloop/storeloop/rulenode"
	"github.com/storeloop/storeloop/storenode"
)

// countRule is bench.UpsertRule's write behind a count trigger that fires
// on every event (atLeast 1, one key per record): the temporal state's
// read and compare-and-set write per event, on top of the rule's work.
func countRule(name, in, out string) (*rulenode.RuleSet, error) {
	src := fmt.Sprintf(`name: %s
rules:
  - id: count
    count: { on: bucket.%s.inserted, key: "${event.key}", atLeast: 1, within: 1m }
    then:
      - upsert:
          bucket: %s
          key: all
          record: { id: all }
          increment: { count: 1 }
`, name, in, out)
	return rulenode.Load(strings.NewReader(src), name+".yaml")
}

// BenchmarkTemporal measures events/s through one Runner whose rule is
// temporal (countRule) beside the same write as a plain rule
// (bench.UpsertRule), in one run on one embedded server. Run it briefly,
// e.g. -bench Temporal -benchtime 2000x.
func BenchmarkTemporal(b *testing.B) {
	ctx := context.Background()
	env, err := bench.NewEnv(ctx, storenode.FsyncBatch)
	if err != nil {
		b.Fatal(err)
	}
	defer env.Close()
	plain, err := env.RuleThroughput(ctx, b.N, 1, bench.UpsertRule)
	if err != nil {
		b.Fatal(err)
	}
	temporal, err := env.RuleThroughput(ctx, b.N, 1, countRule)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(temporal.Elapsed.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(temporal.PerSecond(), "events/s")
	b.ReportMetric(plain.PerSecond(), "plain_events/s")
	b.ReportMetric(temporal.PerSecond()/plain.PerSecond(), "temporal/plain")
}
