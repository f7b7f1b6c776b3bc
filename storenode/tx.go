package storenode

import (
	"fmt"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/projections"
)

// maxTxOps caps a transaction so that its events fit in one JetStream atomic
// batch (1000 messages) with room to spare.
const maxTxOps = 500

// tx applies every op of req, all or nothing: the reads are checked first,
// then each op is validated and applied in order (later ops see earlier
// ones); if any fails, the applied ones are reverted and nothing is appended.
func (n *Node) tx(req *events.TxRequest) (*mutation, *events.Error) {
	if len(req.Ops) == 0 {
		return nil, events.Errorf(events.CodeBadRequest, "tx needs at least one op")
	}
	if len(req.Ops) > maxTxOps {
		return nil, events.Errorf(events.CodeTooLarge, "tx has %d ops, the cap is %d", len(req.Ops), maxTxOps)
	}
	if e := checkTxCaps(req); e != nil {
		return nil, e
	}
	if e := n.checkReads(req); e != nil {
		return nil, e
	}
	all := &mutation{}
	results := make([]any, 0, len(req.Ops))
	layout := make([]any, 0, len(req.Ops))
	silent := false
	for i, op := range req.Ops {
		m, e := n.txOp(op)
		if e != nil {
			n.undo(all)
			return nil, opError(i, op.Op, e)
		}
		all.events = append(all.events, m.events...)
		results = append(results, m.result)
		switch {
		case len(m.events) > 0:
			layout = append(layout, txLayoutEvent)
		case op.Op == events.CmdDelete:
			layout, silent = append(layout, txLayoutNotDeleted), true
		default: // a no-op update or upsert: its result is the record then
			layout, silent = append(layout, []any{op.Bucket, op.Key}), true
		}
	}
	all.result = events.TxResult{Results: results}
	if silent {
		all.layout = layout
	}
	return all, nil
}

func (n *Node) txOp(op events.TxOp) (*mutation, *events.Error) {
	switch op.Op {
	case events.CmdInsert:
		return n.insert(op.Bucket, op.Record)
	case events.CmdUpdate:
		return n.update(op.Bucket, op.Key, op.Changes, op.Increment, op.ExpectVersion)
	case events.CmdUpsert:
		return n.upsert(op.Bucket, op.Key, op.Record, op.Increment)
	case events.CmdDelete:
		return n.delete(op.Bucket, op.Key, op.ExpectVersion)
	}
	return nil, events.Errorf(events.CodeBadRequest, "unknown op %q (want insert, update, upsert or delete)", op.Op)
}

// opError names the failing op's index in a transaction error.
func opError(i int, op string, e *events.Error) *events.Error {
	out := *e
	out.Op = &i
	out.Message = fmt.Sprintf("op %d (%s): %s", i, op, e.Message)
	return &out
}

// checkReads fails with conflict when a version the caller read, or the
// result set of a query it ran, is no longer current.
func (n *Node) checkReads(req *events.TxRequest) *events.Error {
	for _, r := range req.Reads {
		t, e := n.target(r.Bucket, r.Key)
		if e != nil {
			return e
		}
		if cur := version(t.old); cur != r.Version {
			return events.Errorf(events.CodeConflict, "read of %s %v at version %d is stale: now %d", r.Bucket, r.Key, r.Version, cur)
		}
	}
	// Every query is compiled and costed before any runs: past the scan cap
	// the whole tx is refused at once, not slowly answered.
	filters := make([]*projections.Filter, len(req.QueryReads))
	cost := 0
	for i, q := range req.QueryReads {
		b, _, e := n.bucketFor(q.Bucket)
		if e != nil {
			return e
		}
		f, err := projections.CompileWhere(q.Where)
		if err != nil {
			return asContractError(err)
		}
		filters[i] = f
		cost += b.ScanCost(f, false)
		if e := n.scanBudget(cost, q.Bucket); e != nil {
			return e
		}
	}
	for i, q := range req.QueryReads {
		b, _, _ := n.bucketFor(q.Bucket)
		f := filters[i]
		seen := make(map[string]int64, len(q.Records))
		for _, r := range q.Records {
			k, e := keyFor(b, r.Key)
			if e != nil {
				return e
			}
			seen[k] = r.Version
		}
		now := b.MatchKeys(f)
		if len(now) != len(seen) {
			return events.Errorf(events.CodeConflict, "query on %s matched %d records, now %d", q.Bucket, len(seen), len(now))
		}
		for _, k := range now {
			r, _ := b.Get(k)
			if v, ok := seen[k]; !ok || v != version(r) {
				return events.Errorf(events.CodeConflict, "query on %s: its result set changed", q.Bucket)
			}
		}
	}
	return nil
}
