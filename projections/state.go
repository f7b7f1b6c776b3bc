package projections

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/storeloop/storeloop/events"
)

// State is the fold of an event stream: every bucket with its records.
type State struct {
	buckets map[string]*Bucket
	// expiring lists the buckets with a TTL, in definition order.
	expiring []*Bucket
	journal  journal
	// LastSeq is the stream sequence of the last message applied.
	LastSeq uint64
}

// NewState returns an empty state.
func NewState() *State { return &State{buckets: map[string]*Bucket{}} }

// Bucket is one bucket's definition, records and indexes.
type Bucket struct {
	Def events.BucketDef
	// records by events.KeyString of their key.
	records map[string]events.Record
	// indexes by field: every field in Def.Indexes and every unique field.
	indexes map[string]*Index
	// autoinc is the highest value seen per autoincrement field; the next
	// generated value is autoinc[field]+1, so counters never go back, also
	// after deletes and restarts.
	autoinc map[string]float64
	// ttl, when not 0, expires records; byUpdated orders them for it.
	ttl       time.Duration
	byUpdated *ageQueue
	// byCreated orders records for maxSize eviction (nil without maxSize).
	byCreated *ageQueue
	// views maintained from this bucket's records; view is set on a view.
	views []*view
	view  *view
	// capture, while one copies the records, notes their changes.
	capture *bucketCapture
}

// Bucket returns the named bucket or nil.
func (s *State) Bucket(name string) *Bucket { return s.buckets[name] }

// Buckets returns the buckets sorted by name.
func (s *State) Buckets() []*Bucket {
	out := make([]*Bucket, 0, len(s.buckets))
	for _, b := range s.buckets {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Def.Bucket < out[j].Def.Bucket })
	return out
}

// Define adds a bucket. Redefining an existing bucket is the caller's
// concern (the store refuses a different definition); here the last
// definition wins and existing records are re-indexed. A view's source must
// be defined and its where must compile (the store checks both first); a
// view is computed from its source's records at once.
func (s *State) Define(def events.BucketDef) (*Bucket, error) { return s.define(def, nil) }

// define is Define with the indexes already built, by field (a snapshot's);
// the others are built from the records.
func (s *State) define(def events.BucketDef, built map[string]*Index) (*Bucket, error) {
	b := &Bucket{Def: def, records: map[string]events.Record{}, autoinc: map[string]float64{}}
	old := s.buckets[def.Bucket]
	if old != nil {
		b.records, b.autoinc, b.views, b.capture = old.records, old.autoinc, old.views, old.capture
	}
	if def.View != nil {
		src := s.buckets[def.View.From]
		if src == nil || src.IsView() {
			return nil, fmt.Errorf("view %q: source bucket %q is not a defined bucket", def.Bucket, def.View.From)
		}
		if old != nil {
			return nil, fmt.Errorf("view %q: already defined", def.Bucket)
		}
		v, err := newView(b, src, &s.journal)
		if err != nil {
			return nil, fmt.Errorf("view %q: %w", def.Bucket, err)
		}
		b.view = v
		src.views = append(src.views, v)
	}
	b.reindex(built)
	b.ttl, _ = time.ParseDuration(def.TTL) // the store refuses a bad one
	if b.ttl > 0 {
		b.byUpdated = newAgeQueue(events.FieldUpdatedAt)
	}
	if def.MaxSize > 0 {
		b.byCreated = newAgeQueue(events.FieldCreatedAt)
	}
	for k, r := range b.records {
		b.queue(k, r)
	}
	s.expiring = slices.DeleteFunc(s.expiring, func(x *Bucket) bool { return x.Def.Bucket == def.Bucket })
	if b.ttl > 0 {
		s.expiring = append(s.expiring, b)
	}
	if b.capture != nil {
		b.capture.live = b // the capture detaches the bucket in use
	}
	s.buckets[def.Bucket] = b
	return b, nil
}

// queue enters the record under k in the bucket's age orders.
func (b *Bucket) queue(k string, r events.Record) {
	if b.byUpdated != nil {
		b.byUpdated.push(k, r, b.records)
	}
	if b.byCreated != nil {
		b.byCreated.push(k, r, b.records)
	}
}

// reindex builds the indexes of b's definition from its records, but
// for those in built.
func (b *Bucket) reindex(built map[string]*Index) {
	b.indexes = map[string]*Index{}
	for _, f := range IndexedFields(b.Def) {
		if ix := built[f]; ix != nil {
			b.indexes[f] = ix
			continue
		}
		b.indexes[f] = newIndexOf(f, b.records)
	}
}

