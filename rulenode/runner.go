package rulenode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/provenance"
	"github.com/storeloop/storeloop/tracing"
)

// Defaults of the [RunnerOption]s.
const (
	DefaultAckWait     = 30 * time.Second
	DefaultMaxDeliver  = 5
	DefaultConcurrency = 8
	DefaultBatching    = 0
)

// DefaultRetryBackoff is the delay before the 1st, 2nd, … redelivery of an
// event whose rules failed; the last value repeats.
var DefaultRetryBackoff = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second, 5 * time.Second}

// Runner feeds the events of a stream to a rule set: the "bridge" of the
// seed, durable and distributed. Every runner of the same rule-set name, in
// any process, shares one durable JetStream pull consumer, so running more
// of them adds throughput. See [Runner.Run] for the guarantees.
type Runner struct {
	js    jetstream.JetStream
	cl    *client.Client
	set   *RuleSet
	o     runnerOptions
	ready atomic.Bool
	prov  *provenance.Checker   // nil when proofs are not checked
	guard atomic.Pointer[guard] // nil when the set has no budgets
	// guards builds guard, again on a version switch (budget_guard.go).
	guards guards
	// versions, for a deployed rule set, gives the version that handles
	// each event; nil runs set alone.
	versions *versionTable
	// temporal keeps the state of the set's temporal rules; nil without.
	temporal *temporalEngine
	co       *coalescer // nil when writes are not coalesced ([WithBatching])
}

// RunnerOption configures a [Runner].
type RunnerOption func(*runnerOptions)

type runnerOptions struct {
	stream       string
	deadLetters  string
	ackWait      time.Duration
	maxDeliver   int
	retryBackoff []time.Duration
	concurrency  int
	batch        int
	logger       *slog.Logger
	metrics      *tracing.Metrics
	start        StartPolicy
	noProofCheck bool
	clock        Clock
}

// WithStream names the event stream (default events.DefaultStream).
func WithStream(name string) RunnerOption { return func(o *runnerOptions) { o.stream = name } }

// WithDeadLetterStream names the dead-letter stream (default
// [DefaultDeadLetterStream]); its subjects are storeloop.dlq.>.
func WithDeadLetterStream(name string) RunnerOption {
	return func(o *runnerOptions) { o.deadLetters = name }
}

// WithAckWait sets how long JetStream waits for a verdict on a delivery
// before it delivers the event again (default 30s). A runner working on an
// event longer than that tells JetStream so every AckWait/3.
func WithAckWait(d time.Duration) RunnerOption { return func(o *runnerOptions) { o.ackWait = d } }

// WithMaxDeliver sets how many deliveries an event whose rules fail gets
// before it is dead-lettered (default 5).
func WithMaxDeliver(n int) RunnerOption { return func(o *runnerOptions) { o.maxDeliver = n } }

// WithRetryBackoff sets the delays before redelivering a failed event (see
// [DefaultRetryBackoff]).
func WithRetryBackoff(delays ...time.Duration) RunnerOption {
	return func(o *runnerOptions) { o.retryBackoff = delays }
}

// WithConcurrency sets how many events one runner works on at a time
// (default 8).
func WithConcurrency(n int) RunnerOption { return func(o *runnerOptions) { o.concurrency = n } }

// WithBatching sends the writes of rule actions that run at the same time
// as store.batch requests of at most n commands (0: one request each; at
// most events.MaxBatchCommands). Each action still waits for its own
// command's result, with the same command id, errors and a CLIENT span of
// its own; a batch leaves as soon as one of a few senders is free, never
// waiting to fill, so an idle runner's write leaves at once. A client on
// bucket-scoped subjects sends one request each: store.batch has none.
// Default [DefaultBatching].
func WithBatching(n int) RunnerOption { return func(o *runnerOptions) { o.batch = n } }

// WithLogger sets the runner's logger (default: none).
func WithLogger(l *slog.Logger) RunnerOption { return func(o *runnerOptions) { o.logger = l } }

