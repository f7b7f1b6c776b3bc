package projections

import "github.com/storeloop/storeloop/events"

// Scan is a compiled filter's run over a bucket as it is now: the keys its
// indexes narrow it to (or every record), found once, so that a read that
// checks what it would cost (ScanCost) and then runs (Query, Count,
// Aggregate) compiles its filter and builds its candidates once. It is
// valid until the bucket changes.
type Scan struct {
	b       *Bucket
	f       *Filter
	keys    []string // the candidates, when indexed
	indexed bool
}

// Scan plans f's run over b.
func (b *Bucket) Scan(f *Filter) *Scan {
	keys, ok := b.candidates(f)
	return &Scan{b: b, f: f, keys: keys, indexed: ok}
}

// Cost is how many records the scan visits: its candidates, else every
// record; a count of everything visits none.
func (s *Scan) Cost(counting bool) int {
	switch {
	case counting && s.f.matchesAll():
		return 0
	case s.indexed:
		return len(s.keys)
	}
	return len(s.b.records)
}

// each calls fn for every record matching the filter, in no particular
// order: of the candidates when the filter pins an indexed field.
func (s *Scan) each(fn func(k string, r events.Record)) {
	if s.indexed {
		for _, k := range s.keys {
			if r, ok := s.b.records[k]; ok && s.f.Match(r) {
				fn(k, r)
			}
		}
		return
	}
	for k, r := range s.b.records {
		if s.f.Match(r) {
			fn(k, r)
		}
	}
}
