package storenode_test

import (
	"strings"
	"testing"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// numberKeysDef is a bucket keyed by a number the caller chooses.
func numberKeysDef() events.BucketDef {
	return events.BucketDef{Bucket: "nums", Key: "id", Schema: map[string]events.FieldDef{"id": {Type: events.TypeNumber}}}
}

// Issue 9 case 8: keys 0 and -0 were two records (count where {"id":0} was
// 2) while the unique index treated them as equal. A number key is its
// value: -0 is 0.
func TestNegativeZeroKeyIsZero(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, numberKeysDef())
	if raw := rawCall(t, nc, events.CmdInsert, []byte(`{"bucket":"nums","record":{"id":-0}}`)); !strings.Contains(string(raw), `"id":0}`) {
		t.Fatalf("insert -0 = %s, want the record stored with id 0", raw)
	}
	if r := getRecord(t, nc, "nums", 0.0); r == nil {
		t.Fatal("get 0: no record, want the one inserted as -0")
	}
	wantCode(t, call(t, nc, events.CmdInsert, []byte(`{"bucket":"nums","record":{"id":0}}`), nil), events.CodeConflict)
	var n int
	mustCall(t, nc, events.CmdCount, []byte(`{"bucket":"nums","where":{"id":0}}`), &n)
	if n != 1 {
		t.Fatalf(`count where {"id":0} = %d, want 1`, n)
	}
	restartNode(t, st)
	mustCall(t, nc, events.CmdCount, []byte(`{"bucket":"nums"}`), &n)
	if n != 1 {
		t.Fatalf("count after restart = %d, want 1", n)
	}
}
