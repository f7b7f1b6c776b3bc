package rulenode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/storeloop/storeloop/events"
)

// Store is what rule actions need of the store: the Go client, adapted,
// in production; anything that keeps the contract in tests. Every call's
// context carries the action path of the call (see ActionPath).
//
// A version check that fails (an update or delete whose ExpectVersion is
// stale, a tx whose reads are) is an error matching events.ErrConflict.
type Store interface {
	Insert(ctx context.Context, bucket string, rec events.Record) (events.Record, error)
	Update(ctx context.Context, bucket string, key any, changes events.Record, increment map[string]float64, opts ...WriteOption) (events.Record, error)
	Upsert(ctx context.Context, bucket string, key any, rec events.Record, increment map[string]float64) (events.Record, error)
	Delete(ctx context.Context, bucket string, key any, opts ...WriteOption) (bool, error)
	// Tx applies ops atomically, after checking that every read is still at
	// its version (a missing record is version 0).
	Tx(ctx context.Context, ops []events.TxOp, reads ...events.TxRead) ([]any, error)
	// Query returns every record matching where.
	Query(ctx context.Context, bucket string, where events.Where) ([]events.Record, error)
	Publish(ctx context.Context, subject string, data []byte) error
}

// WriteOption refines a [Store]'s Update or Delete.
type WriteOption func(*WriteOptions)

// WriteOptions are the [WriteOption]s of one call, applied.
type WriteOptions struct {
	// ExpectVersion, when set, makes the write a conflict unless the
	// record's _version is this.
	ExpectVersion *int64
}

// ExpectVersion makes an Update or Delete a conflict (and a no-op) unless
// the record is at version v.
func ExpectVersion(v int64) WriteOption {
	return func(o *WriteOptions) { o.ExpectVersion = &v }
}

