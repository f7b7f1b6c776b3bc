package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// TestSnapshotCommands: `storeloop snapshot` takes one at the node's last
// sequence, `storeloop snapshot ls` lists it by its header, `storeloop
// snapshot ls --verify` as whole.
func TestSnapshotCommands(t *testing.T) {
	st := storetest.StartStore(t)
	out, stderr, code := cli(t, st.URL, "", "snapshot", "ls")
	if code != 0 || out != "no snapshots\n" {
		t.Fatalf("ls before any: exit %d, %q, %s", code, out, stderr)
	}
	_, stderr, code = cli(t, st.URL, "", "snapshot")
	if code == 0 || !strings.Contains(stderr, "nothing to snapshot") {
		t.Fatalf("snapshot of an empty stream: exit %d, %s", code, stderr)
	}
	cl, err := client.New(st.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Define(context.Background(), events.BucketDef{Bucket: "orders", Key: "id",
		Schema: map[string]events.FieldDef{"id": {Type: events.TypeNumber}}}); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = cli(t, st.URL, "", "snapshot")
	if code != 0 {
		t.Fatalf("snapshot: exit %d: %s", code, stderr)
	}
	var info events.SnapshotInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil || info.Seq != 1 || !info.Valid {
		t.Fatalf("snapshot printed %q (%v), want a valid snapshot at seq 1", out, err)
	}
	// By its header, then read whole.
	for _, tc := range []struct {
		args  []string
		check string
	}{{[]string{"snapshot", "ls"}, "header ok"}, {[]string{"snapshot", "ls", "--verify"}, "ok"}} {
		out, stderr, code = cli(t, st.URL, "", tc.args...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		want := fmt.Sprintf("[1 %d 0 %s %s %s]", info.Bytes, info.Taken.UTC().Format(time.RFC3339), tc.check, info.Name)
		if code != 0 || len(lines) != 2 || fmt.Sprint(strings.Fields(lines[1])) != want {
			t.Fatalf("%v: exit %d, %q, %s; want %s", tc.args, code, out, stderr, want)
		}
	}
}
