package rulenode_test

import (
	"context"
	"fmt"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
	"github.com/storeloop/storeloop/tracing"
)

// A rule skipped on a stale event counts as a skip, not a firing nor a
// failure; the newer event's run counts as a firing.
func TestRunnerMetricsSkip(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	m, err := tracing.NewMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, countersDef)
	h.insert("counters", events.Record{"id": "c"})
	h.update("counters", "c", events.Record{"n": 1})
	h.update("counters", "c", events.Record{"n": 2})
	h.run(load(t, fmt.Sprintf(flagRules, "")), rulenode.WithMetrics(m))
	h.settle("flag")

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if sum, ok := mt.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range sum.DataPoints {
					rule, _ := dp.Attributes.Value(tracing.MetricAttrRule)
					got[mt.Name+" "+rule.AsString()] += dp.Value
				}
			}
		}
	}
	want := map[string]int64{"storeloop.rule.skips flag": 1, "storeloop.rule.firings flag": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counters = %v, want %v", got, want)
	}
}
