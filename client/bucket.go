package client

import (
	"context"

	"github.com/storeloop/storeloop/events"
)

// Bucket is a handle on one bucket of the store. It holds no state of its
// own: making one is free and the bucket need not exist yet.
type Bucket struct {
	c    *Client
	name string
}

// Bucket returns a handle on the bucket called name.
func (c *Client) Bucket(name string) *Bucket { return &Bucket{c: c, name: name} }

// Name returns the bucket's name.
func (b *Bucket) Name() string { return b.name }

// Insert stores a new record and returns it as stored: generated fields,
// defaults and the _version/_createdAt/_updatedAt meta fields filled in. A
// key that exists already is a conflict error.
func (b *Bucket) Insert(ctx context.Context, rec events.Record) (events.Record, error) {
	var out events.Record
	err := b.c.do(ctx, events.CmdInsert, b.name, events.InsertRequest{Bucket: b.name, Record: rec}, &out)
	return out, err
}

// Get returns the record under key, or nil and no error when there is none.
func (b *Bucket) Get(ctx context.Context, key any) (events.Record, error) {
	var out events.Record
	err := b.c.do(ctx, events.CmdGet, b.name, events.GetRequest{Bucket: b.name, Key: key}, &out)
	return out, err
}

// Update merges changes into the record under key (and applies any
// [Increment]) and returns the new record. A missing key is not_found.
func (b *Bucket) Update(ctx context.Context, key any, changes events.Record, opts ...UpdateOption) (events.Record, error) {
	var w writeOptions
	for _, o := range opts {
		o.applyUpdate(&w)
	}
	req := events.UpdateRequest{Bucket: b.name, Key: key, Changes: changes,
		Increment: w.increment, ExpectVersion: w.expectVersion}
	var out events.Record
	err := b.c.do(ctx, events.CmdUpdate, b.name, req, &out)
	return out, err
}

// Upsert inserts rec under key when absent, else merges rec into the record;
// [Increment] options apply in both cases, atomically. It returns the record.
func (b *Bucket) Upsert(ctx context.Context, key any, rec events.Record, opts ...UpsertOption) (events.Record, error) {
	var w writeOptions
	for _, o := range opts {
		o.applyUpsert(&w)
	}
	req := events.UpsertRequest{Bucket: b.name, Key: key, Record: rec, Increment: w.increment}
	var out events.Record
	err := b.c.do(ctx, events.CmdUpsert, b.name, req, &out)
	return out, err
}

// Delete removes the record under key and reports whether there was one.
func (b *Bucket) Delete(ctx context.Context, key any, opts ...DeleteOption) (bool, error) {
	var w writeOptions
	for _, o := range opts {
		o.applyDelete(&w)
	}
	var out events.DeleteResult
	err := b.c.do(ctx, events.CmdDelete, b.name,
		events.DeleteRequest{Bucket: b.name, Key: key, ExpectVersion: w.expectVersion}, &out)
	return out.Deleted, err
}

// Query returns one page of the records matching where (nil: all), in key
// order. Pass the page's NextCursor to [After] for the next page; it is
// empty on the last page.
func (b *Bucket) Query(ctx context.Context, where events.Where, opts ...QueryOption) (*events.QueryResult, error) {
	var q queryOptions
	for _, o := range opts {
		o(&q)
	}
	var out events.QueryResult
	err := b.c.do(ctx, events.CmdQuery, b.name,
		events.QueryRequest{Bucket: b.name, Where: where, Limit: q.limit, After: q.after}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Where returns every record matching where, reading all pages.
func (b *Bucket) Where(ctx context.Context, where events.Where) ([]events.Record, error) {
	var all []events.Record
	var cursor string
	for {
		page, err := b.Query(ctx, where, After(cursor))
		if err != nil {
			return nil, err
		}
		all = append(all, page.Records...)
		if page.NextCursor == "" || page.NextCursor == cursor {
			return all, nil
		}
		cursor = page.NextCursor
	}
}

// Count returns the number of records matching where (nil: all).
func (b *Bucket) Count(ctx context.Context, where events.Where) (int, error) {
	var n int
	err := b.c.do(ctx, events.CmdCount, b.name, events.CountRequest{Bucket: b.name, Where: where}, &n)
	return n, err
}

// Aggregate computes fn (sum, avg, min or max) of field over the records
// matching where. The result is a float64, or nil when no record has a
// number in field.
func (b *Bucket) Aggregate(ctx context.Context, fn, field string, where events.Where) (any, error) {
	var out *float64
	err := b.c.do(ctx, events.CmdAggregate, b.name,
		events.AggregateRequest{Bucket: b.name, Fn: fn, Field: field, Where: where}, &out)
	if err != nil || out == nil {
		return nil, err
	}
	return *out, nil
}

// Define creates a bucket, or does nothing when the same definition exists
// already; a different definition is bucket_exists.
func (c *Client) Define(ctx context.Context, def events.BucketDef) error {
	return c.do(ctx, events.CmdDefine, def.Bucket, def, nil)
}

// Buckets lists the store's buckets with their record counts.
func (c *Client) Buckets(ctx context.Context) ([]events.BucketInfo, error) {
	var out []events.BucketInfo
	err := c.do(ctx, events.CmdBuckets, "", events.BucketsRequest{}, &out)
	return out, err
}

// Tx sends a raw transaction: all operations apply, or none (then the error
// says which with its Op index). It returns one result per operation. See
// [Client.Transaction] for the read-then-write helper.
func (c *Client) Tx(ctx context.Context, req events.TxRequest) ([]any, error) {
	var out events.TxResult
	err := c.do(ctx, events.CmdTx, "", req, &out)
	return out.Results, err
}

// Status reports the store node's progress and health.
func (c *Client) Status(ctx context.Context) (events.StatusResult, error) {
	var out events.StatusResult
	err := c.do(ctx, events.CmdStatus, "", struct{}{}, &out)
	return out, err
}

// Snapshot makes the store node take a snapshot of its state now
// (store.snapshot; admin only where NATS enforces roles).
func (c *Client) Snapshot(ctx context.Context) (events.SnapshotInfo, error) {
	var out events.SnapshotInfo
	err := c.do(ctx, events.CmdSnapshot, "", struct{}{}, &out)
	return out, err
}

// Snapshots lists the stored snapshots, newest first, each checked by its
// header (store.snapshots; admin only where NATS enforces roles).
func (c *Client) Snapshots(ctx context.Context) ([]events.SnapshotInfo, error) {
	return c.snapshots(ctx, events.SnapshotsRequest{})
}

// VerifySnapshots lists the stored snapshots as Snapshots does, each read
// back whole by the store node and its checksum checked (Verified).
func (c *Client) VerifySnapshots(ctx context.Context) ([]events.SnapshotInfo, error) {
	return c.snapshots(ctx, events.SnapshotsRequest{Verify: true})
}

func (c *Client) snapshots(ctx context.Context, req events.SnapshotsRequest) ([]events.SnapshotInfo, error) {
	var out []events.SnapshotInfo
	err := c.do(ctx, events.CmdSnapshots, "", req, &out)
	return out, err
}
