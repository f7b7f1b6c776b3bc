package projections

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/snapcodec"
)

// TestDecodeChecksViewRecords: a snapshot whose view records are not what
// the view's definition gives over the restored source (a group missing,
// one too many under another key, an aggregate or the group-by field
// changed, a field added, the definition's group-by changed under the
// records) does not decode: the store node skips it and replays. A sum
// off by rounding only (a replay adds in stream order) decodes.
func TestDecodeChecksViewRecords(t *testing.T) {
	s := NewState()
	mustDefine(t, s, ordersDef())
	mustDefine(t, s, statsDef("aStats"))
	now := float64(time.Now().UnixMilli())
	for i := 1; i <= 12; i++ {
		apply(t, s, events.OpInserted, nil, events.Record{"id": float64(i), "userId": fmt.Sprint("u", i%3), "total": float64(i) / 10,
			"status": "new", events.FieldVersion: 1.0, events.FieldCreatedAt: now + float64(i), events.FieldUpdatedAt: now + float64(i)})
	}
	s.Settle()
	const group = "s:u1"
	cases := []struct {
		name, err string
		edit      func(def *events.BucketDef, recs map[string]events.Record)
	}{
		{"as taken", "", func(*events.BucketDef, map[string]events.Record) {}},
		{"sum off by rounding", "", func(_ *events.BucketDef, recs map[string]events.Record) {
			recs[group]["sum"] = recs[group]["sum"].(float64) * (1 + 1e-14)
		}},
		{"group missing", "2 groups, its source gives 3", func(_ *events.BucketDef, recs map[string]events.Record) { delete(recs, group) }},
		{"group under another key", "group s:u1 is missing", func(_ *events.BucketDef, recs map[string]events.Record) {
			recs["s:u9"] = recs[group]
			delete(recs, group)
		}},
		{"count changed", "group s:u1: field n is 5, its source gives 4", func(_ *events.BucketDef, recs map[string]events.Record) {
			recs[group]["n"] = 5.0
		}},
		{"sum changed", "group s:u1: field sum is", func(_ *events.BucketDef, recs map[string]events.Record) {
			recs[group]["sum"] = recs[group]["sum"].(float64) + 0.1
		}},
		{"group-by value changed", "group s:u1: field userId is u9, its source gives u1", func(_ *events.BucketDef, recs map[string]events.Record) {
			recs[group]["userId"] = "u9"
		}},
		{"field added", "group s:u1: 11 fields, the definition gives 10", func(_ *events.BucketDef, recs map[string]events.Record) {
			recs[group]["extra"] = 1.0
		}},
		{"meta field missing", "group s:u1: meta field _version is not a number", func(_ *events.BucketDef, recs map[string]events.Record) {
			delete(recs[group], events.FieldVersion)
		}},
		{"group-by of the definition changed", "3 groups, its source gives 1", func(def *events.BucketDef, _ map[string]events.Record) {
			def.View.GroupBy, def.Key = "status", "status"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := s.Capture()
			for i := range v.buckets {
				b := &v.buckets[i]
				if b.def.Bucket != "aStats" {
					continue
				}
				b.def.View = new(*b.def.View)
				records := map[string]events.Record{}
				for i, k := range b.keys {
					records[k] = maps.Clone(b.recs[i])
				}
				tc.edit(&b.def, records)
				b.keys, b.recs = nil, nil
				for k, r := range records {
					b.keys, b.recs = append(b.keys, k), append(b.recs, r)
				}
			}
			w := &snapcodec.Writer{}
			if err := v.Encode(w); err != nil {
				t.Fatal(err)
			}
			_, err := DecodeState(snapcodec.NewReader(w.Buf))
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("decode: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), "decode view aStats: "+tc.err)):
				t.Fatalf("decode: %v, want %q", err, tc.err)
			}
		})
	}
}
