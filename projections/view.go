package projections

import (
	"reflect"
	"sort"

	"github.com/storeloop/storeloop/events"
)

// A view is a bucket the state maintains from the records of its source
// bucket (events.ViewDef): one record per group-by value, folded in by the
// same put and remove that change the source, so a view is never behind
// its source and replay rebuilds it from the source's events alone. The
// view's records are not in the stream.
type view struct {
	def    events.ViewDef
	self   *Bucket
	filter *Filter
	// numeric lists the source fields some sum, avg, min or max reads;
	// lasts the fields last reads.
	numeric []string
	groups  map[string]*group // by events.KeyString of the group-by value
	journal *journal
}

// group is one group's members and running aggregates. Sums and counts
// follow every change; a min, max or last whose record leaves is
// recomputed from the members (stale), which is cheaper than keeping
// ordered multisets for the common case of removing a non-extreme.
type group struct {
	key     any
	members map[string]events.Record
	aggs    map[string]*agg
	last    string // the member written last: greatest (_updatedAt, key)
	lastAt  int64
	stale   bool // some min, max or last must be recomputed
}

// agg is the running aggregate of one numeric source field in a group.
type agg struct {
	sum      float64
	n        int // members holding a number there
	min, max float64
}

// journal lets State.Revert undo what a write did to views: the aggregates
// and view record of each group it touched, as they were before.
type journal struct {
	frames    []int
	entries   []undoEntry
	reverting bool
}

type undoEntry struct {
	v      *view
	gk     string
	aggs   map[string]agg // nil: the group did not exist
	last   string
	lastAt int64
	record events.Record // the view record before, nil if none
}

// ViewFieldTypes returns the schema type of each field a view's records
// carry, as the store declares them: the group-by field's type, number for
// count, sum, avg, min and max, the source field's type for last.
func ViewFieldTypes(def events.ViewDef, source events.BucketDef) map[string]string {
	out := map[string]string{def.GroupBy: source.Schema[def.GroupBy].Type}
	for name, f := range def.Fields {
		if f.Fn == events.ViewLast {
			out[name] = source.Schema[f.Field].Type
		} else {
			out[name] = events.TypeNumber
		}
	}
	return out
}

// newView builds the view self of source, folding in source's records.
func newView(self, source *Bucket, j *journal) (*view, error) {
	def := *self.Def.View
	f, err := CompileWhere(def.Where)
	if err != nil {
		return nil, err
	}
	v := &view{def: def, self: self, filter: f, groups: map[string]*group{}, journal: j}
	seen := map[string]bool{}
	for _, fd := range def.Fields {
		if fd.Fn != events.ViewCount && fd.Fn != events.ViewLast && !seen[fd.Field] {
			seen[fd.Field] = true
			v.numeric = append(v.numeric, fd.Field)
		}
	}
	sort.Strings(v.numeric)
	for _, k := range source.Keys() {
		v.change(k, nil, source.records[k])
	}
	return v, nil
}

// groupOf returns the canonical group key of a source record, or "" when
// it is in no group (absent, filtered out, or without a usable group-by value).
func (v *view) groupOf(r events.Record) (string, any) {
	if r == nil || !v.filter.Match(r) {
		return "", nil
	}
	val := r[v.def.GroupBy]
	gk, err := events.KeyString(val)
	if err != nil {
		return "", nil
	}
	return gk, val
}

// change folds the source record under k changing from old to cur (either
// nil: an insert or a delete) into the view. While the state reverts, only
// the members follow: Revert restores aggregates and records from the journal.
func (v *view) change(k string, old, cur events.Record) {
	ogk, _ := v.groupOf(old)
	ngk, nval := v.groupOf(cur)
	if ogk != "" {
		g := v.groups[ogk]
		v.save(ogk, g)
		g.remove(k, old, v, v.journal.reverting)
	}
	if ngk != "" {
		g := v.groups[ngk]
		if g == nil {
			g = &group{key: nval, members: map[string]events.Record{}, aggs: map[string]*agg{}}
			v.groups[ngk] = g
		}
		if ngk != ogk {
			v.save(ngk, g)
		}
		g.add(k, cur, v, v.journal.reverting)
	}
	if v.journal.reverting {
		return
	}
	if ogk != "" && ogk != ngk {
		v.refresh(ogk, 0)
	}
	if ngk != "" {
		v.refresh(ngk, recordTime(cur, events.FieldUpdatedAt))
	}
}

// save journals group gk as it is, before a change, unless reverting.
func (v *view) save(gk string, g *group) {
	j := v.journal
	if j.reverting || len(j.frames) == 0 {
		return
	}
	e := undoEntry{v: v, gk: gk}
	if g != nil && len(g.members) > 0 {
		e.aggs = make(map[string]agg, len(g.aggs))
		for f, a := range g.aggs {
			e.aggs[f] = *a
		}
		e.last, e.lastAt = g.last, g.lastAt
	}
	e.record, _ = v.self.records[gk]
	j.entries = append(j.entries, e)
}

