package rulenode_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
)

// flagRules flags a counter once, deciding from the event: its update
// expects the version the event carries. %s is the update's onConflict.
const flagRules = `
name: flag
rules:
  - id: flag
    on: [bucket.counters.updated]
    when: has(event.newRecord.go) == false
    then:
      - update:
          bucket: counters
          key: ${event.key}
          changes: { go: true }
          expectVersion: ${event.newRecord._version}
          %s
      - log: { message: "flagged ${event.key}" }
`

// recordSpans sends the global tracer's spans to a recorder until the test
// ends.
func recordSpans(t *testing.T) *tracetest.SpanRecorder {
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	return rec
}

// logsWith returns the log lines whose message contains msg.
func logsWith(logs *syncBuffer, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range logs.lines() {
		if strings.Contains(fmt.Sprint(l["msg"]), msg) {
			out = append(out, l)
		}
	}
	return out
}

// Two updates are stored before the rule node starts, so both events say
// "not flagged". The first event's update is stale when it reaches the
// store: skip acknowledges it (a log line at info, a span event, no dead
// letter, the rule's later actions not run); fail dead-letters it at once
// as rejected. Either way the second event flags the counter, once.
func TestRunnerVersionConflict(t *testing.T) {
	cases := []struct {
		name       string
		onConflict string
		wantSkip   bool
	}{
		{"skip by default", "", true},
		{"explicit skip", "onConflict: skip", true},
		{"fail", "onConflict: fail", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, countersDef)
			spans := recordSpans(t)
			h.insert("counters", events.Record{"id": "c"})
			h.update("counters", "c", events.Record{"n": 1})
			h.update("counters", "c", events.Record{"n": 2})
			stale := h.events("bucket.counters.updated")[0]

			var logs syncBuffer
			h.run(load(t, fmt.Sprintf(flagRules, tc.onConflict)),
				rulenode.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
			h.settle("flag")

			got := h.get("counters", "c")
			if got["go"] != true || got[events.FieldVersion] != 4.0 {
				t.Errorf("counter = %v, want go at version 4 (insert, 2 updates, 1 flag)", got)
			}
			if n := len(h.events("bucket.counters.updated")); n != 3 {
				t.Errorf("%d updates, want 3: the rule wrote once", n)
			}
			if n := len(logsWith(&logs, "flagged c")); n != 1 {
				t.Errorf("the rule's log action ran %d times, want 1", n)
			}

			skips := logsWith(&logs, "rule skipped")
			var skipEvents []sdktrace.Event
			for _, s := range spans.Ended() {
				for _, e := range s.Events() {
					if e.Name == rulenode.SpanEventRuleSkipped {
						if s.Name() != "rule flag" {
							t.Errorf("skip event on span %q", s.Name())
						}
						skipEvents = append(skipEvents, e)
					}
				}
			}
			dls := h.deadLetters("flag")
			if !tc.wantSkip {
				if len(skips) != 0 || len(skipEvents) != 0 {
					t.Errorf("skipped under fail: logs %v, span events %v", skips, skipEvents)
				}
				if len(dls) != 1 || dls[0].Reason != rulenode.ReasonRejected || dls[0].Deliveries != 1 ||
					dls[0].StreamSeq != stale.Meta.Seq || dls[0].RuleID != "flag" || !strings.Contains(dls[0].Error, "conflict") {
					t.Errorf("dead letters = %+v, want the stale event #%d rejected on its first delivery", dls, stale.Meta.Seq)
				}
				return
			}
			if len(dls) != 0 {
				t.Errorf("dead letters: %+v", dls)
			}
			if len(skips) != 1 || skips[0]["level"] != "INFO" || skips[0]["rule"] != "flag" || skips[0]["path"] != "0" ||
				skips[0]["streamSeq"] != float64(stale.Meta.Seq) || skips[0]["eventId"] != stale.Meta.EventID {
				t.Errorf("skip log lines = %v, want one at info for rule flag, path 0, event #%d", skips, stale.Meta.Seq)
			}
			if len(skipEvents) != 1 {
				t.Fatalf("%d skip span events, want 1", len(skipEvents))
			}
			attrs := map[string]string{}
			for _, a := range skipEvents[0].Attributes {
				attrs[string(a.Key)] = a.Value.Emit()
			}
			if attrs["storeloop.action_path"] != "0" || !strings.Contains(attrs["storeloop.conflict"], "conflict") {
				t.Errorf("skip span event attributes = %v", attrs)
			}
		})
	}
}

// A conflict no version check asked for (an insert of a taken key) gets
// the same answer on every delivery, so it is dead-lettered at once as
// rejected instead of being retried.
func TestRunnerUncheckedConflictIsRejected(t *testing.T) {
	h := newHarness(t, countersDef)
	h.insert("counters", events.Record{"id": "taken"})
	h.run(load(t, `
name: copy
rules:
  - id: copy
    on: [bucket.counters.updated]
    then:
      - insert: { bucket: counters, record: { id: taken } }
`), rulenode.WithMaxDeliver(3))
	h.update("counters", "taken", events.Record{"n": 1})
	h.settle("copy")
	dls := h.deadLetters("copy")
	if len(dls) != 1 || dls[0].Reason != rulenode.ReasonRejected || dls[0].Deliveries != 1 || !strings.Contains(dls[0].Error, "conflict") {
		t.Errorf("dead letters = %+v, want one rejected conflict on the first delivery", dls)
	}
}

// A rule that fails after another rule's checked write committed makes
// the event come back; the checked write is sent again with its command
// id and gets the store's first reply, success, not a conflict with the
// version it wrote itself: no skip, the rule runs to its end again.
func TestRunnerRedeliveryAfterCheckedWrite(t *testing.T) {
	h := newHarness(t, countersDef)
	set := load(t, fmt.Sprintf(flagRules, ""))
	var calls atomic.Int32
	if err := set.Add(&rulenode.Rule{
		ID: "flaky",
		On: []string{"bucket.counters.updated"},
		Handler: func(context.Context, *events.Event, *rulenode.Env) error {
			if calls.Add(1) == 1 {
				return errors.New("crashed after the flag")
			}
			return nil
		},
	}); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	h.run(set, rulenode.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))

	h.insert("counters", events.Record{"id": "c"})
	h.update("counters", "c", events.Record{"n": 1})
	h.settle("flag")

	updates := h.events("bucket.counters.updated")
	if len(updates) != 2 || updates[1].Meta.RuleID != "flag" ||
		updates[1].Meta.CommandID != rulenode.CommandID("flag", "flag", updates[0].Meta.Seq, "0") {
		t.Fatalf("updates = %d, want the sale and one flag with the first delivery's command id", len(updates))
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("flaky ran %d times, want 3 (fail, retry, the flag's event)", n)
	}
	if n := len(logsWith(&logs, "flagged c")); n != 2 {
		t.Errorf("the flag rule reached its log action %d times, want 2 (both deliveries)", n)
	}
	if skips := logsWith(&logs, "rule skipped"); len(skips) != 0 {
		t.Errorf("skipped on redelivery: %v", skips)
	}
	if dls := h.deadLetters("flag"); len(dls) != 0 {
		t.Errorf("dead letters: %+v", dls)
	}
}
