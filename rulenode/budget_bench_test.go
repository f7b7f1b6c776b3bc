package rulenode_test

import (
	"context"
	"testing"

	"github.com/storeloop/storeloop/internal/bench"
	"github.com/storeloop/storeloop/rulenode"
	"github.com/storeloop/storeloop/storenode"
)

// BenchmarkBudgets measures what budgets cost the rule path: the
// throughput of one Runner (one upsert per event, as BenchmarkRules) with
// no budget, with maxWritesPerEvent (its actions are run once more to
// count the writes, without writing), and with maxCascadeWrites (also one
// KV read and one compare-and-set write per event: every event here starts
// its own cascade). Run it briefly, e.g. -bench Budgets -benchtime 500x.
func BenchmarkBudgets(b *testing.B) {
	ctx := context.Background()
	env, err := bench.NewEnv(ctx, storenode.FsyncBatch)
	if err != nil {
		b.Fatal(err)
	}
	defer env.Close()
	for _, sc := range []struct {
		name   string
		budget rulenode.Budget
	}{
		{"off", rulenode.Budget{}},
		{"maxWritesPerEvent", rulenode.Budget{MaxWritesPerEvent: 10}},
		{"maxCascadeWrites", rulenode.Budget{MaxCascadeWrites: rulenode.MaxBudgetWrites}},
	} {
		b.Run(sc.name, func(b *testing.B) {
			budgeted := func(name, in, out string) (*rulenode.RuleSet, error) {
				set, err := bench.UpsertRule(name, in, out)
				if err == nil {
					set.Budget = sc.budget
				}
				return set, err
			}
			run, err := env.RuleThroughput(ctx, b.N, 1, budgeted)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(run.Elapsed.Nanoseconds())/float64(b.N), "ns/op")
			b.ReportMetric(run.PerSecond(), "events/s")
		})
	}
}
