package storenode_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/storeloop/storeloop/internal/bench"
	"github.com/storeloop/storeloop/storenode"
)

// BenchmarkProofCost measures what event proofs cost a write: store
// inserts (batch fsync, the daemon's default) with proofs on and off, in
// the same run, each on its own embedded server, alternating. Run it with
// e.g. -bench ProofCost -benchtime 20000x -count 3.
func BenchmarkProofCost(b *testing.B) {
	ctx := context.Background()
	envs := map[string]*bench.Env{}
	for name, opts := range map[string][]storenode.Option{"on": nil, "off": {storenode.WithoutProofs()}} {
		env, err := bench.NewEnv(ctx, storenode.FsyncBatch, opts...)
		if err != nil {
			b.Fatal(err)
		}
		defer env.Close()
		envs[name] = env
	}
	for _, callers := range []int{1, 32} {
		for _, proof := range []string{"off", "on"} {
			b.Run(fmt.Sprintf("callers=%d/proof=%s", callers, proof), func(b *testing.B) {
				if _, err := bench.Run(ctx, envs[proof].StoreInsert(), b.N, callers); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
