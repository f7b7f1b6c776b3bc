package storenode_test

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkClusterNATSServerLoss measures the time to resume writes after
// the loss (kill -9) of one NATS server of three, the stream at replicas
// 3, under the load of TestClusterNATSServerLoss: rounds kill in turn the
// stream leader's server, the store leader's server and another one (each
// restarted before the next round). It reports the median and worst time
// from the kill to the first write acknowledged after it, per victim.
// b.N is ignored: run it with -benchtime 1x.
func BenchmarkClusterNATSServerLoss(b *testing.B) {
	const rounds = 4 // per victim
	r := startClusterRig(b)
	load := startLoad(b, r.urls, 8, 2*time.Millisecond)
	victims := r.victims(b)
	took := make([][]time.Duration, len(victims))
	for round := range rounds * len(victims) {
		i := round % len(victims)
		took[i] = append(took[i], r.killServer(b, load, victims[i]))
	}
	load.finish()
	load.check(b, r.client)
	r.logNodeWarnings(b)
	for i, v := range victims {
		slices.Sort(took[i])
		b.Logf("%s: %v", v.what, took[i])
	}
	unit := []string{"stream-leader", "store-leader", "other"}
	for i := range victims {
		b.ReportMetric(took[i][len(took[i])/2].Seconds(), unit[i]+"-p50-s")
		b.ReportMetric(took[i][len(took[i])-1].Seconds(), unit[i]+"-max-s")
	}
}
