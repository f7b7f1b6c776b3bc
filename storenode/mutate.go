package storenode

import (
	"maps"
	"reflect"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/projections"
)

// mutation is the outcome of one validated write: the result to reply with
// and the events to append (none for a no-op). Its events are already
// applied to the node's state; undo reverts them if a later step fails.
type mutation struct {
	result any
	events []*events.Event
	// layout is set on a transaction with ops that appended nothing: what
	// each op's result is made of, so that a replay rebuilds its reply (see
	// txLayoutHeader).
	layout []any
}

// bucketFor returns the bucket and its compiled schema, or bucket_not_found.
func (n *Node) bucketFor(name string) (*projections.Bucket, *schema, *events.Error) {
	if !events.ValidBucketName(name) {
		return nil, nil, events.Errorf(events.CodeBadRequest, "bucket name %q is not a valid subject token (letters, digits, _ and -)", name)
	}
	b := n.state.Bucket(name)
	if b == nil {
		return nil, nil, events.Errorf(events.CodeBucketNotFound, "bucket %q is not defined", name)
	}
	return b, n.schemas[name], nil
}

// keyFor validates a key given in a request against the bucket's key field.
// A key of the wrong type is a fault of the request itself: bad_request.
func keyFor(b *projections.Bucket, key any) (string, *events.Error) {
	field := b.Def.Key
	want := b.Def.Schema[field].Type
	ok := false
	switch key.(type) {
	case string:
		ok = want == events.TypeString
	case float64:
		ok = want == events.TypeNumber
	}
	if !ok {
		return "", &events.Error{Code: events.CodeBadRequest, Message: "key has the wrong type",
			Issues: []events.Issue{{Field: field, Message: "key must be a " + want, Code: "type"}}}
	}
	k, err := events.KeyString(key)
	if err != nil {
		return "", &events.Error{Code: events.CodeBadRequest, Message: err.Error(),
			Issues: []events.Issue{{Field: field, Message: err.Error(), Code: "type"}}}
	}
	return k, nil
}

// target is the record a keyed command addresses.
type target struct {
	b   *projections.Bucket
	sc  *schema
	key any           // as the request gave it
	k   string        // canonical (events.KeyString)
	old events.Record // the stored record, nil when absent
}

// target resolves bucket and key of a keyed command.
func (n *Node) target(bucket string, key any) (*target, *events.Error) {
	b, sc, e := n.bucketFor(bucket)
	if e != nil {
		return nil, e
	}
	k, e := keyFor(b, key)
	if e != nil {
		return nil, e
	}
	old, _ := b.Get(k)
	return &target{b: b, sc: sc, key: key, k: k, old: old}, nil
}

// writeTarget is target for a write: a view refuses it.
func (n *Node) writeTarget(bucket string, key any) (*target, *events.Error) {
	t, e := n.target(bucket, key)
	if e == nil {
		e = writable(t.b)
	}
	if e != nil {
		return nil, e
	}
	return t, nil
}

// checkVersion fails with conflict when expect is set and is not t's version.
func (t *target) checkVersion(expect *int64) *events.Error {
	if expect != nil && version(t.old) != *expect {
		return events.Errorf(events.CodeConflict, "%s %v is at version %d, not %d", t.b.Def.Key, t.key, version(t.old), *expect)
	}
	return nil
}

// addIncrements adds inc to the number fields of rec (absent counts as 0).
func addIncrements(rec events.Record, inc map[string]float64) {
	for f, d := range inc {
		cur, _ := rec[f].(float64)
		rec[f] = cur + d
	}
}

// checkUnique reports unique fields of rec whose value another record holds.
func checkUnique(sc *schema, b *projections.Bucket, key string, rec events.Record) *events.Error {
	var issues []events.Issue
	for _, f := range sc.uniqueFields() {
		v, ok := rec[f]
		if !ok || v == nil {
			continue
		}
		for _, other := range b.Index(f).Equal(v) {
			if other != key {
				issues = append(issues, events.Issue{Field: f, Message: "value already used by another record", Code: "unique"})
				break
			}
		}
	}
	if issues != nil {
		return &events.Error{Code: events.CodeUnique, Message: "unique constraint violated", Issues: issues}
	}
	return nil
}

func (n *Node) insert(bucket string, rec events.Record) (*mutation, *events.Error) {
	b, sc, e := n.bucketFor(bucket)
	if e != nil {
		return nil, e
	}
	if e := writable(b); e != nil {
		return nil, e
	}
	if rec == nil {
		return nil, events.Errorf(events.CodeBadRequest, "insert needs a record")
	}
	out, e := sc.prepareInsert(rec, b.NextAutoincrement, n.now())
	if e != nil {
		return nil, e
	}
	return n.finishInsert(b, sc, out)
}

