package storenode

import (
	"strconv"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/wirejson"
)

// watchPage answers store.watch: a query page of the state as it is at
// stream sequence at, with at in the result so that the watcher reads the
// bucket's events from at+1 on. A view is refused: its changes are made in
// the group commit of its source's writes and appended as no event of its
// own, so nothing in the stream would tell a watcher about them.
func (n *Node) watchPage(req *events.WatchRequest, at uint64) (any, *events.Error) {
	b, _, e := n.bucketFor(req.Bucket)
	if e != nil {
		return nil, e
	}
	if b.IsView() {
		return nil, events.Errorf(events.CodeBadRequest, "bucket %q is a view: its changes are not events in the stream, so it cannot be watched (watch its source %q)", req.Bucket, b.Def.View.From)
	}
	s, e := n.checkScan(b, req.Where, false)
	if e != nil {
		return nil, e
	}
	recs, next, err := s.Query(req.Limit, req.After)
	if err != nil {
		return nil, asContractError(err)
	}
	head := `"seq":` + strconv.FormatUint(at, 10) + `,"key":` + string(wirejson.AppendString(nil, b.Def.Key)) + `,`
	return n.queryPage(b, recs, next, head)
}

// stagedSeq is the stream sequence the state is at while f is being
// staged: last, the sequence before f, plus the messages of the writes
// staged so far (they apply to the state at once and are published at the
// sequences that follow).
func (f *flight) stagedSeq(last uint64) uint64 {
	for _, s := range f.writes {
		last += uint64(len(s.msgs))
	}
	return last
}
