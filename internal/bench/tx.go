package bench

import (
	"context"

	"github.com/nats-io/nats.go"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/storeloop/storeloop/events"
)

// StoreTx commits one transaction of k inserts.
func (e *Env) StoreTx(k int) Op {
	ops := make([]events.TxOp, k)
	for i := range ops {
		ops[i] = events.TxOp{Op: events.CmdInsert, Bucket: "bench", Record: events.Record{"payload": string(payload[12:76]), "n": float64(i)}}
	}
	req := events.TxRequest{Ops: ops}
	return func(ctx context.Context) error {
		_, err := e.Client.Tx(ctx, req)
		return err
	}
}

// StoreSingles sends k inserts one after the other: what the transaction
// replaces.
func (e *Env) StoreSingles(k int) Op {
	insert := e.StoreInsert()
	return func(ctx context.Context) error {
		for range k {
			if err := insert(ctx); err != nil {
				return err
			}
		}
		return nil
	}
}

// RawAtomicBatch publishes k messages as one JetStream atomic batch.
func (e *Env) RawAtomicBatch(k int) Op {
	return func(ctx context.Context) error {
		msgs := make([]*nats.Msg, k)
		for i := range msgs {
			msgs[i] = &nats.Msg{Subject: "benchraw.batch", Data: payload, Header: nats.Header{}}
		}
		_, err := jetstreamext.PublishMsgBatch(ctx, e.JS, msgs)
		return err
	}
}
