package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/nats-io/nuid"

	"github.com/storeloop/storeloop/events"
)

// DefaultTxAttempts is how many times [Client.Transaction] runs its function
// when the commit keeps meeting conflicts.
const DefaultTxAttempts = 5

// TransactionOption configures [Client.Transaction].
type TransactionOption func(*txOptions)

type txOptions struct{ attempts int }

// MaxAttempts bounds how many times the transaction function runs (default
// [DefaultTxAttempts]); n < 1 means 1.
func MaxAttempts(n int) TransactionOption {
	return func(o *txOptions) { o.attempts = max(n, 1) }
}

// Transaction runs fn and commits what it did as one store.tx: all its
// writes apply, or none. Reads inside fn go to the store and are recorded
// with the versions they saw; the commit fails with conflict if any of them
// changed meanwhile, and then fn runs again on fresh reads (bounded by
// [MaxAttempts], with jittered backoff). An error from fn, or any other
// commit error, is returned at once, and nothing is written. The result is
// one entry per write, as [Client.Tx] returns.
//
// The commit carries a command id (from [WithCommandID], else a fresh one;
// suffixed /n for the n-th rerun), so a whole Transaction call repeated with
// the same id, say by a redelivered rule event, applies once.
func (c *Client) Transaction(ctx context.Context, fn func(tx *Tx) error, opts ...TransactionOption) ([]any, error) {
	o := txOptions{attempts: DefaultTxAttempts}
	for _, opt := range opts {
		opt(&o)
	}
	baseID, ok := CommandIDFrom(ctx)
	if !ok {
		baseID = nuid.Next()
	}
	var err error
	for attempt := 0; attempt < o.attempts; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(backoff(attempt - 1))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
			case <-t.C:
			}
		}
		tx := &Tx{c: c, seen: map[string]events.Record{}}
		if err = fn(tx); err != nil {
			return nil, err
		}
		if len(tx.ops) == 0 {
			return nil, nil
		}
		id := baseID
		if attempt > 0 {
			id = fmt.Sprintf("%s/%d", baseID, attempt)
		}
		var results []any
		results, err = c.Tx(WithCommandID(ctx, id), events.TxRequest{Ops: tx.ops, Reads: tx.reads, QueryReads: tx.queries})
		if !errors.Is(err, events.ErrConflict) {
			return results, err
		}
		c.log.DebugContext(ctx, "storeloop client: transaction conflict, running it again", "attempt", attempt+1, "err", err)
	}
	return nil, err
}

// Tx is one run of a transaction function: it reads through to the store
// and buffers writes until the commit. It is not safe for concurrent use.
type Tx struct {
	c       *Client
	ops     []events.TxOp
	reads   []events.TxRead
	queries []events.TxQueryRead
	seen    map[string]events.Record // record as read from the store, by readID
}

// TxBucket is a bucket seen through a transaction.
type TxBucket struct {
	tx   *Tx
	name string
}

// Bucket returns the bucket called name within the transaction.
func (tx *Tx) Bucket(name string) *TxBucket { return &TxBucket{tx: tx, name: name} }

// Insert buffers an insert.
func (b *TxBucket) Insert(rec events.Record) {
	b.tx.ops = append(b.tx.ops, events.TxOp{Op: events.CmdInsert, Bucket: b.name, Record: rec})
}

// Update buffers an update (see [Bucket.Update]).
func (b *TxBucket) Update(key any, changes events.Record, opts ...UpdateOption) {
	var w writeOptions
	for _, o := range opts {
		o.applyUpdate(&w)
	}
	b.tx.ops = append(b.tx.ops, events.TxOp{Op: events.CmdUpdate, Bucket: b.name, Key: key,
		Changes: changes, Increment: w.increment, ExpectVersion: w.expectVersion})
}

// Upsert buffers an upsert (see [Bucket.Upsert]).
func (b *TxBucket) Upsert(key any, rec events.Record, opts ...UpsertOption) {
	var w writeOptions
	for _, o := range opts {
		o.applyUpsert(&w)
	}
	b.tx.ops = append(b.tx.ops, events.TxOp{Op: events.CmdUpsert, Bucket: b.name, Key: key,
		Record: rec, Increment: w.increment})
}

// Delete buffers a delete (see [Bucket.Delete]).
func (b *TxBucket) Delete(key any, opts ...DeleteOption) {
	var w writeOptions
	for _, o := range opts {
		o.applyDelete(&w)
	}
	b.tx.ops = append(b.tx.ops, events.TxOp{Op: events.CmdDelete, Bucket: b.name, Key: key,
		ExpectVersion: w.expectVersion})
}