// ApplyWriteOptions returns opts applied in order, for [Store]
// implementations.
func ApplyWriteOptions(opts ...WriteOption) WriteOptions {
	var o WriteOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// ActionKind names what an action does.
type ActionKind string

const (
	KindInsert  ActionKind = "insert"
	KindUpdate  ActionKind = "update"
	KindUpsert  ActionKind = "upsert"
	KindDelete  ActionKind = "delete"
	KindTx      ActionKind = "tx"
	KindForEach ActionKind = "forEach"
	KindPublish ActionKind = "publish"
	KindLog     ActionKind = "log"
)

// OnConflict is what becomes of a rule when the store answers one of its
// writes with conflict: a version check failed (expectVersion, a tx's
// reads) or an insert found its key taken.
type OnConflict string

const (
	// ConflictDefault is ConflictSkip for an action that checks a version
	// ([Action.Checked]), else ConflictFail.
	ConflictDefault OnConflict = ""
	// ConflictSkip stops the rule for this event without failing: the
	// state it decided on is gone, and the event that changed it is
	// evaluated on its own. Execute returns a *SkipError.
	ConflictSkip OnConflict = "skip"
	// ConflictFail fails the rule; a runner dead-letters the event at
	// once (reason rejected), since the same command id gets the same
	// answer every time.
	ConflictFail OnConflict = "fail"
)

// OnMissing is what becomes of a rule when the store answers one of its
// writes with not_found: an update (also inside a tx) of a record that
// does not exist.
type OnMissing string

const (
	// MissingRetry, also the default, fails the rule as a transient
	// error: the record may yet be written (its insert is on its way), so
	// a runner delivers the event again after a backoff and dead-letters
	// it (reason failed) after its last delivery.
	MissingRetry OnMissing = "retry"
	// MissingSkip stops the rule for this event without failing, as
	// [ConflictSkip] does: "update it if it exists".
	MissingSkip OnMissing = "skip"
	// MissingFail fails the rule at once: a runner dead-letters the event
	// on its first delivery (reason rejected).
	MissingFail OnMissing = "fail"
)

// MaxForEachItems is the most records one forEach acts on; more is an
// error rather than an unbounded fan-out.
const MaxForEachItems = 10_000

// Action is one compiled action of a YAML rule. Which fields are set
// depends on Kind.
type Action struct {
	Kind ActionKind
	Line int // in the rule file

	// Bucket is the bucket written (insert, update, upsert, delete) or
	// queried (forEach).
	Bucket    string
	Key       *Value // update, upsert, delete
	Record    *Value // insert, upsert
	Changes   *Value // update
	Increment *Value // update, upsert

	Ops   []*Action    // tx: insert, update, upsert, delete and forEach of those
	Reads []*ReadCheck // tx: versions the rule decided on

	// ExpectVersion (update, delete) makes the write a conflict unless the
	// record is at this version.
	ExpectVersion *Value
	// OnConflict (insert, update, delete, tx) says what a conflict does;
	// see [Action.ConflictPolicy].
	OnConflict OnConflict
	// OnMissing (update, tx) says what a not_found answer does; "" is
	// [MissingRetry].
	OnMissing OnMissing

	Where   *Value    // forEach; nil matches all
	As      string    // forEach loop variable
	ItemKey string    // forEach: the record field naming an item in action paths
	Do      []*Action // forEach

	Subject *Value // publish
	Data    *Value // publish; nil publishes an empty body
	Message *Value // log
	Level   slog.Level
}

// ReadCheck is one entry of a tx's reads: the transaction applies only if
// the record under Key in Bucket is still at Version (0: absent).
type ReadCheck struct {
	Bucket  string
	Key     *Value
	Version *Value
	Line    int
}

// Checked reports whether the action checks versions: an update or delete
// with ExpectVersion, a tx with reads or with such an op.
func (a *Action) Checked() bool {
	if a.ExpectVersion != nil || len(a.Reads) > 0 {
		return true
	}
	for _, sub := range a.Ops {
		if sub.Checked() {
			return true
		}
	}
	for _, sub := range a.Do {
		if sub.Checked() {
			return true
		}
	}
	return false
}

// ConflictPolicy is OnConflict, defaulted: skip for a [Action.Checked]
// action, whose version check is the rule's own "is my decision still
// current?", else fail.
func (a *Action) ConflictPolicy() OnConflict {
	switch {
	case a.OnConflict != ConflictDefault:
		return a.OnConflict
	case a.Checked():
		return ConflictSkip
	}
	return ConflictFail
}

// policyFor maps the store's answer err to a write or tx action to what
// the action says to do about it: its onConflict for a conflict, its
// onMissing for not_found; "" for any other error, which fails the rule
// as usual (retried unless isPermanent).
func (a *Action) policyFor(err error) string {
	switch {
	case errors.Is(err, events.ErrConflict):
		return string(a.ConflictPolicy())
	case errors.Is(err, events.ErrNotFound):
		if a.OnMissing == "" {
			return string(MissingRetry)
		}
		return string(a.OnMissing)
	}
	return ""
}

// SkipError is a rule stopped on an event by a conflict under
// onConflict: skip, or a missing record under onMissing: skip. The
// actions before the one at Path are done, the rest are not run, and a
// runner acknowledges the event: it is not a failure. Err is the store's
// error (matching events.ErrConflict or events.ErrNotFound). A Go handler
// may return one too.
type SkipError struct {
	RuleID string
	Path   string
	Kind   ActionKind
	Err    error
}

func (e *SkipError) Error() string {
	return fmt.Sprintf("rule %q skipped at action %s (%s): %v", e.RuleID, e.Path, e.Kind, e.Err)
}

func (e *SkipError) Unwrap() error { return e.Err }

// ActionError is a store call of an action that failed. Err keeps the
// store's error (an *events.Error when the store answered).
type ActionError struct {
	RuleID string
	Path   string
	Kind   ActionKind
	Err    error
	// Rejected is set when the action's onConflict or onMissing is fail:
	// delivering the event again is not wanted, a runner dead-letters it
	// at once (reason rejected).
	Rejected bool
}

func (e *ActionError) Error() string {
	return fmt.Sprintf("rule %q action %s (%s): %v", e.RuleID, e.Path, e.Kind, e.Err)
}

func (e *ActionError) Unwrap() error { return e.Err }

type pathKey struct{}

// ActionPath returns the action path a Store call was made for: the index
// of the action in the rule's then list, followed, inside a forEach, by
// the item (its ItemKey value, else its index) and the index of the
// sub-action: "2", "3.0.1", "3.n:17.0". The path is the same every time
// the same rule runs on the same event against the same data, so
// (rule set, rule id, event sequence, path) is an idempotent command id.
func ActionPath(ctx context.Context) string {
	p, _ := ctx.Value(pathKey{}).(string)
	return p
}

func withPath(ctx context.Context, path string) context.Context {
	return context.WithValue(ctx, pathKey{}, path)
}

// Execute runs the rule's actions (or its Handler) for ev. It does not
// check eligibility: call Eligible first. Actions run in order and the
// first failure stops the rule; running it again for the same event
// repeats the same calls with the same action paths.
func (r *Rule) Execute(ctx context.Context, ev *events.Event, env Env) error {
	return r.execute(ctx, &evalEvent{ev: ev}, env)
}

func (r *Rule) execute(ctx context.Context, e *evalEvent, env Env) error {
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	if r.Handler != nil {
		env.Store = &pathCounter{Store: env.Store}
		return r.Handler(ctx, e.ev, &env)
	}
	vars, err := e.activation()
	if err != nil {
		return &EvalError{RuleID: r.ID, Err: err}
	}
	x := &executor{rule: r, ev: e.ev, env: env}
	for i, a := range r.Then {
		if err := x.run(ctx, a, strconv.Itoa(i), vars); err != nil {
			return err
		}
	}
	return nil
}

type executor struct {
	rule *Rule
	ev   *events.Event
	env  Env
}

// fail attaches the rule and path to an evaluation or store error.
func (x *executor) fail(path string, kind ActionKind, err error) error {
	var ee *EvalError
	if errors.As(err, &ee) {
		ee.RuleID, ee.Path = x.rule.ID, path
		return ee
	}
	return &ActionError{RuleID: x.rule.ID, Path: path, Kind: kind, Err: err}
}

func (x *executor) run(ctx context.Context, a *Action, path string, vars map[string]any) error {
	st := x.env.Store
	cctx := withPath(ctx, path)
	switch a.Kind {
	case KindTx:
		ops, err := x.txOps(ctx, a.Ops, path, vars)
		if err != nil {
			return err
		}
		if len(ops) == 0 {
			return nil
		}
		reads, err := x.reads(ctx, a, vars)
		if err != nil {
			return x.fail(path, a.Kind, err)
		}
		if _, err := st.Tx(cctx, ops, reads...); err != nil {
			return x.writeFailed(path, a, err)
		}
		return nil
	case KindForEach:
		return x.forEach(ctx, a, path, vars, func(ctx context.Context, sub *Action, path string, vars map[string]any) error {
			return x.run(ctx, sub, path, vars)
		})
	case KindPublish:
		subject, data, err := x.publishArgs(ctx, a, vars)
		if err != nil {
			return x.fail(path, a.Kind, err)
		}
		if err := st.Publish(cctx, subject, data); err != nil {
			return x.fail(path, a.Kind, err)
		}
		return nil
	case KindLog:
		msg, err := a.Message.Eval(ctx, vars)
		if err != nil {
			return x.fail(path, a.Kind, err)
		}
		text, _ := formatText(msg)
		x.env.Logger.Log(ctx, a.Level, text, "rule", x.rule.ID, "path", path,
			"eventId", x.ev.Meta.EventID, "correlationId", x.ev.Meta.CorrelationID)
		return nil
	}
	op, err := x.writeOp(ctx, a, vars)
	if err != nil {
		return x.fail(path, a.Kind, err)
	}
	var opts []WriteOption
	if op.ExpectVersion != nil {
		opts = append(opts, ExpectVersion(*op.ExpectVersion))
	}
	switch a.Kind {
	case KindInsert:
		_, err = st.Insert(cctx, op.Bucket, op.Record)
	case KindUpdate:
		_, err = st.Update(cctx, op.Bucket, op.Key, op.Changes, op.Increment, opts...)
	case KindUpsert:
		_, err = st.Upsert(cctx, op.Bucket, op.Key, op.Record, op.Increment)
	case KindDelete:
		_, err = st.Delete(cctx, op.Bucket, op.Key, opts...)
	}
	if err != nil {
		return x.writeFailed(path, a, err)
	}
	return nil
}

// writeFailed is fail for the store call of write or tx action a, as the
// action's policy for the error says: skip stops the rule with a
// *SkipError instead, fail marks the *ActionError rejected.
func (x *executor) writeFailed(path string, a *Action, err error) error {
	switch a.policyFor(err) {
	case "skip":
		return &SkipError{RuleID: x.rule.ID, Path: path, Kind: a.Kind, Err: err}
	case "fail":
		return &ActionError{RuleID: x.rule.ID, Path: path, Kind: a.Kind, Err: err, Rejected: true}
	}
	return x.fail(path, a.Kind, err)
}

// reads evaluates the reads of tx action a.
func (x *executor) reads(ctx context.Context, a *Action, vars map[string]any) ([]events.TxRead, error) {
	if len(a.Reads) == 0 {
		return nil, nil
	}
	out := make([]events.TxRead, len(a.Reads))
	for i, r := range a.Reads {
		key, err := evalKey(ctx, r.Key, vars)
		if err != nil {
			return nil, err
		}
		v, err := evalVersion(ctx, r.Version, vars)
		if err != nil {
			return nil, err
		}
		out[i] = events.TxRead{Bucket: r.Bucket, Key: key, Version: v}
	}
	return out, nil
}

// forEach queries the action's bucket and calls each for every sub-action
// of every item, with the loop variable bound and the item's path.
func (x *executor) forEach(ctx context.Context, a *Action, path string, vars map[string]any,
	each func(context.Context, *Action, string, map[string]any) error) error {
	var where events.Where
	if a.Where != nil {
		w, err := a.Where.Eval(ctx, vars)
		if err != nil {
			return x.fail(path, a.Kind, err)
		}
		m, ok := w.(map[string]any)
		if !ok && w != nil {
			return x.fail(path, a.Kind, fmt.Errorf("where is %s, want a map", jsonTypeName(w)))
		}
		where = m
	}
	items, err := x.env.Store.Query(withPath(ctx, path), a.Bucket, where)
	if err != nil {
		return x.fail(path, a.Kind, err)
	}
	if len(items) > MaxForEachItems {
		return x.fail(path, a.Kind, fmt.Errorf("query matched %d records, more than %d", len(items), MaxForEachItems))
	}
	for i, item := range items {
		seg, err := itemSegment(a, i, item)
		if err != nil {
			return x.fail(path, a.Kind, err)
		}
		inner := withVar(vars, a.As, map[string]any(item))
		for j, sub := range a.Do {
			if err := each(ctx, sub, path+"."+seg+"."+strconv.Itoa(j), inner); err != nil {
				return err
			}
		}
	}
	return nil
}

// itemSegment names a forEach item in action paths: by its ItemKey field
// when the action has one, so the path stays the same when a retry's query
// returns fewer items (the first run deleted some), else by position.
func itemSegment(a *Action, i int, item events.Record) (string, error) {
	if a.ItemKey == "" {
		return strconv.Itoa(i), nil
	}
	k, err := events.KeyString(item[a.ItemKey])
	if err != nil {
		return "", fmt.Errorf("item %d field %q: %w", i, a.ItemKey, err)
	}
	// Escape the separator so that keys cannot collide with nesting.
	return strings.NewReplacer("%", "%25", ".", "%2E").Replace(k), nil
}

// txOps evaluates the operations of a tx, expanding forEach.
func (x *executor) txOps(ctx context.Context, acts []*Action, path string, vars map[string]any) ([]events.TxOp, error) {
	var ops []events.TxOp
	for i, a := range acts {
		p := path + "." + strconv.Itoa(i)
		if a.Kind == KindForEach {
			err := x.forEach(ctx, a, p, vars, func(ctx context.Context, sub *Action, p string, vars map[string]any) error {
				more, err := x.txOps(ctx, []*Action{sub}, p, vars)
				ops = append(ops, more...)
				return err
			})
			if err != nil {
				return nil, err
			}
			continue
		}
		op, err := x.writeOp(ctx, a, vars)
		if err != nil {
			return nil, x.fail(p, a.Kind, err)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// writeOp evaluates an insert, update, upsert or delete into a TxOp.
func (x *executor) writeOp(ctx context.Context, a *Action, vars map[string]any) (events.TxOp, error) {
	op := events.TxOp{Op: string(a.Kind), Bucket: a.Bucket}
	var err error
	if a.Key != nil {
		if op.Key, err = evalKey(ctx, a.Key, vars); err != nil {
			return op, err
		}
	}
	if a.Record != nil {
		if op.Record, err = evalMap(ctx, a.Record, vars, "record"); err != nil {
			return op, err
		}
	}
	if a.Changes != nil {
		if op.Changes, err = evalMap(ctx, a.Changes, vars, "changes"); err != nil {
			return op, err
		}
	}
	if a.ExpectVersion != nil {
		v, err := evalVersion(ctx, a.ExpectVersion, vars)
		if err != nil {
			return op, err
		}
		op.ExpectVersion = &v
	}
	if a.Increment != nil {
		m, err := evalMap(ctx, a.Increment, vars, "increment")
		if err != nil {
			return op, err
		}
		op.Increment = make(map[string]float64, len(m))
		for k, v := range m {
			f, ok := v.(float64)
			if !ok {
				return op, fmt.Errorf("increment %q is %s, want a number", k, jsonTypeName(v))
			}
			op.Increment[k] = f
		}
	}
	return op, nil
}

func evalKey(ctx context.Context, v *Value, vars map[string]any) (any, error) {
	k, err := v.Eval(ctx, vars)
	if err != nil {
		return nil, err
	}
	if _, err := events.KeyString(k); err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	return k, nil
}

// maxVersion is the largest version a JSON number holds exactly.
const maxVersion = 1 << 53

// evalVersion evaluates a record version: a whole number from 0. Any other
// result is an *EvalError, since evaluating again gives the same.
func evalVersion(ctx context.Context, v *Value, vars map[string]any) (int64, error) {
	x, err := v.Eval(ctx, vars)
	if err != nil {
		return 0, err
	}
	f, ok := x.(float64)
	if !ok || f != math.Trunc(f) || f < 0 || f > maxVersion {
		what := jsonTypeName(x)
		if ok {
			what = strconv.FormatFloat(f, 'g', -1, 64)
		}
		var src string
		if v.expr != nil {
			src = v.expr.src
		}
		return 0, &EvalError{Expr: src, Err: fmt.Errorf("version is %s, want a whole number from 0", what)}
	}
	return int64(f), nil
}

func evalMap(ctx context.Context, v *Value, vars map[string]any, what string) (map[string]any, error) {
	x, err := v.Eval(ctx, vars)
	if err != nil {
		return nil, err
	}
	m, ok := x.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s is %s, want a map", what, jsonTypeName(x))
	}
	return m, nil
}

func (x *executor) publishArgs(ctx context.Context, a *Action, vars map[string]any) (string, []byte, error) {
	s, err := a.Subject.Eval(ctx, vars)
	if err != nil {
		return "", nil, err
	}
	subject, ok := s.(string)
	if !ok {
		return "", nil, fmt.Errorf("subject is %s, want a string", jsonTypeName(s))
	}
	if err := validPublishSubject(subject); err != nil {
		return "", nil, err
	}
	if a.Data == nil {
		return subject, nil, nil
	}
	d, err := a.Data.Eval(ctx, vars)
	if err != nil {
		return "", nil, err
	}
	data, err := json.Marshal(d)
	return subject, data, err
}

// validPublishSubject refuses subjects that would forge events or send
// commands: rules change the store only through its commands, which carry
// the rule's command ids (a published store.insert would apply once per
// redelivery). The store node's prefix when it is not the default is
// refused at run time (storeClient.Publish).
func validPublishSubject(s string) error {
	if err := validSubject(s); err != nil {
		return err
	}
	first, _, _ := strings.Cut(s, ".")
	if first == events.EventSubjectPrefix || first == events.DefaultCommandPrefix || first == "storeloop" || strings.HasPrefix(first, "$") {
		return reservedSubject(s)
	}
	return nil
}

func reservedSubject(s string) error {
	return fmt.Errorf("subject %q is reserved (bucket.>, store.> or the command prefix, storeloop.>, $...)", s)
}

// pathCounter gives a Go handler's store calls the paths "0", "1", … in
// call order.
type pathCounter struct {
	Store
	n atomic.Int64
}

func (p *pathCounter) next(ctx context.Context) context.Context {
	return withPath(ctx, strconv.FormatInt(p.n.Add(1)-1, 10))
}

func (p *pathCounter) Insert(ctx context.Context, bucket string, rec events.Record) (events.Record, error) {
	return p.Store.Insert(p.next(ctx), bucket, rec)
}

func (p *pathCounter) Update(ctx context.Context, bucket string, key any, changes events.Record, inc map[string]float64, opts ...WriteOption) (events.Record, error) {
	return p.Store.Update(p.next(ctx), bucket, key, changes, inc, opts...)
}

func (p *pathCounter) Upsert(ctx context.Context, bucket string, key any, rec events.Record, inc map[string]float64) (events.Record, error) {
	return p.Store.Upsert(p.next(ctx), bucket, key, rec, inc)
}

func (p *pathCounter) Delete(ctx context.Context, bucket string, key any, opts ...WriteOption) (bool, error) {
	return p.Store.Delete(p.next(ctx), bucket, key, opts...)
}

func (p *pathCounter) Tx(ctx context.Context, ops []events.TxOp, reads ...events.TxRead) ([]any, error) {
	return p.Store.Tx(p.next(ctx), ops, reads...)
}

func (p *pathCounter) Query(ctx context.Context, bucket string, where events.Where) ([]events.Record, error) {
	return p.Store.Query(p.next(ctx), bucket, where)
}

func (p *pathCounter) Publish(ctx context.Context, subject string, data []byte) error {
	return p.Store.Publish(p.next(ctx), subject, data)
}
