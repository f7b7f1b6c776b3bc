package projections

import (
	"container/heap"
	"time"

	"github.com/storeloop/storeloop/events"
)

// ageQueue orders the records of a bucket by one of their timestamp fields
// (_createdAt for maxSize eviction, _updatedAt for TTL expiry), oldest
// first, ties by canonical key. It is a min-heap with lazy deletion: put
// pushes an entry, remove and overwrite leave the old one behind, and an
// entry counts only while the record under its key still carries its
// time. The order is a function of the records alone, so replay, a
// snapshot and the serving node agree on it.
type ageQueue struct {
	field   string
	entries ageHeap
}

type ageEntry struct {
	at int64 // unix ms, the record's field
	k  string
}

type ageHeap []ageEntry

func (h ageHeap) Len() int { return len(h) }
func (h ageHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return CompareKeys(h[i].k, h[j].k) < 0
}
func (h ageHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *ageHeap) Push(x any)   { *h = append(*h, x.(ageEntry)) }
func (h *ageHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func newAgeQueue(field string) *ageQueue { return &ageQueue{field: field} }

func recordTime(r events.Record, field string) int64 {
	v, _ := r[field].(float64)
	return int64(v)
}

// push adds the record stored under k; records is the bucket's map, so
// that stale entries can be compacted away before they outnumber it.
func (q *ageQueue) push(k string, r events.Record, records map[string]events.Record) {
	at := recordTime(r, q.field)
	if n := len(q.entries); n > 0 && n >= 2*len(records)+1024 {
		q.compact(records)
	}
	heap.Push(&q.entries, ageEntry{at: at, k: k})
}

// compact drops the entries no record stands behind any more.
func (q *ageQueue) compact(records map[string]events.Record) {
	live := q.entries[:0]
	for _, e := range q.entries {
		if q.live(e, records) {
			live = append(live, e)
		}
	}
	clear(q.entries[len(live):])
	q.entries = live
	heap.Init(&q.entries)
}

func (q *ageQueue) live(e ageEntry, records map[string]events.Record) bool {
	r, ok := records[e.k]
	return ok && recordTime(r, q.field) == e.at
}

// oldest returns the live entry first in order, dropping stale ones on
// the way, and whether there is one. It does not remove the entry.
func (q *ageQueue) oldest(records map[string]events.Record) (ageEntry, bool) {
	for len(q.entries) > 0 {
		e := q.entries[0]
		if q.live(e, records) {
			return e, true
		}
		heap.Pop(&q.entries)
	}
	return ageEntry{}, false
}

// Oldest returns the canonical key of the record a maxSize eviction takes
// next: the oldest _createdAt, ties by key. except is skipped (the record
// whose insert evicts). It reports false when the bucket has no maxSize
// or no other record.
func (b *Bucket) Oldest(except string) (string, bool) {
	if b.byCreated == nil {
		return "", false
	}
	e, ok := b.byCreated.oldest(b.records)
	if !ok {
		return "", false
	}
	if e.k != except {
		return e.k, true
	}
	// Rare: the new record ties for the oldest. Look past it without
	// losing its entry.
	heap.Pop(&b.byCreated.entries)
	k, ok := b.Oldest(except)
	heap.Push(&b.byCreated.entries, e)
	return k, ok
}

// TTL returns the bucket's time to live, 0 when its records do not expire.
func (b *Bucket) TTL() time.Duration { return b.ttl }

// NextExpiry returns the record of a TTL bucket that expires first, by
// _updatedAt + TTL (ties by key), with its expiry time, or false if none.
func (b *Bucket) NextExpiry() (k string, at time.Time, ok bool) {
	if b.byUpdated == nil {
		return "", time.Time{}, false
	}
	e, ok := b.byUpdated.oldest(b.records)
	if !ok {
		return "", time.Time{}, false
	}
	return e.k, time.UnixMilli(e.at).Add(b.ttl), true
}

// NextExpiry returns the bucket holding the record that expires first
// across the state, with its key and expiry time, or false if none does.
func (s *State) NextExpiry() (b *Bucket, k string, at time.Time, ok bool) {
	for _, tb := range s.expiring {
		if tk, tat, tok := tb.NextExpiry(); tok && (!ok || tat.Before(at)) {
			b, k, at, ok = tb, tk, tat, true
		}
	}
	return b, k, at, ok
}
