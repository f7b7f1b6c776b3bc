package storenode

import (
	"github.com/storeloop/storeloop/events"
)

// read executes a read command against the state, which reflects the
// stream up to sequence at.
func (n *Node) read(p *pending, at uint64) (any, *events.Error) {
	switch body := p.body.(type) {
	case *events.GetRequest:
		t, e := n.target(body.Bucket, body.Key)
		if e != nil {
			return nil, e
		}
		if t.old == nil {
			return nil, nil // JSON null: no such record
		}
		return t.old, nil
	case *events.QueryRequest:
		b, _, e := n.bucketFor(body.Bucket)
		if e != nil {
			return nil, e
		}
		s, e := n.checkScan(b, body.Where, false)
		if e != nil {
			return nil, e
		}
		recs, next, err := s.Query(body.Limit, body.After)
		if err != nil {
			return nil, asContractError(err)
		}
		return n.queryPage(b, recs, next, "")
	case *events.WatchRequest:
		return n.watchPage(body, at)
	case *events.CountRequest:
		b, _, e := n.bucketFor(body.Bucket)
		if e != nil {
			return nil, e
		}
		s, e := n.checkScan(b, body.Where, true)
		if e != nil {
			return nil, e
		}
		return s.Count(), nil
	case *events.AggregateRequest:
		b, _, e := n.bucketFor(body.Bucket)
		if e != nil {
			return nil, e
		}
		s, e := n.checkScan(b, body.Where, false)
		if e != nil {
			return nil, e
		}
		v, err := s.Aggregate(body.Fn, body.Field)
		if err != nil {
			return nil, asContractError(err)
		}
		return v, nil
	case *events.BucketsRequest:
		out := []events.BucketInfo{}
		for _, b := range n.state.Buckets() {
			out = append(out, events.BucketInfo{BucketDef: b.Def, Count: b.Len()})
		}
		return out, nil
	}
	return nil, events.Errorf(events.CodeInternal, "no reader for %s", p.cmd)
}
