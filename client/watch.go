package client

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/provenance"
	"github.com/storeloop/storeloop/internal/streamread"
	"github.com/storeloop/storeloop/projections"
)

// WatchOption configures [Client.Watch].
type WatchOption func(*watchConfig)

type watchConfig struct {
	fromSeq  uint64
	resume   bool
	pageSize int
}

// WatchFromSeq resumes a watch after a disconnect: no snapshot and no ready
// line, only the changes made by the bucket's events after stream sequence
// seq (the Seq of the last change seen, or of the ready line).
func WatchFromSeq(seq uint64) WatchOption {
	return func(c *watchConfig) { c.fromSeq, c.resume = seq, true }
}

// WatchPageSize sets how many records each store.watch request asks for
// while the snapshot is read (default projections.DefaultQueryLimit; the
// store cuts a page further to fit its max payload).
func WatchPageSize(n int) WatchOption {
	return func(c *watchConfig) { c.pageSize = n }
}

// QueryWatch is a reactive query: the records of a bucket matching a where
// (snapshot lines, then one ready line), then every change to that set, in
// stream order. It is not safe for concurrent use; call [QueryWatch.Stop]
// when done.
type QueryWatch struct {
	filter *projections.Filter
	prov   *provenance.Checker
	queue  []events.WatchChange // snapshot and ready lines not yet returned
	msgs   jetstream.MessagesContext
}

// Watch starts a reactive query on bucket (see docs/protocol.md, "Reactive
// queries"). The snapshot is read from the store in pages (store.watch);
// each page is consistent at a stream sequence, and the events of the
// bucket between the first page's sequence and the stream's last one are
// folded into them, so the snapshot is the result set at that last
// sequence S. The changes are the bucket's events after S, read from the
// stream by an ordered consumer and matched with the store's own where
// compiler: every event after S appears once, none is skipped or
// coalesced. A bad where is bad_request before anything is read; a view is
// bad_request too (its changes are not events).
func (c *Client) Watch(ctx context.Context, bucket string, where events.Where, opts ...WatchOption) (*QueryWatch, error) {
	var cfg watchConfig
	for _, o := range opts {
		o(&cfg)
	}
	if !events.ValidBucketName(bucket) {
		return nil, events.Errorf(events.CodeBadRequest, "bucket name %q is not a valid subject token (letters, digits, _ and -)", bucket)
	}
	filter, err := projections.CompileWhere(where)
	if err != nil {
		return nil, err
	}
	s, err := c.js.Stream(ctx, c.opts.stream)
	if err != nil {
		return nil, c.streamError("watch "+bucket, err)
	}
	w := &QueryWatch{filter: filter}
	if w.prov, err = provenance.New(c.js, c.opts.stream, s.CachedInfo()); err != nil {
		return nil, fmt.Errorf("client: watch %s: %w", bucket, err)
	}
	after := cfg.fromSeq
	if cfg.resume {
		err = c.checkResume(ctx, bucket, after, s.CachedInfo().State)
	} else {
		after, err = w.snapshot(ctx, c, bucket, where, cfg.pageSize)
	}
	if err != nil {
		return nil, err
	}
	cons, err := c.js.OrderedConsumer(ctx, c.opts.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.EventSubjectPrefix + "." + bucket + ".>"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    after + 1,
	})
	if err == nil {
		w.msgs, err = cons.Messages()
	}
	if err != nil {
		return nil, fmt.Errorf("client: watch %s: %w", bucket, err)
	}
	return w, nil
}

// snapshot reads the result set in pages and queues it as snapshot lines
// and a ready line, returning the sequence S they are consistent at.
func (w *QueryWatch) snapshot(ctx context.Context, c *Client, bucket string, where events.Where, pageSize int) (uint64, error) {
	var pages []events.WatchPage
	req := events.WatchRequest{Bucket: bucket, Where: where, Limit: pageSize}
	for {
		var p events.WatchPage
		if err := c.do(ctx, events.CmdWatch, bucket, req, &p); err != nil {
			return 0, err
		}
		pages = append(pages, p)
		if p.NextCursor == "" {
			break
		}
		req.After = p.NextCursor
	}
	set, seq, err := w.fold(ctx, c, bucket, pages)
	if err != nil {
		return 0, fmt.Errorf("client: watch %s: %w", bucket, err)
	}
	for _, r := range set {
		w.queue = append(w.queue, events.WatchChange{Type: events.WatchSnapshot, Key: r.key, Record: r.rec, Seq: seq})
	}
	w.queue = append(w.queue, events.WatchChange{Type: events.WatchReady, Seq: seq})
	return seq, nil
}

// keyed is a record of a snapshot with its key.
type keyed struct {
	key any
	ks  string // events.KeyString of key, for key order
	rec events.Record
}

