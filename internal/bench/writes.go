package bench

import (
	"context"
	"fmt"
	"io"

	"github.com/storeloop/storeloop/storenode"
)

// Writes runs the write scenarios of `storeloop bench writes` (the same as
// BenchmarkWrites in storenode): per fsync mode, the naive hop, a raw
// synchronous publish and store inserts, with 1 and 32 callers, ops writes
// each. It prints each result as it comes, then the ratios the store node
// is held to.
func Writes(ctx context.Context, w io.Writer, ops int) ([]Result, error) {
	var results []Result
	for _, mode := range []storenode.FsyncMode{storenode.FsyncPeriodic, storenode.FsyncAlways, storenode.FsyncBatch} {
		rs, err := writesIn(ctx, w, mode, ops)
		if err != nil {
			return results, err
		}
		results = append(results, rs...)
	}
	fmt.Fprintln(w)
	ratio := func(what string, a, b Result) {
		fmt.Fprintf(w, "%-62s %6.2f×  (%.0f vs %.0f ops/s)\n", what, a.PerSecond()/b.PerSecond(), a.PerSecond(), b.PerSecond())
	}
	find := func(mode storenode.FsyncMode, scenario string, callers int) Result {
		for _, r := range results {
			if r.Mode == mode && r.Scenario == scenario && r.Callers == callers {
				return r
			}
		}
		return Result{Elapsed: 1}
	}
	ratio("periodic: store insert ÷ naive hop, 32 callers (goal ≥ 1, aim 2)", find(storenode.FsyncPeriodic, "store-insert", 32), find(storenode.FsyncPeriodic, "naive-hop", 32))
	ratio("durable: store insert (batch fsync) ÷ fsynced raw publish, 32 callers (goal ≥ 5, aim 10)", find(storenode.FsyncBatch, "store-insert", 32), find(storenode.FsyncAlways, "raw-publish", 32))
	ratio("durable: store insert (batch fsync) ÷ fsynced raw publish, 1 caller", find(storenode.FsyncBatch, "store-insert", 1), find(storenode.FsyncAlways, "raw-publish", 1))
	ratio("always: store insert ÷ fsynced raw publish, 32 callers", find(storenode.FsyncAlways, "store-insert", 32), find(storenode.FsyncAlways, "raw-publish", 32))
	return results, nil
}

func writesIn(ctx context.Context, w io.Writer, mode storenode.FsyncMode, ops int) ([]Result, error) {
	env, err := NewEnv(ctx, mode)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	naive, stop, err := env.NaiveHop()
	if err != nil {
		return nil, err
	}
	defer stop()
	var out []Result
	for _, sc := range []struct {
		name string
		op   Op
	}{{"naive-hop", naive}, {"raw-publish", env.RawPublish()}, {"store-insert", env.StoreInsert()}} {
		for _, callers := range []int{1, 32} {
			// A short warm-up so connections and caches are hot.
			if _, err := Run(ctx, sc.op, min(ops/10, 200), callers); err != nil {
				return out, fmt.Errorf("%s %s: %w", mode, sc.name, err)
			}
			d, err := Run(ctx, sc.op, ops, callers)
			if err != nil {
				return out, fmt.Errorf("%s %s: %w", mode, sc.name, err)
			}
			r := Result{Mode: mode, Scenario: sc.name, Callers: callers, Ops: ops, Elapsed: d}
			fmt.Fprintln(w, r)
			out = append(out, r)
		}
	}
	return out, nil
}