// WithMetrics records firings, failures and dead letters in m.
func WithMetrics(m *tracing.Metrics) RunnerOption { return func(o *runnerOptions) { o.metrics = m } }

// StartPolicy is where a rule set's new durable consumer starts in the
// event stream. It matters only when the consumer is created: a consumer
// that exists keeps its position, whatever the policy.
type StartPolicy int

const (
	// StartAll delivers every event in the stream, history included: no
	// event is missed when runners start before the first writes.
	StartAll StartPolicy = iota
	// StartNew delivers only events appended after the consumer is
	// created: a new rule set deployed on a store with history does not
	// act on that history (it would, say, award loyalty points again for
	// every past order).
	StartNew
)

// String is "all" or "new", as [ParseStartPolicy] reads it.
func (p StartPolicy) String() string {
	switch p {
	case StartAll:
		return "all"
	case StartNew:
		return "new"
	}
	return fmt.Sprintf("StartPolicy(%d)", int(p))
}

// ParseStartPolicy reads "all" or "new".
func ParseStartPolicy(s string) (StartPolicy, error) {
	switch s {
	case "all":
		return StartAll, nil
	case "new":
		return StartNew, nil
	}
	return 0, fmt.Errorf("rulenode: start policy %q: want all or new", s)
}

// WithStartFrom sets where the rule set's consumer starts when this runner
// creates it (default [StartAll]).
func WithStartFrom(p StartPolicy) RunnerOption { return func(o *runnerOptions) { o.start = p } }

