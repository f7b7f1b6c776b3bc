package storenode

import (
	"time"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/projections"
)

// issueRetention is the issue code of a bad ttl or maxSize.
const issueRetention = "retention"

// checkRetention validates the ttl and maxSize of a definition: ttl a Go
// duration of at least a millisecond (records carry millisecond times),
// maxSize positive.
func checkRetention(def events.BucketDef) *events.Error {
	var issues []events.Issue
	if def.TTL != "" {
		d, err := time.ParseDuration(def.TTL)
		switch {
		case err != nil:
			issues = append(issues, events.Issue{Field: "ttl", Code: issueRetention, Message: "ttl must be a Go duration such as 30s, 30m or 24h: " + err.Error()})
		case d < time.Millisecond:
			issues = append(issues, events.Issue{Field: "ttl", Code: issueRetention, Message: "ttl must be at least 1ms"})
		}
	}
	if def.MaxSize < 0 {
		issues = append(issues, events.Issue{Field: "maxSize", Code: issueRetention, Message: "maxSize must be a positive number of records"})
	}
	if issues != nil {
		return &events.Error{Code: events.CodeValidation, Message: "invalid bucket definition", Issues: issues}
	}
	return nil
}

// evict makes room after an insert into a bucket with maxSize: it deletes
// the oldest records (by _createdAt, ties by key; never the one just
// inserted, under k) until the bucket is back at its cap. The deleted
// events, meta.reason "maxSize", go with the insert's in one append, so
// the insert is answered only once the evictions are durable.
func (n *Node) evict(b *projections.Bucket, k string) ([]*events.Event, *events.Error) {
	var out []*events.Event
	for b.Def.MaxSize > 0 && b.Len() > b.Def.MaxSize {
		old, ok := b.Oldest(k)
		if !ok {
			break
		}
		ev, e := n.deletedBy(b, old, events.ReasonMaxSize)
		if e != nil {
			return out, e
		}
		out = append(out, ev)
	}
	return out, nil
}

// deletedBy deletes the record under the canonical key k for a reason of
// the store's own (ttl, maxSize) and returns the applied event.
func (n *Node) deletedBy(b *projections.Bucket, k, reason string) (*events.Event, *events.Error) {
	rec, _ := b.Get(k)
	key, err := events.ParseKeyString(k)
	if err != nil {
		return nil, events.Errorf(events.CodeInternal, "%v", err)
	}
	ev := &events.Event{Type: events.OpDeleted, Bucket: b.Def.Bucket, Key: key, Record: rec, Meta: events.Meta{Reason: reason}}
	if err := n.state.Apply(ev); err != nil {
		return nil, events.Errorf(events.CodeInternal, "apply: %v", err)
	}
	return ev, nil
}