// IndexedFields returns the fields of def that get an index: those listed in
// Indexes and every unique field, sorted, without duplicates.
func IndexedFields(def events.BucketDef) []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range def.Indexes {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	for f, fd := range def.Schema {
		if fd.Unique && !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

// Message is one decoded stream message: an event (on bucket.<b>.<op>) or
// a bucket definition (on storeloop.schema.<b>); exactly one is set.
type Message struct {
	Event  *events.Event
	Schema *events.SchemaEvent
}

// DecodeMessage decodes a raw stream message by its subject.
func DecodeMessage(subject string, data []byte) (Message, error) {
	if strings.HasPrefix(subject, events.SchemaSubjectPrefix+".") {
		var se events.SchemaEvent
		if err := json.Unmarshal(data, &se); err != nil {
			return Message{}, fmt.Errorf("decode definition: %w", err)
		}
		return Message{Schema: &se}, nil
	}
	e, err := events.DecodeEvent(data)
	if err != nil {
		return Message{}, err
	}
	return Message{Event: e}, nil
}

// ApplyDecoded folds one stream message, decoded by DecodeMessage, at
// stream sequence seq.
func (s *State) ApplyDecoded(seq uint64, m Message) error {
	switch {
	case m.Schema != nil:
		if _, err := s.Define(m.Schema.Definition); err != nil {
			return fmt.Errorf("projections: seq %d: %w", seq, err)
		}
	case m.Event != nil:
		if err := s.Apply(m.Event); err != nil {
			return fmt.Errorf("projections: seq %d: %w", seq, err)
		}
	}
	s.Settle() // a replayed event is never reverted
	s.LastSeq = seq
	return nil
}

// Apply folds one event into its bucket.
func (s *State) Apply(e *events.Event) error {
	b := s.buckets[e.Bucket]
	if b == nil {
		return fmt.Errorf("event for undefined bucket %q", e.Bucket)
	}
	k, err := events.KeyString(e.Key)
	if err != nil {
		return err
	}
	s.journal.frames = append(s.journal.frames, len(s.journal.entries))
	switch e.Type {
	case events.OpInserted:
		b.put(k, e.Record)
	case events.OpUpdated:
		b.put(k, e.NewRecord)
	case events.OpDeleted:
		b.remove(k)
	}
	return nil
}

func (b *Bucket) put(k string, r events.Record) {
	old, had := b.records[k]
	if b.capture != nil {
		b.capture.noteChange(k, old, had)
	}
	if had {
		for f, ix := range b.indexes {
			ix.Remove(old[f], k)
		}
	}
	b.records[k] = r
	b.queue(k, r)
	for _, v := range b.views {
		v.change(k, old, r)
	}
	for f, ix := range b.indexes {
		ix.Add(r[f], k)
	}
	for f, fd := range b.Def.Schema {
		if fd.Generated == events.GenAutoincrement {
			if n, ok := r[f].(float64); ok && n > b.autoinc[f] {
				b.autoinc[f] = n
			}
		}
	}
}

func (b *Bucket) remove(k string) {
	old, ok := b.records[k]
	if !ok {
		return
	}
	if b.capture != nil {
		b.capture.noteChange(k, old, true)
	}
	for f, ix := range b.indexes {
		ix.Remove(old[f], k)
	}
	delete(b.records, k)
	for _, v := range b.views {
		v.change(k, old, nil)
	}
}

// Get returns the record stored under the canonical key k (see
// events.KeyString). The record must not be modified.
func (b *Bucket) Get(k string) (events.Record, bool) {
	r, ok := b.records[k]
	return r, ok
}

// Len returns the number of records.
func (b *Bucket) Len() int { return len(b.records) }

// NextAutoincrement returns the value the next insert generates for field.
func (b *Bucket) NextAutoincrement(field string) float64 { return b.autoinc[field] + 1 }

// Index returns the index on field, or nil.
func (b *Bucket) Index(field string) *Index { return b.indexes[field] }

// Revert undoes an event applied last to its bucket: the store node uses it
// to roll back the earlier operations of a transaction whose later operation
// failed validation. Autoincrement high-water marks are not lowered (a
// generated value is never reused).
func (s *State) Revert(e *events.Event) {
	b := s.buckets[e.Bucket]
	if b == nil {
		return
	}
	k, err := events.KeyString(e.Key)
	if err != nil {
		return
	}
	j := &s.journal
	j.reverting = true
	switch e.Type {
	case events.OpInserted:
		b.remove(k)
	case events.OpUpdated:
		b.put(k, e.OldRecord)
	case events.OpDeleted:
		b.put(k, e.Record)
	}
	j.reverting = false
	if n := len(j.frames); n > 0 {
		start := j.frames[n-1]
		for i := len(j.entries) - 1; i >= start; i-- {
			j.entries[i].restore()
		}
		clear(j.entries[start:])
		j.entries, j.frames = j.entries[:start], j.frames[:n-1]
	}
}

// Settle makes the events applied so far final: Revert can no longer undo
// them, and what it would have needed for views is dropped. The store node
// settles before each write it stages; replay after each event.
func (s *State) Settle() {
	clear(s.journal.entries)
	s.journal.entries, s.journal.frames = s.journal.entries[:0], s.journal.frames[:0]
}
