package storenode

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/events"
)

// issuesSorted reports whether issues are in the documented order.
func issuesSorted(issues []events.Issue) bool {
	return slices.IsSortedFunc(issues, func(a, b events.Issue) int {
		if c := strings.Compare(a.Field, b.Field); c != 0 {
			return c
		}
		return strings.Compare(a.Code, b.Code)
	})
}

// FuzzCompileSchema: any definition either compiles into a schema that can
// judge records, or is refused with a bad_request listing sorted issues.
func FuzzCompileSchema(f *testing.F) {
	seed, _ := json.Marshal(ordersDef())
	f.Add(seed)
	f.Add([]byte(`{"bucket":"b","key":"id","schema":{"id":{"type":"string"}}}`))
	f.Add([]byte(`{"bucket":"b","key":"id","schema":{"id":{"type":"number","generated":"uuid","enum":[1,"a"],"min":3,"max":1}},"indexes":["id","id","x"]}`))
	f.Add([]byte(`{"bucket":"b","key":"k","schema":{"k":{"type":"string","pattern":"(a+)+$","default":"aa","minLength":2,"maxLength":1}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var def events.BucketDef
		if json.Unmarshal(data, &def) != nil {
			return
		}
		s, err := compileSchema(def)
		if err != nil {
			var e *events.Error
			if !errors.As(err, &e) || e.Code != events.CodeBadRequest || len(e.Issues) == 0 || !issuesSorted(e.Issues) {
				t.Fatalf("compileSchema error %#v is not a bad_request with sorted issues", err)
			}
			return
		}
		if kf := s.fields[s.key]; kf == nil || (kf.def.Type != events.TypeString && kf.def.Type != events.TypeNumber) {
			t.Fatalf("compiled a schema whose key %q is not a string or number field", s.key)
		}
		// Defaults were judged valid, so a record made only of them and
		// generated values fails at most for missing required fields or for
		// generated values the field's constraints refuse.
		out, e := s.prepareInsert(events.Record{}, func(string) float64 { return 1 }, time.UnixMilli(0))
		if e != nil {
			for _, is := range e.Issues {
				if is.Code != issueRequired && s.fields[is.Field].def.Generated == "" {
					t.Fatalf("empty insert failed with %v", e)
				}
			}
			return
		}
		if issues := s.validate(out); len(issues) > 0 {
			t.Fatalf("prepared record %v fails validate: %v", out, issues)
		}
	})
}

// FuzzValidate: prepareInsert never panics nor changes its input, and what
// it accepts passes validate and has a key.
func FuzzValidate(f *testing.F) {
	seed, _ := json.Marshal(validOrder())
	f.Add(seed)
	f.Add([]byte(`{"userId":"u1","total":10}`))
	f.Add([]byte(`{"userId":"","total":-1,"status":"lost","_version":1,"extra":null}`))
	f.Add([]byte(`{"userId":"u1","total":1,"due":"2024-02-30","day":"2024-02-03T10:00:00Z","email":"a@b","site":"http://x"}`))
	s, err := compileSchema(ordersDef())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var rec events.Record
		if json.Unmarshal(data, &rec) != nil {
			return
		}
		before, _ := json.Marshal(rec)
		_ = s.checkChanges(rec)
		out, e := s.prepareInsert(rec, func(string) float64 { return 1 }, time.UnixMilli(1_700_000_000_000))
		if after, _ := json.Marshal(rec); !bytes.Equal(after, before) {
			t.Fatalf("prepareInsert changed its input from %s to %s", before, after)
		}
		if e != nil {
			if e.Code != events.CodeValidation || len(e.Issues) == 0 || !issuesSorted(e.Issues) {
				t.Fatalf("prepareInsert error %#v is not a validation error with sorted issues", e)
			}
			return
		}
		if issues := s.validate(out); len(issues) > 0 {
			t.Fatalf("prepareInsert accepted %s as %v, which fails validate: %v", data, out, issues)
		}
		if _, e := s.keyOf(out); e != nil {
			t.Fatalf("prepareInsert accepted a record without a key: %v", e)
		}
	})
}

// FuzzDecodeRequest: decodeRequest never panics, fails only with
// bad_request, and what it accepts re-encodes to a fixed point.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(``))
	f.Add([]byte(`{"bucket":"orders","record":{"total":25,"tags":["a"],"n":null}}`))
	f.Add([]byte(`{"bucket":"b","key":1,"changes":{"a":{"b":[1,2]}},"increment":{"n":1.5},"expectVersion":2}`))
	f.Add([]byte(`{"ops":[{"op":"insert","bucket":"b","record":{"id":"x"}},{"op":"delete","bucket":"b","key":"x","expectVersion":1}],"reads":[{"bucket":"b","key":"y","version":0}]}`))
	f.Add([]byte(`{"bucket":"b","foo":1} trailing`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip[events.InsertRequest](t, data)
		fuzzRoundTrip[events.UpdateRequest](t, data)
		fuzzRoundTrip[events.TxRequest](t, data)
	})
}

func fuzzRoundTrip[T any](t *testing.T, data []byte) {
	t.Helper()
	var v T
	if e := decodeRequest(data, &v); e != nil {
		if e.Code != events.CodeBadRequest || e.Message == "" {
			t.Fatalf("decodeRequest(%q) failed with %#v, want a bad_request", data, e)
		}
		return
	}
	first, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("decoded %T %#v does not encode: %v", v, v, err)
	}
	if len(first) > maxRequestBytes {
		return // escaping can grow a body past the cap
	}
	var again T
	if e := decodeRequest(first, &again); e != nil {
		t.Fatalf("re-encoded %T %s does not decode: %v", v, first, e)
	}
	if second, _ := json.Marshal(again); !bytes.Equal(second, first) {
		t.Fatalf("%T does not round-trip:\n%s\n%s", v, first, second)
	}
}

// FuzzDecodeHeaders: any headers either decode into the causal fields
// within their caps, or are refused with too_large or bad_request in a
// short message (a huge header is never echoed back).
func FuzzDecodeHeaders(f *testing.F) {
	f.Add("cmd-1", "corr", "evt", "loyalty-on-ship", "3", "traceparent", 55)
	f.Add("", "", "", "", "", "", 0)
	f.Add(strings.Repeat("c", events.MaxCommandIDBytes+1), "", "", "", "", "", 0)
	f.Add("", strings.Repeat("x", events.MaxCausalIDBytes), strings.Repeat("y", events.MaxCausalIDBytes), "", "0", "", 0)
	f.Add("", "", "", "", "-1", "", 0)
	f.Add("", "", "", "", "99999999999999999999999999", "", 0)
	f.Add("", "", "", "", "", "tracestate", 70000)
	f.Fuzz(func(t *testing.T, cmdID, corr, caus, rule, hop, extra string, extraLen int) {
		h := nats.Header{}
		for _, kv := range [][2]string{{events.HeaderCommandID, cmdID}, {events.HeaderCorrelationID, corr},
			{events.HeaderCausationID, caus}, {events.HeaderRule, rule}, {events.HeaderHop, hop}} {
			if kv[1] != "" {
				h.Set(kv[0], kv[1])
			}
		}
		if extra != "" && extraLen > 0 {
			h.Set(extra, strings.Repeat("v", min(extraLen, 1<<20)))
		}
		total := 0
		for name, vs := range h {
			for _, v := range vs {
				total += len(name) + len(v)
			}
		}
		id, cause, e := decodeHeaders(h)
		if e != nil {
			if e.Code != events.CodeTooLarge && e.Code != events.CodeBadRequest || len(e.Message) > 256 {
				t.Fatalf("error %v: want too_large or bad_request in a short message", e)
			}
			return
		}
		if total > events.MaxHeaderBytes || len(id) > events.MaxCommandIDBytes || len(cause.CorrelationID) > events.MaxCausalIDBytes ||
			len(cause.CausationID) > events.MaxCausalIDBytes || len(cause.RuleID) > events.MaxRuleIDBytes || cause.Hop < 0 {
			t.Fatalf("accepted headers past a cap: %d bytes, %+v", total, cause)
		}
		if id != h.Get(events.HeaderCommandID) || cause.CorrelationID != h.Get(events.HeaderCorrelationID) ||
			cause.CausationID != h.Get(events.HeaderCausationID) || cause.RuleID != h.Get(events.HeaderRule) {
			t.Fatalf("decoded %q %+v from %v", id, cause, h)
		}
	})
}
