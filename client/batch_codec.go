package client

import (
	"encoding/json"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/wirejson"
)

// encodeBatchRequest encodes req as json.Marshal does: each command
// without reflection, but a tx's ops and reads, which go to encoding/json.
func encodeBatchRequest(req events.BatchRequest) ([]byte, error) {
	if req.Commands == nil {
		return json.Marshal(req)
	}
	b := append(make([]byte, 0, 64+256*len(req.Commands)), `{"commands":[`...)
	for i := range req.Commands {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendBatchCommand(b, &req.Commands[i]); err != nil {
			return nil, err
		}
	}
	return append(b, "]}"...), nil
}

// appendBatchCommand appends c's JSON: its fields in struct order, the
// omitempty ones left out when empty, as encoding/json writes them.
func appendBatchCommand(dst []byte, c *events.BatchCommand) ([]byte, error) {
	if len(c.Ops) > 0 || len(c.Reads) > 0 || len(c.QueryReads) > 0 {
		data, err := json.Marshal(c)
		return append(dst, data...), err
	}
	o := requestObject{b: dst}
	o.member("cmd", c.Cmd)
	o.omitEmpty("commandId", c.CommandID)
	o.omitEmpty("correlationId", c.CorrelationID)
	o.omitEmpty("causationId", c.CausationID)
	if c.Hop != nil {
		o.member("hop", *c.Hop)
	}
	o.omitEmpty("rule", c.Rule)
	if c.RuleVersion != 0 {
		o.member("ruleVersion", c.RuleVersion)
	}
	o.omitEmpty("traceparent", c.TraceParent)
	o.omitEmpty("tracestate", c.TraceState)
	o.omitEmpty("bucket", c.Bucket)
	if c.Key != nil {
		o.member("key", c.Key)
	}
	if len(c.Record) > 0 {
		o.member("record", c.Record)
	}
	if len(c.Changes) > 0 {
		o.member("changes", c.Changes)
	}
	if len(c.Increment) > 0 {
		o.member("increment", c.Increment)
	}
	if c.ExpectVersion != nil {
		o.member("expectVersion", *c.ExpectVersion)
	}
	return o.close()
}

// decodeBatchReply decodes the common batch reply,
// {"result":{"results":[{"result":…},…]}}, into res without reflection,
// each command's result kept as its JSON text. It reports false, leaving
// res alone, for any other reply — one with a command's error among them
// included — which decodeReply then decodes with encoding/json.
func decodeBatchReply(data []byte, res *events.BatchResult) bool {
	var results []events.Reply
	ok := wirejson.ParseObjectText(data, func(name string, text []byte) bool {
		if name != "result" || results != nil {
			return false
		}
		return wirejson.ParseObjectText(text, func(name string, text []byte) bool {
			if name != "results" || results != nil {
				return false
			}
			results = make([]events.Reply, 0, 16)
			return wirejson.ParseObjectsText(text, func() bool {
				if n := len(results); n > 0 && results[n-1].Result == nil {
					return false // the previous entry had no result
				}
				results = append(results, events.Reply{})
				return true
			}, func(name string, text []byte) bool {
				r := &results[len(results)-1]
				if name != "result" || r.Result != nil {
					return false
				}
				r.Result = json.RawMessage(text)
				return true
			})
		})
	})
	if n := len(results); n > 0 && results[n-1].Result == nil {
		return false // the last entry had no result
	}
	if !ok || results == nil {
		return false
	}
	res.Results = results
	return true
}

// omitEmpty is member for a string field tagged omitempty.
func (o *requestObject) omitEmpty(name, v string) {
	if v != "" {
		o.member(name, v)
	}
}