// fold makes pages taken at different sequences one set consistent at one
// sequence. A single page already is (at its own). Else the bucket's
// events from the first page's sequence to the stream's last one L apply to
// the union of the pages, in order: a key with such an event ends as its
// last one left it, and a key without one was the same at every sequence
// from the first page's to L. The set is then the one at L.
func (w *QueryWatch) fold(ctx context.Context, c *Client, bucket string, pages []events.WatchPage) ([]keyed, uint64, error) {
	set := map[string]keyed{}
	for _, p := range pages {
		for _, r := range p.Records {
			k, err := keyedOf(r[p.Key], r)
			if err != nil {
				return nil, 0, err
			}
			set[k.ks] = k
		}
	}
	seq := pages[0].Seq
	if len(pages) > 1 {
		s, err := c.js.Stream(ctx, c.opts.stream)
		if err != nil {
			return nil, 0, err
		}
		seq = max(s.CachedInfo().State.LastSeq, pages[len(pages)-1].Seq)
		err = streamread.Upto(ctx, s, pages[0].Seq+1, func(at uint64, msg jetstream.Msg) error {
			if b, _, err := events.ParseEventSubject(msg.Subject()); err != nil || b != bucket {
				return nil
			}
			if ok, err := w.proved(ctx, msg, at); !ok {
				return err
			}
			ev, err := events.DecodeEvent(msg.Data())
			if err != nil {
				return fmt.Errorf("%s: %w", msg.Subject(), err)
			}
			k, err := keyedOf(ev.Key, recordAfter(ev))
			if err != nil {
				return fmt.Errorf("%s: %w", msg.Subject(), err)
			}
			if k.rec != nil && w.filter.Match(k.rec) {
				set[k.ks] = k
			} else {
				delete(set, k.ks)
			}
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
	}
	out := make([]keyed, 0, len(set))
	for _, k := range set {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b keyed) int { return projections.CompareKeys(a.ks, b.ks) })
	return out, seq, nil
}

func keyedOf(key any, rec events.Record) (keyed, error) {
	ks, err := events.KeyString(key)
	return keyed{key: key, ks: ks, rec: rec}, err
}

// recordAfter is the record an event leaves: nil for a delete.
func recordAfter(ev *events.Event) events.Record {
	switch ev.Type {
	case events.OpInserted:
		return ev.Record
	case events.OpUpdated:
		return ev.NewRecord
	}
	return nil
}

// change is what an event does to the result set, if anything: a record
// matching before and after is changed, only after added, only before
// removed (with the record after the update, or the deleted one).
func (w *QueryWatch) change(ev *events.Event, seq uint64) (events.WatchChange, bool) {
	var before, after events.Record
	switch ev.Type {
	case events.OpInserted:
		after = ev.Record
	case events.OpUpdated:
		before, after = ev.OldRecord, ev.NewRecord
	case events.OpDeleted:
		before = ev.Record
	}
	was := before != nil && w.filter.Match(before)
	is := after != nil && w.filter.Match(after)
	ch := events.WatchChange{Key: ev.Key, Record: after, Seq: seq}
	switch {
	case was && is:
		ch.Type = events.WatchChanged
	case is:
		ch.Type = events.WatchAdded
	case was:
		ch.Type = events.WatchRemoved
		if after == nil {
			ch.Record = before
		}
	default:
		return ch, false
	}
	return ch, true
}

// Next blocks until the next line: the snapshot lines and the ready line
// first, then a change, or until ctx is done or the watch stops.
func (w *QueryWatch) Next(ctx context.Context) (events.WatchChange, error) {
	if len(w.queue) > 0 {
		ch := w.queue[0]
		w.queue = w.queue[1:]
		return ch, nil
	}
	for {
		msg, err := w.msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			return events.WatchChange{}, err
		}
		md, err := msg.Metadata()
		if err != nil {
			return events.WatchChange{}, fmt.Errorf("client: %s: %w", msg.Subject(), err)
		}
		if ok, err := w.proved(ctx, msg, md.Sequence.Stream); err != nil {
			return events.WatchChange{}, err
		} else if !ok {
			continue
		}
		ev, err := events.DecodeEvent(msg.Data())
		if err != nil {
			return events.WatchChange{}, fmt.Errorf("client: %s: %w", msg.Subject(), err)
		}
		if ch, ok := w.change(ev, md.Sequence.Stream); ok {
			return ch, nil
		}
	}
}

// proved reports whether msg, at stream sequence seq, was written by a
// trusted store node. A foreign message (not, or not validly, signed) is
// skipped, as the store skips it: it is in no state. When the proof cannot
// be checked yet (the trusted keys were read again moments ago), it is
// checked again shortly.
func (w *QueryWatch) proved(ctx context.Context, msg jetstream.Msg, seq uint64) (bool, error) {
	for {
		err := w.prov.Check(ctx, msg, seq)
		switch {
		case err == nil:
			return true, nil
		case provenance.IsForeign(err):
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("client: %s at seq %d: %w (%w)", msg.Subject(), seq, ctx.Err(), err)
		case <-time.After(provenance.RefreshEvery):
		}
	}
}

// Stop ends the watch; Next then returns jetstream.ErrMsgIteratorClosed
// once the snapshot lines are consumed.
func (w *QueryWatch) Stop() { w.msgs.Stop() }

// checkResume refuses a resume the stream cannot serve without loss: a
// bucket that is not there or is a view, or a sequence whose following
// events the stream no longer holds.
func (c *Client) checkResume(ctx context.Context, bucket string, after uint64, st jetstream.StreamState) error {
	infos, err := c.Buckets(ctx)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(infos, func(b events.BucketInfo) bool { return b.Bucket == bucket })
	switch {
	case i < 0:
		return events.Errorf(events.CodeBucketNotFound, "bucket %q is not defined", bucket)
	case infos[i].View != nil:
		return events.Errorf(events.CodeBadRequest, "bucket %q is a view: its changes are not events in the stream, so it cannot be watched (watch its source %q)", bucket, infos[i].View.From)
	}
	if st.Msgs > 0 && st.FirstSeq > after+1 {
		return events.Errorf(events.CodeNotFound, "the stream no longer holds the events after seq %d (it starts at %d): watch again from a snapshot", after, st.FirstSeq)
	}
	return nil
}
