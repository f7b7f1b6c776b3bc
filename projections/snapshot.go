package projections

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/snapcodec"
)

// View is a State as it was when Capture took it, for encoding while the
// State moves on. Indexes are not part of it: they are derived from the
// records; Encode writes each index's order (see index_order.go), which
// DecodeState fills the index from without sorting.
type View struct {
	LastSeq uint64
	buckets []bucketView
}

type bucketView struct {
	def     events.BucketDef
	records map[string]events.Record
	autoinc map[string]float64
	indexes map[string]*Index // read from a snapshot: its indexes in order
}

// Capture returns a view of s at its LastSeq. It copies the maps that
// hold the records, not the records: a stored record is never edited in
// place (an update stores a new one), so the view stays true while s
// changes. The copies are the cost of a capture, paid by s's owner.
func (s *State) Capture() *View {
	v := &View{LastSeq: s.LastSeq, buckets: make([]bucketView, 0, len(s.buckets))}
	for _, b := range s.Buckets() {
		v.buckets = append(v.buckets, bucketView{def: b.Def, records: maps.Clone(b.records), autoinc: maps.Clone(b.autoinc)})
	}
	return v
}

// Records is the number of records in the view.
func (v *View) Records() int {
	n := 0
	for _, b := range v.buckets {
		n += len(b.records)
	}
	return n
}

// Encode appends the view to w: per bucket its definition (JSON: it is
// small and its type grows), its autoincrement marks and its records.
func (v *View) Encode(w *snapcodec.Writer) error {
	w.Uvarint(v.LastSeq)
	w.Uvarint(uint64(len(v.buckets)))
	for _, b := range v.buckets {
		def, err := json.Marshal(b.def)
		if err != nil {
			return fmt.Errorf("projections: encode definition of %s: %w", b.def.Bucket, err)
		}
		w.Bytes(def)
		w.Uvarint(uint64(len(b.autoinc)))
		for f, n := range b.autoinc {
			w.String(f)
			if err := w.Value(n); err != nil {
				return err
			}
		}
		w.Uvarint(uint64(len(b.records)))
		keys := make([]string, 0, len(b.records))
		recs := make([]events.Record, 0, len(b.records))
		for k, r := range b.records {
			keys, recs = append(keys, k), append(recs, r)
			w.String(k)
			if err := w.Object(r); err != nil {
				return fmt.Errorf("projections: encode %s %s: %w", b.def.Bucket, k, err)
			}
		}
		if b.def.View == nil { // a view's indexes are rebuilt with its aggregates
			for _, f := range IndexedFields(b.def) {
				writeIndexOrder(w, f, keys, recs)
			}
		}
	}
	return nil
}

// DecodeState reads a State encoded by View.Encode and rebuilds what is
// derived from the records: indexes, age orders (ttl, maxSize) and views'
// aggregates.
func DecodeState(r *snapcodec.Reader) (*State, error) {
	s := NewState()
	s.LastSeq = r.Uvarint()
	nb := r.Count(3)
	var all []bucketView
	seen := map[string]bool{}
	for range nb {
		var def events.BucketDef
		if err := json.Unmarshal(r.Bytes(), &def); err != nil {
			return nil, fmt.Errorf("projections: decode definition: %w", err)
		}
		if !events.ValidBucketName(def.Bucket) || seen[def.Bucket] {
			return nil, fmt.Errorf("projections: decode definition: bucket %q invalid or repeated", def.Bucket)
		}
		seen[def.Bucket] = true
		b := bucketView{def: def}
		na := r.Count(10)
		b.autoinc = make(map[string]float64, na)
		for range na {
			f := r.String()
			b.autoinc[f], _ = r.Value().(float64)
		}
		nr := r.Count(3)
		b.records = make(map[string]events.Record, nr)
		keys, recs := make([]string, nr), make([]events.Record, nr)
		for i := range nr {
			keys[i], recs[i] = r.String(), r.Object()
			b.records[keys[i]] = recs[i]
		}
		if err := r.Err(); err != nil {
			return nil, fmt.Errorf("projections: decode bucket %s: %w", def.Bucket, err)
		}
		if len(b.records) != nr {
			return nil, fmt.Errorf("projections: decode bucket %s: a key repeated", def.Bucket)
		}
		if def.View == nil {
			b.indexes = map[string]*Index{}
			for _, f := range IndexedFields(def) {
				ix, err := readIndexOrder(r, f, keys, recs)
				if err != nil {
					return nil, fmt.Errorf("projections: decode bucket %s: %w", def.Bucket, err)
				}
				b.indexes[f] = ix
			}
		}
		all = append(all, b)
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("projections: decode state: %w", err)
	}
	// Sources first: a view is computed from its source when defined.
	slices.SortStableFunc(all, func(a, b bucketView) int {
		return cmp.Compare(btoi(a.def.View != nil), btoi(b.def.View != nil))
	})
	for _, d := range all {
		if d.def.View == nil {
			// define keeps the records of the bucket it replaces.
			s.buckets[d.def.Bucket] = &Bucket{Def: d.def, records: d.records, autoinc: d.autoinc}
			if _, err := s.define(d.def, d.indexes); err != nil {
				return nil, fmt.Errorf("projections: decode bucket %s: %w", d.def.Bucket, err)
			}
			continue
		}
		b, err := s.Define(d.def)
		if err != nil {
			return nil, fmt.Errorf("projections: decode view %s: %w", d.def.Bucket, err)
		}
		// The aggregates are recomputed and must be the snapshot's; the
		// records keep what replay gives them besides (versions, times).
		if err := checkRestoredView(b, d.records); err != nil {
			return nil, fmt.Errorf("projections: decode view %s: %w", d.def.Bucket, err)
		}
		maps.Copy(b.records, d.records)
		b.reindex(nil)
	}
	s.Settle()
	return s, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
