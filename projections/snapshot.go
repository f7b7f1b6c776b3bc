package projections

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/snapcodec"
)

// View is a State as it was when a Capture took it, for encoding while
// the State moves on. Indexes are not part of it: they are derived from
// the records; Encode writes each index's order (see index_order.go),
// which DecodeState fills the index from without sorting.
type View struct {
	LastSeq uint64
	buckets []bucketView
}

// bucketView is a bucket's part of a View: keys[i] is recs[i]'s key. A
// stored record is never edited in place (an update stores a new one),
// so the records need no copy.
type bucketView struct {
	def     events.BucketDef
	keys    []string
	recs    []events.Record
	autoinc map[string]float64
}

// Records is the number of records in the view.
func (v *View) Records() int {
	n := 0
	for _, b := range v.buckets {
		n += len(b.keys)
	}
	return n
}

// sectionRecords is how many records a section of a bucket's encoding
// holds: sections are length-prefixed, so that DecodeState decodes them
// on every core; small enough to share out evenly, large enough that
// their headers cost nothing.
const sectionRecords = 8192

// Encode appends the view to w: per bucket its definition (JSON: it is
// small and its type grows), its autoincrement marks, its records in
// sections of sectionRecords and its indexes' orders, each
// length-prefixed.
func (v *View) Encode(w *snapcodec.Writer) error {
	w.Uvarint(v.LastSeq)
	w.Uvarint(uint64(len(v.buckets)))
	var part snapcodec.Writer
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
		w.Uvarint(uint64(len(b.keys)))
		for i := 0; i < len(b.keys); i += sectionRecords {
			part.Buf = part.Buf[:0]
			for j := i; j < min(i+sectionRecords, len(b.keys)); j++ {
				part.String(b.keys[j])
				if err := part.Object(b.recs[j]); err != nil {
					return fmt.Errorf("projections: encode %s %s: %w", b.def.Bucket, b.keys[j], err)
				}
			}
			w.Bytes(part.Buf)
		}
		if b.def.View == nil { // a view's indexes are rebuilt with its aggregates
			for _, f := range IndexedFields(b.def) {
				part.Buf = part.Buf[:0]
				writeIndexOrder(&part, f, b.keys, b.recs)
				w.Bytes(part.Buf)
			}
		}
	}
	return nil
}

// decodedBucket is a bucket as DecodeState reads it.
type decodedBucket struct {
	def     events.BucketDef
	records map[string]events.Record
	autoinc map[string]float64
	indexes map[string]*Index
}

// DecodeState reads a State encoded by View.Encode and rebuilds what is
// derived from the records: indexes, age orders (ttl, maxSize) and views'
// aggregates. A bucket's record sections are decoded on every core, then
// its records map and each of its indexes filled side by side.
func DecodeState(r *snapcodec.Reader) (*State, error) {
	s := NewState()
	s.LastSeq = r.Uvarint()
	nb := r.Count(3)
	var all []decodedBucket
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
		na := r.Count(10)
		autoinc := make(map[string]float64, na)
		for range na {
			f := r.String()
			autoinc[f], _ = r.Value().(float64)
		}
		nr := r.Count(3)
		sections := make([][]byte, (nr+sectionRecords-1)/sectionRecords)
		for i := range sections {
			sections[i] = r.Slice()
		}
		var fields []string
		var orders [][]byte
		if def.View == nil {
			fields = IndexedFields(def)
			for range fields {
				orders = append(orders, r.Slice())
			}
		}
		if err := r.Err(); err != nil {
			return nil, fmt.Errorf("projections: decode bucket %s: %w", def.Bucket, err)
		}
		b, err := decodeBucket(nr, sections, fields, orders)
		if err != nil {
			return nil, fmt.Errorf("projections: decode bucket %s: %w", def.Bucket, err)
		}
		b.def, b.autoinc = def, autoinc
		all = append(all, b)
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("projections: decode state: %w", err)
	}
	// Sources first: a view is computed from its source when defined.
	slices.SortStableFunc(all, func(a, b decodedBucket) int {
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

// decodeBucket decodes nr records from their sections and fills the
// records map and the indexes on fields from their orders.
func decodeBucket(nr int, sections [][]byte, fields []string, orders [][]byte) (decodedBucket, error) {
	keys, recs := make([]string, nr), make([]events.Record, nr)
	if err := decodeSections(sections, keys, recs); err != nil {
		return decodedBucket{}, err
	}
	indexes := make([]*Index, len(fields))
	errs := make([]error, len(fields)+1)
	var wg sync.WaitGroup
	for i, f := range fields {
		wg.Go(func() { indexes[i], errs[i] = readIndexOrder(snapcodec.NewReader(orders[i]), f, keys, recs) })
	}
	b := decodedBucket{records: make(map[string]events.Record, nr), indexes: make(map[string]*Index, len(fields))}
	for i, k := range keys {
		b.records[k] = recs[i]
	}
	if len(b.records) != nr {
		errs[len(fields)] = errors.New("a key repeated")
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return decodedBucket{}, err
	}
	for i, f := range fields {
		b.indexes[f] = indexes[i]
	}
	return b, nil
}

// decodeSections decodes the record sections into keys and recs (section
// i holds records i*sectionRecords on), one goroutine per core taking the
// next section left.
func decodeSections(sections [][]byte, keys []string, recs []events.Record) error {
	workers := min(runtime.GOMAXPROCS(0), len(sections))
	errs := make([]error, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := snapcodec.NewReader(nil)
			for i := int(next.Add(1) - 1); i < len(sections); i = int(next.Add(1) - 1) {
				r.Reset(sections[i])
				for j := i * sectionRecords; j < min((i+1)*sectionRecords, len(keys)); j++ {
					keys[j], recs[j] = r.String(), r.Object()
				}
				if r.Err() != nil || r.Len() != 0 {
					errs[w] = fmt.Errorf("record section %d: %w", i, cmp.Or(r.Err(), snapcodec.ErrCorrupt))
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
