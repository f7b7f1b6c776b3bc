package tracing

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metric attribute keys: short, as Prometheus labels are.
const (
	MetricAttrOp      = attribute.Key("op")
	MetricAttrOutcome = attribute.Key("outcome")
	MetricAttrBucket  = attribute.Key("bucket")
	MetricAttrRule    = attribute.Key("rule")
	MetricAttrRuleSet = attribute.Key("rule_set")
	MetricAttrReason  = attribute.Key("reason")
)

// OutcomeOK is the outcome of a command that succeeded.
const OutcomeOK = "ok"

// durationBuckets suit store commands, which take from well under a
// millisecond (a get) to seconds (a large transaction behind fsync).
var durationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Metrics holds the instruments the daemons record. Create it after [Setup]:
// instruments are bound to the MeterProvider they were created from. Its
// methods are safe for concurrent use.
type Metrics struct {
	meter           metric.Meter
	commands        metric.Int64Counter
	commandDuration metric.Float64Histogram
	eventsAppended  metric.Int64Counter
	ruleFirings     metric.Int64Counter
	ruleFailures    metric.Int64Counter
	ruleSkips       metric.Int64Counter
	deadLetters     metric.Int64Counter
	maxHopStops     metric.Int64Counter
	quarantines     metric.Int64Counter
	pending         metric.Int64ObservableGauge
	attrs           attrCache
}

