package storenode_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/storeloop/storeloop/internal/bench"
	"github.com/storeloop/storeloop/storenode"
)

// BenchmarkWrites measures, per fsync mode and on one embedded server:
// the naive hop (request → synchronous JetStream publish → reply), a raw
// synchronous publish, and store node inserts through the client, with 1
// and 32 concurrent callers. `storeloop bench writes` prints the same
// scenarios with their ratios.
func BenchmarkWrites(b *testing.B) {
	for _, mode := range []storenode.FsyncMode{storenode.FsyncPeriodic, storenode.FsyncAlways, storenode.FsyncBatch} {
		b.Run("fsync="+string(mode), func(b *testing.B) {
			ctx := context.Background()
			env, err := bench.NewEnv(ctx, mode)
			if err != nil {
				b.Fatal(err)
			}
			defer env.Close()
			naive, stop, err := env.NaiveHop()
			if err != nil {
				b.Fatal(err)
			}
			defer stop()
			for _, sc := range []struct {
				name string
				op   bench.Op
			}{{"naive-hop", naive}, {"raw-publish", env.RawPublish()}, {"store-insert", env.StoreInsert()}} {
				for _, callers := range []int{1, 32} {
					b.Run(fmt.Sprintf("%s/callers=%d", sc.name, callers), func(b *testing.B) {
						if _, err := bench.Run(ctx, sc.op, b.N, callers); err != nil {
							b.Fatal(err)
						}
					})
				}
			}
		})
	}
}

// BenchmarkTx measures a transaction of k inserts against k single inserts
// and against a raw JetStream atomic batch of k messages, in the default
// (batch fsync) mode.
func BenchmarkTx(b *testing.B) {
	ctx := context.Background()
	env, err := bench.NewEnv(ctx, storenode.FsyncBatch)
	if err != nil {
		b.Fatal(err)
	}
	defer env.Close()
	for _, k := range []int{1, 10, 100} {
		for _, sc := range []struct {
			name string
			op   bench.Op
		}{{"store-tx", env.StoreTx(k)}, {"store-singles", env.StoreSingles(k)}, {"raw-atomic-batch", env.RawAtomicBatch(k)}} {
			b.Run(fmt.Sprintf("ops=%d/%s", k, sc.name), func(b *testing.B) {
				if _, err := bench.Run(ctx, sc.op, b.N, 1); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
