package projections

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/storeloop/storeloop/events"
)

// State is the fold of an event stream: every bucket with its records.
type State struct {
	buckets map[string]*Bucket
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
// definition wins and existing records are re-indexed.
func (s *State) Define(def events.BucketDef) *Bucket {
	b := &Bucket{Def: def, records: map[string]events.Record{}, autoinc: map[string]float64{}}
	if old := s.buckets[def.Bucket]; old != nil {
		b.records, b.autoinc = old.records, old.autoinc
	}
	b.reindex()
	s.buckets[def.Bucket] = b
	return b
}

// reindex builds the indexes of b's definition from its records.
func (b *Bucket) reindex() {
	b.indexes = map[string]*Index{}
	for _, f := range IndexedFields(b.Def) {
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
	if e, ok := decodeEvent(data); ok && e.Type.Valid() && events.ValidBucketName(e.Bucket) {
		return Message{Event: e}, nil
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
		s.Define(m.Schema.Definition)
	case m.Event != nil:
		if err := s.Apply(m.Event); err != nil {
			return fmt.Errorf("projections: seq %d: %w", seq, err)
		}
	}
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
	if old, ok := b.records[k]; ok {
		for f, ix := range b.indexes {
			ix.Remove(old[f], k)
		}
	}
	b.records[k] = r
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
	for f, ix := range b.indexes {
		ix.Remove(old[f], k)
	}
	delete(b.records, k)
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
	switch e.Type {
	case events.OpInserted:
		b.remove(k)
	case events.OpUpdated:
		b.put(k, e.OldRecord)
	case events.OpDeleted:
		b.put(k, e.Record)
	}
}