// NewRunner returns a runner of set that reads events with js and writes
// through cl. Options are checked by Run.
func NewRunner(js jetstream.JetStream, cl *client.Client, set *RuleSet, opts ...RunnerOption) *Runner {
	o := runnerOptions{
		stream:       events.DefaultStream,
		deadLetters:  DefaultDeadLetterStream,
		ackWait:      DefaultAckWait,
		maxDeliver:   DefaultMaxDeliver,
		retryBackoff: DefaultRetryBackoff,
		concurrency:  DefaultConcurrency,
		batch:        DefaultBatching,
		clock:        systemClock{},
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	r := &Runner{js: js, cl: cl, set: set, o: o}
	if o.batch > 0 && cl != nil && !cl.ScopedSubjects() {
		r.co = newCoalescer(cl, o.batch)
	}
	return r
}

// errNotReady is Ready's answer before Run fetches and after it stops.
var errNotReady = errors.New("rulenode: not fetching events")

// Ready returns nil while Run has the consumer bound and fetches events
// (a readiness probe).
func (r *Runner) Ready() error {
	if r.ready.Load() {
		return nil
	}
	return errNotReady
}

func (r *Runner) validate() error {
	o := r.o
	switch {
	case r.js == nil || r.cl == nil:
		return errors.New("rulenode: runner needs a JetStream context and a client")
	case r.set == nil || len(r.set.Rules) == 0:
		return errors.New("rulenode: runner needs a rule set with at least one rule")
	case !ruleSetNameRE.MatchString(r.set.Name):
		return fmt.Errorf("rulenode: %q is not a valid rule-set name", r.set.Name)
	case o.stream == "" || o.deadLetters == "":
		return errors.New("rulenode: empty stream name")
	case o.ackWait < 10*time.Millisecond:
		return fmt.Errorf("rulenode: ack wait %s is too short", o.ackWait)
	case o.maxDeliver < 1:
		return fmt.Errorf("rulenode: max deliver must be at least 1, not %d", o.maxDeliver)
	case len(o.retryBackoff) == 0:
		return errors.New("rulenode: empty retry backoff")
	case o.clock == nil:
		return errors.New("rulenode: WithClock(nil)")
	case o.concurrency < 1:
		return fmt.Errorf("rulenode: concurrency must be at least 1, not %d", o.concurrency)
	case o.batch < 0 || o.batch > events.MaxBatchCommands:
		return fmt.Errorf("rulenode: batching must be 0 to %d commands, not %d", events.MaxBatchCommands, o.batch)
	case o.start != StartAll && o.start != StartNew:
		return fmt.Errorf("rulenode: unknown start policy %s", o.start)
	}
	for _, d := range o.retryBackoff {
		if d < 0 {
			return fmt.Errorf("rulenode: negative retry backoff %s", d)
		}
	}
	return nil
}

// Run binds the rule set's consumer (creating it, and the dead-letter
// stream, if missing; waiting for the event stream if the store node has
// not created it yet) and processes events until ctx is done. Then it
// stops fetching, finishes the events it is working on, hands back the
// ones it had fetched but not started, and returns nil.
//
// For each event it runs every rule whose filter matches the subject and
// whose condition holds, in set order, and acknowledges the event only
// after all their actions were acknowledged by the store. Each command
// carries an id derived from the rule set, the rule, the event's stream
// sequence and the action path ([CommandID]), and the causal chain of the
// event (correlation id, causation id = the event's id, hop + 1, rule id),
// so a redelivered event changes nothing twice.
//
// An event whose hop count is at least the set's MaxHop is not acted on:
// it goes to the dead-letter stream (reason max_hop) and is acknowledged.
// An event whose rules fail is delivered again after a backoff; after
// MaxDeliver deliveries, or at once when retrying cannot help, it goes to
// the dead-letter stream with its payload and the error and is terminated.
// A failing event never holds up the others. Retrying cannot help an
// expression that does not evaluate, nor a command the store refused as
// invalid or as a conflict (it answers the same command id the same way),
// nor an action whose onConflict or onMissing is fail. A rule stopped
// under onConflict: skip or onMissing: skip ([SkipError]) has not failed:
// it is logged at info and marked on its span, and the event is
// acknowledged.
//
// A rule whose writes for an event would pass its [Budget] writes nothing
// for it: the event is dead-lettered (reason budget), and a rule over
// budget on QuarantineStrikes events within QuarantineWindow is
// quarantined: no runner of the set runs it until [Resume].
//
// Ordering: events of the same record (bucket and key) are worked on one
// at a time, in stream order, within one runner. Across runners sharing the
// consumer, and for an event delivered again, there is no order: rules
// should decide from the event (its old and new record) and write with
// increments, upserts, expectVersion or tx, not from assumptions about
// which event came first.
func (r *Runner) Run(ctx context.Context) error {
	if err := r.validate(); err != nil {
		return err
	}
	cons, err := r.bind(ctx)
	if err == nil {
		var g *guard
		g, err = r.startGuard(ctx)
		r.guard.Store(g)
	}
	if err == nil {
		err = r.startTemporal(ctx)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	return r.consume(ctx, cons)
}

// maxHop is the set's MaxHop, defaulted.
func (rs *RuleSet) maxHop() int {
	if rs.MaxHop > 0 {
		return rs.MaxHop
	}
	return DefaultMaxHop
}

// setFor returns the rule set that handles the event at stream sequence
// seq: the runner's own, or the deployed version that covers seq.
func (r *Runner) setFor(ctx context.Context, seq uint64) (*RuleSet, error) {
	if r.versions == nil {
		return r.set, nil
	}
	return r.versions.forSeq(ctx, seq)
}

// retryDelay is the delay before delivery n+1 after delivery n failed.
func (r *Runner) retryDelay(n uint64) time.Duration {
	b := r.o.retryBackoff
	return b[min(n-1, uint64(len(b)-1))]
}

// verdict is what becomes of a delivery.
type verdict int

const (
	verdictAck  verdict = iota // done: acknowledge
	verdictNak                 // failed: deliver again after the backoff
	verdictTerm                // dead-lettered: never again
)

// ruleFailure is one rule that failed on an event.
type ruleFailure struct {
	ruleID string
	err    error
}

// handle works on one delivery from start to verdict.
func (r *Runner) handle(ctx context.Context, d delivery) {
	md, err := d.msg.Metadata()
	if err != nil {
		// Only a message that did not come from a consumer lacks metadata.
		r.o.logger.ErrorContext(ctx, "rule node: message without JetStream metadata", "subject", d.msg.Subject(), "err", err)
		return
	}
	seq, n := md.Sequence.Stream, md.NumDelivered
	ctx = tracing.Extract(ctx, d.msg.Headers())
	ctx, span := tracing.StartDelivery(ctx, d.msg.Subject(), r.set.Name, seq, n)
	defer span.End()
	log := &deliveryLog{base: r.o.logger, set: r.set.Name, subject: d.msg.Subject(), seq: seq, n: n}

	stop := r.keepAlive(d.msg)
	v, err := r.process(ctx, log, d, seq, n)
	stop()
	tracing.RecordError(span, err)

	switch v {
	case verdictAck:
		// A plain ack, not a confirmed one: the effects are durable in the
		// store already, and if the ack is lost the redelivery gets the
		// same replies from the store (same command ids) and changes
		// nothing. Waiting for the server's confirmation cost a round
		// trip per event and held the worker for it.
		err = d.msg.Ack()
	case verdictNak:
		err = d.msg.NakWithDelay(r.retryDelay(n))
	case verdictTerm:
		err = d.msg.Term()
	}
	if err != nil {
		// The event comes back after AckWait; its commands are idempotent.
		log.WarnContext(ctx, "rule node: could not settle the delivery", "err", err)
	}
}

// process runs the rules on a delivery and returns the verdict, dead-
// lettering the event when that is the verdict. The error is for the span.
func (r *Runner) process(ctx context.Context, log *deliveryLog, d delivery, seq, n uint64) (verdict, error) {
	dl := DeadLetter{RuleSet: r.set.Name, Subject: d.msg.Subject(), StreamSeq: seq, Deliveries: n}
	dl.body = d.msg.Data()
	if v, checked, err := r.checkProof(ctx, log, d, seq, dl); checked {
		return v, err
	}
	if d.err != nil {
		dl.Reason, dl.Error = ReasonUndecodable, d.err.Error()
		return r.bury(ctx, log, d.err, dl)
	}
	ev := d.ev
	ev.Meta.Seq = seq
	dl.EventID, dl.CorrelationID, dl.Hop = ev.Meta.EventID, ev.Meta.CorrelationID, ev.Meta.Hop
	log.ev = ev

	if n > uint64(r.o.maxDeliver) {
		err := fmt.Errorf("delivered %d times without an outcome (max %d): not running it again", n, r.o.maxDeliver)
		dl.Reason, dl.Error = ReasonMaxDeliver, err.Error()
		return r.bury(ctx, log, err, dl)
	}

	set, serr := r.setFor(ctx, seq)
	if serr != nil {
		log.WarnContext(ctx, "rule node: no rule-set version for the event, will retry", "err", serr)
		return verdictNak, serr
	}
	e := &evalEvent{ev: ev}
	rules, failed := set.eligible(ctx, e)
	if ev.Meta.Hop >= set.maxHop() {
		return r.stopLoop(ctx, log, set, ev, dl, rules, failed)
	}
	g, gerr := r.guardFor(ctx, set)
	if gerr != nil {
		log.WarnContext(ctx, "rule node: no budgets for the rule-set version, will retry", "version", set.Version, "err", gerr)
		return verdictNak, gerr
	}
	rules, failed = g.admit(ctx, set, e, seq, rules, failed)
	for _, rule := range rules {
		if err := r.runRule(ctx, log, set, rule, e, g.store(set, rule, r.storeClient(rule.ID, seq))); err != nil {
			failed = append(failed, ruleFailure{rule.ID, err})
		}
	}
	if r.temporal != nil {
		failed = append(failed, r.runTemporal(ctx, log, set, e)...)
	}
	if len(failed) == 0 {
		return verdictAck, nil
	}
	g.overrun(ctx, log, seq, failed)

	errs := make([]error, len(failed))
	permanent := true
	for i, f := range failed {
		errs[i] = f.err
		permanent = permanent && isPermanent(f.err)
	}
	err := errors.Join(errs...)
	if !permanent && n < uint64(r.o.maxDeliver) {
		log.WarnContext(ctx, "rule node: rules failed, will retry", "err", err, "retryIn", r.retryDelay(n))
		return verdictNak, err
	}
	dl.Reason = ReasonFailed
	if permanent {
		dl.Reason = ReasonRejected
	}
	letters := make([]DeadLetter, len(failed))
	for i, f := range failed {
		letters[i] = dl
		letters[i].RuleID, letters[i].Error = f.ruleID, f.err.Error()
		if errors.As(f.err, new(*BudgetError)) {
			letters[i].Reason = ReasonBudget
		}
	}
	return r.bury(ctx, log, err, letters...)
}

// checkProof handles a message that is not proved written by a trusted
// store: it is not acted on, it is dead-lettered (reason foreign) and
// acknowledged. checked is false for a proved message (or proofs off).
// When the proof cannot be checked now, the event is retried.
func (r *Runner) checkProof(ctx context.Context, log logger, d delivery, seq uint64, dl DeadLetter) (v verdict, checked bool, err error) {
	if r.prov == nil {
		return 0, false, nil
	}
	switch err := r.prov.Check(ctx, d.msg, seq); {
	case err == nil:
		return 0, false, nil
	case !provenance.IsForeign(err):
		log.WarnContext(ctx, "rule node: cannot check the event's proof, will retry", "err", err)
		return verdictNak, true, err
	default:
		err = fmt.Errorf("not written by a trusted store: %w", err)
		dl.Reason, dl.Error = ReasonForeign, err.Error()
		if v, berr := r.bury(ctx, log, err, dl); v != verdictTerm {
			return v, true, berr
		}
		return verdictAck, true, err
	}
}

// eligible returns the rules that act on e's event, and those whose
// condition could not be evaluated.
func (rs *RuleSet) eligible(ctx context.Context, e *evalEvent) ([]*Rule, []ruleFailure) {
	var rules []*Rule
	var failed []ruleFailure
	for _, rule := range rs.Match(eventSubject(e.ev)) {
		if rule.Temporal != nil {
			continue // see runTemporal
		}
		ok, err := rule.eligible(ctx, e)
		switch {
		case err != nil:
			failed = append(failed, ruleFailure{rule.ID, err})
		case ok:
			rules = append(rules, rule)
		}
	}
	return rules, failed
}

// eventSubject is the subject ev was appended on. Matching on it rather
// than on the message subject keeps rules and events consistent even if
// the stream is mirrored under another prefix.
func eventSubject(ev *events.Event) string { return events.EventSubject(ev.Bucket, ev.Type) }

// stopLoop handles an event at or past MaxHop: if some rule would have
// acted on it (or its condition failed, so it might have), the loop is
// cut here, visibly: a warning, a dead letter, a metric. Otherwise the
// event is simply done.
func (r *Runner) stopLoop(ctx context.Context, log logger, set *RuleSet, ev *events.Event, dl DeadLetter, rules []*Rule, failed []ruleFailure) (verdict, error) {
	var ids []string
	for _, rule := range rules {
		ids = append(ids, rule.ID)
	}
	for _, f := range failed {
		ids = append(ids, f.ruleID)
	}
	if len(ids) == 0 {
		return verdictAck, nil
	}
	err := fmt.Errorf("hop %d reached the rule set's maxHop %d: rules %v not run", ev.Meta.Hop, set.maxHop(), ids)
	log.WarnContext(ctx, "rule node: loop stopped at maxHop", "maxHop", set.maxHop(), "rules", ids)
	if m := r.o.metrics; m != nil {
		m.MaxHopStopped(ctx, r.set.Name)
	}
	dl.Reason, dl.RuleID, dl.Error = ReasonMaxHop, ids[0], err.Error()
	if v, perr := r.bury(ctx, log, err, dl); v != verdictTerm {
		return v, perr
	}
	// Not acting on the event is its correct outcome: acknowledge it.
	return verdictAck, err
}

// bury dead-letters the event and returns verdictTerm, or verdictNak when
// the dead-letter stream cannot take it (the event comes back and is
// dead-lettered then).
func (r *Runner) bury(ctx context.Context, log logger, cause error, letters ...DeadLetter) (verdict, error) {
	for i := range letters {
		letters[i].Time = time.Now().UTC()
		if err := publishDeadLetter(ctx, r.js, &letters[i]); err != nil {
			log.ErrorContext(ctx, "rule node: cannot dead-letter the event, will retry", "err", err, "cause", cause)
			return verdictNak, errors.Join(cause, err)
		}
		if m := r.o.metrics; m != nil {
			m.DeadLettered(ctx, r.set.Name, letters[i].Reason)
		}
	}
	log.ErrorContext(ctx, "rule node: event dead-lettered", "reason", letters[0].Reason, "err", cause)
	return verdictTerm, cause
}

// SpanEventRuleSkipped is the event a rule's span gets when the rule
// stopped on a conflict under onConflict: skip, or a missing record under
// onMissing: skip ([SkipError]), with the attributes storeloop.action_path
// and storeloop.conflict or storeloop.not_found (the store's message).
const SpanEventRuleSkipped = "storeloop.rule.skipped"

// runRule executes one eligible rule for e's event in its own span, with the
// causal context of its writes, through st (which gives them their
// idempotent command ids); set is the rule's set (its version goes into
// the writes' meta). A skipped rule
// is done: not a failure, and not a firing in the metrics, but a skip.
func (r *Runner) runRule(ctx context.Context, log logger, set *RuleSet, rule *Rule, e *evalEvent, st Store) (err error) {
	ev := e.ev
	ctx, span := tracing.StartRule(ctx, rule.ID,
		tracing.AttrHop.Int(ev.Meta.Hop), tracing.AttrCorrelationID.String(ev.Meta.CorrelationID))
	var skip *SkipError
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("rule %q panicked: %v", rule.ID, p)
		}
		tracing.RecordError(span, err)
		span.End()
		if m := r.o.metrics; m != nil && skip == nil {
			if err != nil {
				m.RuleFailed(ctx, rule.ID)
			} else {
				m.RuleFired(ctx, rule.ID)
			}
		}
	}()
	cause := client.CausedBy(ev, rule.ID)
	cause.RuleVersion = set.Version
	ctx = client.WithCause(ctx, cause)
	err = rule.execute(ctx, e, Env{Store: st, Logger: r.o.logger})
	if !errors.As(err, &skip) {
		return err
	}
	// The state the rule decided on has changed since ev (the event that
	// changed it is evaluated on its own), or the record it writes does
	// not exist and the rule says so be it: this event is done.
	attr, why := "storeloop.conflict", "the state it decided on has changed"
	if errors.Is(skip.Err, events.ErrNotFound) {
		attr, why = "storeloop.not_found", "a record it writes is missing"
	}
	span.AddEvent(SpanEventRuleSkipped, trace.WithAttributes(
		attribute.String("storeloop.action_path", skip.Path),
		attribute.String(attr, skip.Err.Error())))
	log.InfoContext(ctx, "rule node: rule skipped, "+why,
		"rule", rule.ID, "path", skip.Path, "err", skip.Err)
	if m := r.o.metrics; m != nil {
		m.RuleSkipped(ctx, rule.ID)
	}
	return nil
}

// isPermanent reports whether running the rule again on the same event
// must fail the same way: its expressions do not evaluate on this event,
// or the store refused the command itself. A conflict is permanent too:
// the store answers a command id it has seen with its first reply, and
// versions only grow. So is whatever the action's onConflict or onMissing
// says to fail on.
func isPermanent(err error) bool {
	var ee *EvalError
	var ae *ActionError
	return errors.As(err, &ee) || errors.As(err, new(*BudgetError)) || errors.As(err, &ae) && ae.Rejected || errors.Is(err, events.ErrValidation) || errors.Is(err, events.ErrBadRequest) ||
		errors.Is(err, events.ErrConflict) || errors.Is(err, errNoActionPath) || errors.As(err, new(*StateTooLargeError))
}
