package storenode

import (
	"encoding/json"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/wirejson"
	"github.com/storeloop/storeloop/projections"
)

// streamMaxMsgBytes is the event stream's max message size.
const streamMaxMsgBytes = 4 << 20

// eventHeaderRoom is what an event message's headers may take beside its
// body: the trace context copied from the command (whose headers are at
// most events.MaxHeaderBytes together) and the store's own headers.
const eventHeaderRoom = events.MaxHeaderBytes + 4<<10

// replyEnvelope is the size of {"result":…} around a result.
const replyEnvelope = len(`{"result":}`)

// maxEventBytes is the largest event body the node can append: the stream
// and the connection each refuse a larger message, and a refused append
// halts the node, so a command whose event would be larger is refused
// first.
func (n *Node) maxEventBytes() int {
	return min(n.replyLimit(), streamMaxMsgBytes) - eventHeaderRoom
}

// checkEventSize refuses an event body the stream could not take.
func (n *Node) checkEventSize(size int) *events.Error {
	if limit := n.maxEventBytes(); size > limit {
		return events.Errorf(events.CodeTooLarge, "the event would be %d bytes, the stream takes at most %d", size, limit)
	}
	return nil
}

// encodeResult encodes a write's result once, for the reply and for the
// dedupe table, and refuses it when the reply could not be delivered: the
// write is then not applied (too_large), so a remembered reply is always
// deliverable.
func (n *Node) encodeResult(result any) (json.RawMessage, *events.Error) {
	raw, ok := result.(json.RawMessage)
	if !ok {
		var err error
		if raw, err = wirejson.Append(nil, result); err != nil {
			return nil, events.Errorf(events.CodeInternal, "encode result: %v", err)
		}
	}
	if size, limit := len(raw)+replyEnvelope, n.replyLimit(); size > limit {
		return nil, events.Errorf(events.CodeTooLarge, "the reply would be %d bytes, over the max payload of %d: nothing was applied (split the command)", size, limit)
	}
	return raw, nil
}

// queryPage encodes a query's page, cut further so that its reply fits the
// max payload: a page stops before the record that would not fit, with the
// cursor of the last record it holds. A single record that cannot fit at
// all is too_large. head is written before "records" (fields of a result
// that extends a page, each followed by a comma).
func (n *Node) queryPage(b *projections.Bucket, recs []events.Record, next, head string) (json.RawMessage, *events.Error) {
	// out holds {head"records":[… and must leave room for ],"nextCursor":"…"}
	// and the reply's envelope.
	limit := n.replyLimit() - replyEnvelope - len(`],"nextCursor":""}`)
	out := append(append(append(make([]byte, 0, 4096), '{'), head...), `"records":[`...)
	last := "" // the key of the last record in out
	for i, r := range recs {
		start := len(out)
		if i > 0 {
			out = append(out, ',')
		}
		var err error
		if out, err = wirejson.Append(out, r); err != nil {
			return nil, events.Errorf(events.CodeInternal, "encode record: %v", err)
		}
		k, err := events.KeyString(r[b.Def.Key])
		if err != nil {
			return nil, events.Errorf(events.CodeInternal, "record without a key: %v", err)
		}
		if len(out)+projections.CursorLen(k) > limit {
			if i == 0 {
				return nil, events.Errorf(events.CodeTooLarge, "record %v is %d bytes, over what a reply can carry (%d)", r[b.Def.Key], len(out)-start, limit)
			}
			out, next = out[:start], projections.Cursor(last)
			break
		}
		last = k
	}
	out = append(out, ']')
	if next != "" {
		out = append(out, `,"nextCursor":`...)
		out = wirejson.AppendString(out, next)
	}
	return append(out, '}'), nil
}

// checkScan refuses a query, count or aggregate that would visit more
// records than the node's scan cap (WithMaxScan): every read runs on the
// single writer, so a long scan would hold up every write behind it. It
// returns the scan to run: the filter compiled and its candidates found
// once.
func (n *Node) checkScan(b *projections.Bucket, w events.Where, counting bool) (*projections.Scan, *events.Error) {
	f, err := projections.CompileWhere(w)
	if err != nil {
		return nil, asContractError(err)
	}
	s := b.Scan(f)
	return s, n.scanBudget(s.Cost(counting), b.Def.Bucket)
}

// scanBudget refuses a command that visits cost records.
func (n *Node) scanBudget(cost int, bucket string) *events.Error {
	if cost > n.cfg.maxScan {
		return events.Errorf(events.CodeTooLarge, "the command would scan %d records of %s, over the cap of %d records per command (narrow the where with an indexed field)", cost, bucket, n.cfg.maxScan)
	}
	return nil
}

// checkTxCaps refuses a transaction past the reads caps before any of them
// is checked.
func checkTxCaps(req *events.TxRequest) *events.Error {
	if len(req.Reads) > events.MaxTxReads {
		return events.Errorf(events.CodeTooLarge, "tx has %d reads, the cap is %d", len(req.Reads), events.MaxTxReads)
	}
	if len(req.QueryReads) > events.MaxTxQueryReads {
		return events.Errorf(events.CodeTooLarge, "tx has %d queryReads, the cap is %d", len(req.QueryReads), events.MaxTxQueryReads)
	}
	listed := 0
	for _, q := range req.QueryReads {
		listed += len(q.Records)
	}
	if listed > events.MaxTxQueryReadRecords {
		return events.Errorf(events.CodeTooLarge, "tx queryReads list %d records, the cap is %d", listed, events.MaxTxQueryReadRecords)
	}
	return nil
}
