package client

// UpdateOption modifies an update ([Bucket.Update]).
type UpdateOption interface{ applyUpdate(*writeOptions) }

// UpsertOption modifies an upsert ([Bucket.Upsert]).
type UpsertOption interface{ applyUpsert(*writeOptions) }

// DeleteOption modifies a delete ([Bucket.Delete]).
type DeleteOption interface{ applyDelete(*writeOptions) }

// QueryOption modifies a query ([Bucket.Query]).
type QueryOption func(*queryOptions)

type writeOptions struct {
	increment     map[string]float64
	expectVersion *int64
}

type queryOptions struct {
	limit int
	after string
}

// IncrementOption adds numbers to fields atomically in the store; a missing
// field counts as 0 (or its default on an upsert's insert).
type IncrementOption map[string]float64

// Increment returns an option that adds by to fields, atomically in the store.
// Several Increment options add up.
func Increment(by map[string]float64) IncrementOption { return IncrementOption(by) }

func (o IncrementOption) applyUpdate(w *writeOptions) { o.apply(w) }
func (o IncrementOption) applyUpsert(w *writeOptions) { o.apply(w) }
func (o IncrementOption) apply(w *writeOptions) {
	if w.increment == nil {
		w.increment = make(map[string]float64, len(o))
	}
	for k, v := range o {
		w.increment[k] += v
	}
}

// ExpectVersionOption makes the write fail with conflict unless the record's
// _version is still the given one.
type ExpectVersionOption int64

// ExpectVersion returns an optimistic-concurrency option for update and delete.
func ExpectVersion(v int64) ExpectVersionOption { return ExpectVersionOption(v) }

func (o ExpectVersionOption) applyUpdate(w *writeOptions) { v := int64(o); w.expectVersion = &v }
func (o ExpectVersionOption) applyDelete(w *writeOptions) { v := int64(o); w.expectVersion = &v }

// Limit caps the number of records in one page (the store has a default).
func Limit(n int) QueryOption { return func(q *queryOptions) { q.limit = n } }

// After continues a query from a previous page's NextCursor.
func After(cursor string) QueryOption { return func(q *queryOptions) { q.after = cursor } }