// finishInsert stores a prepared record under its key as a new record.
func (n *Node) finishInsert(b *projections.Bucket, sc *schema, rec events.Record) (*mutation, *events.Error) {
	keyVal, e := sc.keyOf(rec)
	if e != nil {
		return nil, e
	}
	k, e := keyFor(b, keyVal)
	if e != nil {
		return nil, e
	}
	if _, exists := b.Get(k); exists {
		return nil, events.Errorf(events.CodeConflict, "%s %v already exists in %s", b.Def.Key, keyVal, b.Def.Bucket)
	}
	if e := checkUnique(sc, b, k, rec); e != nil {
		return nil, e
	}
	ts := float64(n.now().UnixMilli())
	rec[events.FieldVersion] = float64(1)
	rec[events.FieldCreatedAt] = ts
	rec[events.FieldUpdatedAt] = ts
	ev := &events.Event{Type: events.OpInserted, Bucket: b.Def.Bucket, Key: keyVal, Record: rec}
	m, e := n.applied(rec, ev)
	if e != nil {
		return nil, e
	}
	evicted, e := n.evict(b, k)
	m.events = append(m.events, evicted...)
	if e != nil {
		n.undo(m)
		return nil, e
	}
	return m, nil
}

// update merges changes and increments into the record under key.
func (n *Node) update(bucket string, key any, changes events.Record, inc map[string]float64, expect *int64) (*mutation, *events.Error) {
	t, e := n.writeTarget(bucket, key)
	if e != nil {
		return nil, e
	}
	if t.old == nil {
		return nil, events.Errorf(events.CodeNotFound, "%s %v not found in %s", t.b.Def.Key, key, bucket)
	}
	if e := t.checkVersion(expect); e != nil {
		return nil, e
	}
	return n.merge(t, changes, inc)
}

// merge applies changes then increments to old and stores the result,
// or returns old unchanged (and no event) when nothing changes.
func (n *Node) merge(t *target, changes events.Record, inc map[string]float64) (*mutation, *events.Error) {
	b, sc, old := t.b, t.sc, t.old
	issues := append(sc.checkChanges(changes), sc.checkIncrement(inc)...)
	if len(issues) > 0 {
		return nil, &events.Error{Code: events.CodeValidation, Message: "invalid changes", Issues: issues}
	}
	rec := maps.Clone(old)
	for f, v := range changes {
		if v == nil {
			delete(rec, f) // JSON merge: null removes the field
		} else {
			rec[f] = v
		}
	}
	addIncrements(rec, inc)
	if reflect.DeepEqual(rec, old) {
		return &mutation{result: old}, nil
	}
	if issues := sc.validate(rec); len(issues) > 0 {
		return nil, sc.invalid(issues)
	}
	if e := checkUnique(sc, b, t.k, rec); e != nil {
		return nil, e
	}
	rec[events.FieldVersion] = float64(version(old) + 1)
	rec[events.FieldUpdatedAt] = float64(n.now().UnixMilli())
	ev := &events.Event{Type: events.OpUpdated, Bucket: b.Def.Bucket, Key: t.key, OldRecord: old, NewRecord: rec}
	return n.applied(rec, ev)
}

// upsert inserts rec (with the key, defaults, and increments applied to the
// defaults) when key is absent, else merges rec and applies increments.
func (n *Node) upsert(bucket string, key any, rec events.Record, inc map[string]float64) (*mutation, *events.Error) {
	t, e := n.writeTarget(bucket, key)
	if e != nil {
		return nil, e
	}
	b, sc := t.b, t.sc
	if t.old != nil {
		changes := maps.Clone(rec)
		delete(changes, b.Def.Key)
		return n.merge(t, changes, inc)
	}
	if issues := sc.checkIncrement(inc); len(issues) > 0 {
		return nil, &events.Error{Code: events.CodeValidation, Message: "invalid increment", Issues: issues}
	}
	in := maps.Clone(rec)
	if in == nil {
		in = events.Record{}
	}
	if v, ok := in[b.Def.Key]; ok && !reflect.DeepEqual(v, key) {
		return nil, &events.Error{Code: events.CodeValidation, Message: "record key differs from the upsert key",
			Issues: []events.Issue{{Field: b.Def.Key, Message: "must equal the upsert key", Code: "immutable_key"}}}
	}
	in[b.Def.Key] = key
	out, e := sc.prepareInsert(in, b.NextAutoincrement, n.now())
	if e != nil {
		return nil, e
	}
	addIncrements(out, inc)
	if issues := sc.validate(out); len(issues) > 0 {
		return nil, sc.invalid(issues)
	}
	return n.finishInsert(b, sc, out)
}

func (n *Node) delete(bucket string, key any, expect *int64) (*mutation, *events.Error) {
	t, e := n.writeTarget(bucket, key)
	if e != nil {
		return nil, e
	}
	if t.old == nil {
		return &mutation{result: events.DeleteResult{Deleted: false}}, nil
	}
	if e := t.checkVersion(expect); e != nil {
		return nil, e
	}
	ev := &events.Event{Type: events.OpDeleted, Bucket: bucket, Key: key, Record: t.old}
	return n.applied(events.DeleteResult{Deleted: true}, ev)
}

// applied folds ev into the state and returns the mutation.
func (n *Node) applied(result any, ev *events.Event) (*mutation, *events.Error) {
	if err := n.state.Apply(ev); err != nil {
		return nil, events.Errorf(events.CodeInternal, "apply: %v", err)
	}
	return &mutation{result: result, events: []*events.Event{ev}}, nil
}

// undo reverts the events of m, newest first.
func (n *Node) undo(m *mutation) {
	for i := len(m.events) - 1; i >= 0; i-- {
		n.state.Revert(m.events[i])
	}
}

func version(r events.Record) int64 {
	v, _ := r[events.FieldVersion].(float64)
	return int64(v)
}
