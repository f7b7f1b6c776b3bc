package storenode_test

import (
	"sync"
	"testing"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/storetest"
)

// TestWatchPageSeq checks a page's seq against what it holds while
// inserts run beside the store.watch requests (so that reads share group
// commits with writes staged before them): with only inserts appended
// after the definition, key i is at seq base+i, and a page at seq S holds
// exactly the keys up to S-base.
func TestWatchPageSeq(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef())
	base := lastSeq(t, nc)
	const inserts = 400
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range inserts / 4 {
				if e := call(t, nc, events.CmdInsert, events.InsertRequest{Bucket: "orders", Record: events.Record{"userId": "u", "total": float64(w)}}, nil); e != nil {
					t.Errorf("insert: %v", e)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var pages []events.WatchPage
	for writing := true; writing; {
		select {
		case <-done:
			writing = false // one last page, at the end
		default:
		}
		var p events.WatchPage
		mustCall(t, nc, events.CmdWatch, events.WatchRequest{Bucket: "orders", Limit: 10000}, &p)
		pages = append(pages, p)
	}
	if last := pages[len(pages)-1]; last.Seq != base+inserts {
		t.Fatalf("the last page is at seq %d, want %d", last.Seq, base+inserts)
	}
	for _, p := range pages {
		if p.Key != "id" || p.NextCursor != "" {
			t.Fatalf("page key %q, nextCursor %q: want id and none", p.Key, p.NextCursor)
		}
		if want := int(p.Seq - base); len(p.Records) != want {
			t.Fatalf("page at seq %d holds %d records, want %d (the inserts up to it)", p.Seq, len(p.Records), want)
		}
		for i, r := range p.Records {
			if r["id"] != float64(i+1) {
				t.Fatalf("page at seq %d: record %d has key %v", p.Seq, i, r["id"])
			}
		}
	}
	t.Logf("%d pages", len(pages))
}

// TestWatchRefusals: a bad where, an unknown bucket and a view are refused
// with their codes.
func TestWatchRefusals(t *testing.T) {
	st := storetest.StartStore(t)
	nc := st.Conn
	define(t, nc, ordersDef(), statsView())
	for _, tc := range []struct {
		name string
		req  events.WatchRequest
		code events.Code
	}{
		{"bad operator", events.WatchRequest{Bucket: "orders", Where: events.Where{"total": map[string]any{"$bogus": 1}}}, events.CodeBadRequest},
		{"bad limit", events.WatchRequest{Bucket: "orders", Limit: 1 << 20}, events.CodeBadRequest},
		{"unknown bucket", events.WatchRequest{Bucket: "nope"}, events.CodeBucketNotFound},
		{"view", events.WatchRequest{Bucket: "userStats"}, events.CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, call(t, nc, events.CmdWatch, tc.req, nil), tc.code)
		})
	}
}