// restore undoes one journal entry.
func (e undoEntry) restore() {
	g := e.v.groups[e.gk]
	if e.aggs == nil {
		if g != nil && len(g.members) == 0 {
			delete(e.v.groups, e.gk)
		}
	} else if g != nil {
		g.aggs = make(map[string]*agg, len(e.aggs))
		for f, a := range e.aggs {
			g.aggs[f] = &a
		}
		g.last, g.lastAt, g.stale = e.last, e.lastAt, false
	}
	if e.record == nil {
		e.v.self.remove(e.gk)
	} else {
		e.v.self.put(e.gk, e.record)
	}
}

func (g *group) add(k string, r events.Record, v *view, membersOnly bool) {
	g.members[k] = r
	if membersOnly {
		return
	}
	for _, f := range v.numeric {
		x, ok := r[f].(float64)
		if !ok {
			continue
		}
		a := g.aggs[f]
		if a == nil {
			a = &agg{}
			g.aggs[f] = a
		}
		a.sum += x
		a.n++
		if a.n == 1 || x < a.min {
			a.min = x
		}
		if a.n == 1 || x > a.max {
			a.max = x
		}
	}
	if at := recordTime(r, events.FieldUpdatedAt); g.last == "" || later(at, k, g.lastAt, g.last) {
		g.last, g.lastAt = k, at
	}
}

func (g *group) remove(k string, r events.Record, v *view, membersOnly bool) {
	delete(g.members, k)
	if membersOnly {
		return
	}
	for _, f := range v.numeric {
		x, ok := r[f].(float64)
		a := g.aggs[f]
		if !ok || a == nil {
			continue
		}
		a.sum -= x
		a.n--
		if a.n == 0 {
			delete(g.aggs, f)
		} else if x == a.min || x == a.max {
			g.stale = true
		}
	}
	if g.last == k {
		g.last, g.lastAt = "", 0
		g.stale = true
	}
}

// later reports whether (at, k) comes after (bat, bk): written later, ties by key.
func later(at int64, k string, bat int64, bk string) bool {
	if at != bat {
		return at > bat
	}
	return CompareKeys(k, bk) > 0
}

// recompute rebuilds the extremes and the last member from the members.
func (g *group) recompute() {
	for f, a := range g.aggs {
		first := true
		for _, r := range g.members {
			x, ok := r[f].(float64)
			if !ok {
				continue
			}
			if first || x < a.min {
				a.min = x
			}
			if first || x > a.max {
				a.max = x
			}
			first = false
		}
	}
	g.last, g.lastAt = "", 0
	for k, r := range g.members {
		if at := recordTime(r, events.FieldUpdatedAt); g.last == "" || later(at, k, g.lastAt, g.last) {
			g.last, g.lastAt = k, at
		}
	}
	g.stale = false
}

// refresh writes group gk's view record, or deletes it when the group has
// no members left. at is the _updatedAt of the source write that changed
// the group (0 for a delete, which keeps the view record's).
func (v *view) refresh(gk string, at int64) {
	g := v.groups[gk]
	prev := v.self.records[gk]
	if len(g.members) == 0 {
		delete(v.groups, gk)
		if prev != nil {
			v.self.remove(gk)
		}
		return
	}
	if g.stale {
		g.recompute()
	}
	rec := v.record(g)
	if prev != nil && sameFields(prev, rec) {
		return
	}
	created, updated := at, at
	if prev != nil {
		created = recordTime(prev, events.FieldCreatedAt)
		updated = max(recordTime(prev, events.FieldUpdatedAt), at)
	}
	rec[events.FieldVersion] = float64(version(prev) + 1)
	rec[events.FieldCreatedAt] = float64(created)
	rec[events.FieldUpdatedAt] = float64(updated)
	v.self.put(gk, rec)
}

// record is the view record of g without its meta fields. A field with no
// value (avg, min or max over no numbers, last of a missing field) is absent.
func (v *view) record(g *group) events.Record {
	rec := events.Record{v.def.GroupBy: g.key}
	for name, f := range v.def.Fields {
		a := g.aggs[f.Field]
		switch f.Fn {
		case events.ViewCount:
			rec[name] = float64(len(g.members))
		case events.ViewSum:
			if a != nil {
				rec[name] = a.sum
			} else {
				rec[name] = float64(0)
			}
		case events.ViewAvg:
			if a != nil {
				rec[name] = a.sum / float64(a.n)
			}
		case events.ViewMin:
			if a != nil {
				rec[name] = a.min
			}
		case events.ViewMax:
			if a != nil {
				rec[name] = a.max
			}
		case events.ViewLast:
			if x, ok := g.members[g.last][f.Field]; ok && x != nil {
				rec[name] = x
			}
		}
	}
	return rec
}

// sameFields reports whether the stored view record prev (with its three
// meta fields) holds exactly the fields of rec (without them).
func sameFields(prev, rec events.Record) bool {
	if len(prev) != len(rec)+3 {
		return false
	}
	for f, v := range rec {
		if pv, ok := prev[f]; !ok || !reflect.DeepEqual(pv, v) {
			return false
		}
	}
	return true
}

func version(r events.Record) int64 {
	x, _ := r[events.FieldVersion].(float64)
	return int64(x)
}

// IsView reports whether the bucket is a declared view (read-only).
func (b *Bucket) IsView() bool { return b.Def.View != nil }