// NewMetrics creates the instruments from mp, or from the global
// MeterProvider when mp is nil.
func NewMetrics(mp metric.MeterProvider) (*Metrics, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := &Metrics{meter: mp.Meter(InstrumentationName)}
	var errs [10]error
	m.commands, errs[0] = m.meter.Int64Counter("storeloop.commands",
		metric.WithDescription("Store commands handled, by op and outcome (ok or error code)."), metric.WithUnit("{command}"))
	m.commandDuration, errs[1] = m.meter.Float64Histogram("storeloop.command.duration",
		metric.WithDescription("Time to handle a store command."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	m.eventsAppended, errs[2] = m.meter.Int64Counter("storeloop.events.appended",
		metric.WithDescription("Events appended to the stream, by bucket and op."), metric.WithUnit("{event}"))
	m.ruleFirings, errs[3] = m.meter.Int64Counter("storeloop.rule.firings",
		metric.WithDescription("Rules whose condition held and whose actions succeeded."), metric.WithUnit("{firing}"))
	m.ruleFailures, errs[4] = m.meter.Int64Counter("storeloop.rule.failures",
		metric.WithDescription("Rule evaluations or actions that failed (each attempt)."), metric.WithUnit("{failure}"))
	m.deadLetters, errs[5] = m.meter.Int64Counter("storeloop.deadletters",
		metric.WithDescription("Events sent to the dead-letter stream, by rule set and reason."), metric.WithUnit("{event}"))
	m.maxHopStops, errs[6] = m.meter.Int64Counter("storeloop.maxhop.stops",
		metric.WithDescription("Events not acted on because their hop count reached maxHop."), metric.WithUnit("{event}"))
	m.pending, errs[7] = m.meter.Int64ObservableGauge("storeloop.consumer.pending",
		metric.WithDescription("Events in the stream not yet delivered to a rule set's consumer."), metric.WithUnit("{event}"))
	m.ruleSkips, errs[8] = m.meter.Int64Counter("storeloop.rule.skips",
		metric.WithDescription("Rules stopped on an event by a version conflict under onConflict: skip (the state they decided on had changed)."),
		metric.WithUnit("{skip}"))
	m.quarantines, errs[9] = m.meter.Int64Counter("storeloop.rule.quarantines",
		metric.WithDescription("Rules quarantined for overrunning their budget, by rule set and rule."), metric.WithUnit("{quarantine}"))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	return m, nil
}

// Command records one handled command: op is the command name (insert,
// get, …), err its failure or nil.
func (m *Metrics) Command(ctx context.Context, op string, err error, d time.Duration) {
	attrs := m.attrs.get(MetricAttrOp.String(op), MetricAttrOutcome.String(Outcome(err)))
	m.commands.Add(ctx, 1, attrs)
	m.commandDuration.Record(ctx, d.Seconds(), attrs)
}

// EventAppended counts one event appended on bucket.<bucket>.<op>.
func (m *Metrics) EventAppended(ctx context.Context, bucket, op string) {
	m.eventsAppended.Add(ctx, 1, m.attrs.get(MetricAttrBucket.String(bucket), MetricAttrOp.String(op)))
}

// attrCache memoizes the measurement option of each label combination of
// the per-command instruments: they are few (commands × outcomes, buckets ×
// ops), and building an attribute set sorts and allocates on every call.
type attrCache struct{ m sync.Map }

func (c *attrCache) get(a, b attribute.KeyValue) metric.MeasurementOption {
	key := string(a.Key) + "=" + a.Value.Emit() + "\x00" + string(b.Key) + "=" + b.Value.Emit()
	if opt, ok := c.m.Load(key); ok {
		return opt.(metric.MeasurementOption)
	}
	opt := metric.WithAttributeSet(attribute.NewSet(a, b))
	c.m.Store(key, opt)
	return opt
}

// RuleFired counts one successful firing of rule.
func (m *Metrics) RuleFired(ctx context.Context, rule string) {
	m.ruleFirings.Add(ctx, 1, metric.WithAttributes(MetricAttrRule.String(rule)))
}

// RuleFailed counts one failed attempt of rule.
func (m *Metrics) RuleFailed(ctx context.Context, rule string) {
	m.ruleFailures.Add(ctx, 1, metric.WithAttributes(MetricAttrRule.String(rule)))
}

// RuleSkipped counts one event on which rule stopped at a version
// conflict under onConflict: skip: neither a firing nor a failure.
func (m *Metrics) RuleSkipped(ctx context.Context, rule string) {
	m.ruleSkips.Add(ctx, 1, metric.WithAttributes(MetricAttrRule.String(rule)))
}

// DeadLettered counts one event dead-lettered by ruleSet. reason must come
// from a small fixed set (it becomes a label).
func (m *Metrics) DeadLettered(ctx context.Context, ruleSet, reason string) {
	m.deadLetters.Add(ctx, 1, metric.WithAttributes(MetricAttrRuleSet.String(ruleSet), MetricAttrReason.String(reason)))
}

// MaxHopStopped counts one event that ruleSet did not act on past maxHop.
func (m *Metrics) MaxHopStopped(ctx context.Context, ruleSet string) {
	m.maxHopStops.Add(ctx, 1, metric.WithAttributes(MetricAttrRuleSet.String(ruleSet)))
}

// RuleQuarantined counts one rule of ruleSet quarantined for overrunning
// its budget.
func (m *Metrics) RuleQuarantined(ctx context.Context, ruleSet, rule string) {
	m.quarantines.Add(ctx, 1, metric.WithAttributes(MetricAttrRuleSet.String(ruleSet), MetricAttrRule.String(rule)))
}

// ObservePending reports ruleSet's consumer backlog, calling pending at each
// collection (for example the consumer info's NumPending). Unregister the
// returned registration when the consumer stops.
func (m *Metrics) ObservePending(ruleSet string, pending func(context.Context) (int64, error)) (metric.Registration, error) {
	attrs := metric.WithAttributes(MetricAttrRuleSet.String(ruleSet))
	return m.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		n, err := pending(ctx)
		if err != nil {
			return err
		}
		o.ObserveInt64(m.pending, n, attrs)
		return nil
	}, m.pending)
}

// Outcome labels a command result: [OutcomeOK] for nil, the contract code for
// an *events.Error, else the error's Go type.
func Outcome(err error) string {
	if err == nil {
		return OutcomeOK
	}
	return errorType(err)
}