// Get returns the record under key as the transaction sees it: the store's
// record (read once per transaction, and recorded with its version, 0 when
// missing) with the transaction's own buffered writes to that key applied.
// The local view applies changes, increments and _version; schema defaults
// and generated fields appear only after the commit.
func (b *TxBucket) Get(ctx context.Context, key any) (events.Record, error) {
	ks, err := events.KeyString(key)
	if err != nil {
		return nil, events.Errorf(events.CodeBadRequest, "%v", err)
	}
	id := readID(b.name, ks)
	base, ok := b.tx.seen[id]
	if !ok {
		if base, err = b.tx.c.Bucket(b.name).Get(ctx, key); err != nil {
			return nil, err
		}
		b.tx.seen[id] = base
		b.tx.reads = append(b.tx.reads, events.TxRead{Bucket: b.name, Key: key, Version: version(base)})
	}
	return b.overlay(ctx, key, ks, base)
}

// Where returns every record matching where, as [Bucket.Where], and records
// the keys and versions of the result: a record added to, removed from or
// changed in that result before the commit is a conflict. The transaction's
// own updates and deletes of the returned records are applied; records it
// inserted or changed to match are not added.
func (b *TxBucket) Where(ctx context.Context, where events.Where) ([]events.Record, error) {
	recs, err := b.tx.c.Bucket(b.name).Where(ctx, where)
	if err != nil {
		return nil, err
	}
	keyField, err := b.tx.c.keyField(ctx, b.name)
	if err != nil {
		return nil, err
	}
	qr := events.TxQueryRead{Bucket: b.name, Where: where, Records: make([]events.TxRead, 0, len(recs))}
	out := make([]events.Record, 0, len(recs))
	for _, r := range recs {
		key := r[keyField]
		ks, err := events.KeyString(key)
		if err != nil {
			return nil, events.Errorf(events.CodeInternal, "record without a valid key %q: %v", keyField, err)
		}
		qr.Records = append(qr.Records, events.TxRead{Bucket: b.name, Key: key, Version: version(r)})
		if _, ok := b.tx.seen[readID(b.name, ks)]; !ok {
			b.tx.seen[readID(b.name, ks)] = r
		}
		v, err := b.overlay(ctx, key, ks, r)
		if err != nil {
			return nil, err
		}
		if v != nil {
			out = append(out, v)
		}
	}
	b.tx.queries = append(b.tx.queries, qr)
	return out, nil
}

// overlay applies the transaction's buffered writes to key over base and
// returns a copy the caller may change.
func (b *TxBucket) overlay(ctx context.Context, key any, ks string, base events.Record) (events.Record, error) {
	rec := maps.Clone(base)
	var keyField string
	for _, op := range b.tx.ops {
		if op.Bucket != b.name {
			continue
		}
		if keyField == "" {
			var err error
			if keyField, err = b.tx.c.keyField(ctx, b.name); err != nil {
				return nil, err
			}
		}
		opKey := op.Key
		if op.Op == events.CmdInsert {
			opKey = op.Record[keyField]
		}
		if k, err := events.KeyString(opKey); err != nil || k != ks {
			continue
		}
		rec = applyOp(rec, op, keyField, key)
	}
	return rec, nil
}

// applyOp is the local approximation of what the store does to rec.
func applyOp(rec events.Record, op events.TxOp, keyField string, key any) events.Record {
	switch op.Op {
	case events.CmdDelete:
		return nil
	case events.CmdInsert:
		rec = maps.Clone(op.Record)
		rec[events.FieldVersion] = 1.0
		return rec
	case events.CmdUpdate:
		if rec == nil {
			return nil // the store will answer not_found
		}
		maps.Copy(rec, op.Changes)
	case events.CmdUpsert:
		if rec == nil {
			rec = maps.Clone(op.Record)
			if rec == nil {
				rec = events.Record{}
			}
			rec[keyField] = key
		} else {
			maps.Copy(rec, op.Record)
		}
	}
	for f, by := range op.Increment {
		rec[f] = number(rec[f]) + by
	}
	rec[events.FieldVersion] = float64(version(rec) + 1)
	return rec
}

func readID(bucket, ks string) string { return bucket + "\x00" + ks }

// version returns a record's _version, 0 for a missing record.
func version(r events.Record) int64 { return int64(number(r[events.FieldVersion])) }

func number(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case int:
		return float64(n)
	case int64:
		return float64(n)
	case json.Number:
		f, _ := n.Float64()
		return f
	}
	return 0
}

// keyField returns the key field of bucket. Definitions never change once
// made, so they are cached for the client's life.
func (c *Client) keyField(ctx context.Context, bucket string) (string, error) {
	if k, ok := c.keyFields.Load(bucket); ok {
		return k.(string), nil
	}
	list, err := c.Buckets(ctx)
	if err != nil {
		return "", err
	}
	for _, b := range list {
		c.keyFields.Store(b.Bucket, b.Key)
	}
	if k, ok := c.keyFields.Load(bucket); ok {
		return k.(string), nil
	}
	return "", events.Errorf(events.CodeBucketNotFound, "bucket %q is not defined", bucket)
}
