package rulenode_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
	"github.com/storeloop/storeloop/tracing"
)

// touchRules updates a counter that does not exist when one is inserted,
// then logs. %s is the write action, indented as an item of then.
const touchRules = `
name: touch
rules:
  - id: touch
    on: [bucket.counters.inserted]
    then:
%s
      - log: { message: "touched ${event.key}" }
`

const (
	touchUpdate = `      - update:
          bucket: counters
          key: ghost
          increment: { n: 1 }
          %s`
	touchTx = `      - tx:
          ops:
            - update: { bucket: counters, key: ghost, increment: { n: 1 } }
          %s`
)

// ruleCounters collects the rule metrics by name and rule.
func ruleCounters(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if sum, ok := mt.Data.(metricdata.Sum[int64]); ok && strings.HasPrefix(mt.Name, "storeloop.rule.") {
				for _, dp := range sum.DataPoints {
					rule, _ := dp.Attributes.Value(tracing.MetricAttrRule)
					got[mt.Name+" "+rule.AsString()] += dp.Value
				}
			}
		}
	}
	return got
}

// An update of a missing record, alone or in a tx, does what its
// onMissing says: skip acknowledges the event (a log line at info, a span
// event, a skip counted, no dead letter, the rule's later actions not
// run); fail dead-letters it as rejected on its first delivery; retry,
// also the default, delivers it MaxDeliver times and dead-letters it as
// failed.
func TestRunnerOnMissing(t *testing.T) {
	const maxDeliver = 3
	cases := []struct {
		name       string
		action     string
		onMissing  string
		wantReason string // "" for a skip
		wantDeliv  int
	}{
		{"update default retries", touchUpdate, "", rulenode.ReasonFailed, maxDeliver},
		{"update retry", touchUpdate, "onMissing: retry", rulenode.ReasonFailed, maxDeliver},
		{"update skip", touchUpdate, "onMissing: skip", "", 0},
		{"update fail", touchUpdate, "onMissing: fail", rulenode.ReasonRejected, 1},
		{"tx default retries", touchTx, "", rulenode.ReasonFailed, maxDeliver},
		{"tx skip", touchTx, "onMissing: skip", "", 0},
		{"tx fail", touchTx, "onMissing: fail", rulenode.ReasonRejected, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, countersDef)
			spans := recordSpans(t)
			reader := sdkmetric.NewManualReader()
			m, err := tracing.NewMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
			if err != nil {
				t.Fatal(err)
			}
			var logs syncBuffer
			src := fmt.Sprintf(touchRules, fmt.Sprintf(tc.action, tc.onMissing))
			h.run(load(t, src), rulenode.WithMaxDeliver(maxDeliver), rulenode.WithMetrics(m),
				rulenode.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
			h.insert("counters", events.Record{"id": "c"})
			h.settle("touch")
			ev := h.events("bucket.counters.inserted")[0]

			if n := len(h.events("bucket.counters.")); n != 1 {
				t.Errorf("%d events, want the insert alone", n)
			}
			if n := len(logsWith(&logs, "touched c")); n != 0 {
				t.Errorf("the rule's log action ran %d times, want 0", n)
			}
			skips := logsWith(&logs, "rule skipped")
			var skipAttrs []map[string]string
			for _, s := range spans.Ended() {
				for _, e := range s.Events() {
					if e.Name == rulenode.SpanEventRuleSkipped {
						attrs := map[string]string{}
						for _, a := range e.Attributes {
							attrs[string(a.Key)] = a.Value.Emit()
						}
						skipAttrs = append(skipAttrs, attrs)
					}
				}
			}
			dls := h.deadLetters("touch")
			counts := ruleCounters(t, reader)

			if tc.wantReason != "" {
				if len(skips) != 0 || len(skipAttrs) != 0 {
					t.Errorf("skipped: logs %v, span events %v", skips, skipAttrs)
				}
				if len(dls) != 1 || dls[0].Reason != tc.wantReason || dls[0].Deliveries != uint64(tc.wantDeliv) ||
					dls[0].StreamSeq != ev.Meta.Seq || dls[0].RuleID != "touch" || !strings.Contains(dls[0].Error, "not found") {
					t.Errorf("dead letters = %+v, want event #%d %s after %d deliveries", dls, ev.Meta.Seq, tc.wantReason, tc.wantDeliv)
				}
				want := map[string]int64{"storeloop.rule.failures touch": int64(tc.wantDeliv)}
				if fmt.Sprint(counts) != fmt.Sprint(want) {
					t.Errorf("rule counters = %v, want %v", counts, want)
				}
				return
			}
			if len(dls) != 0 {
				t.Errorf("dead letters: %+v", dls)
			}
			if len(skips) != 1 || skips[0]["level"] != "INFO" || skips[0]["rule"] != "touch" || skips[0]["path"] != "0" ||
				!strings.Contains(fmt.Sprint(skips[0]["msg"]), "missing") || skips[0]["streamSeq"] != float64(ev.Meta.Seq) {
				t.Errorf("skip log lines = %v, want one at info for rule touch, path 0, a missing record", skips)
			}
			if len(skipAttrs) != 1 || skipAttrs[0]["storeloop.action_path"] != "0" ||
				!strings.Contains(skipAttrs[0]["storeloop.not_found"], "not found") || skipAttrs[0]["storeloop.conflict"] != "" {
				t.Errorf("skip span events = %v, want one at path 0 with storeloop.not_found", skipAttrs)
			}
			want := map[string]int64{"storeloop.rule.skips touch": 1}
			if fmt.Sprint(counts) != fmt.Sprint(want) {
				t.Errorf("rule counters = %v, want %v", counts, want)
			}
		})
	}
}
