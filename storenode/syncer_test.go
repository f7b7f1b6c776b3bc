package storenode

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/storeloop/storeloop/internal/natstest"
)

// TestBlockSyncerFollowsNewBlocks appends past the file store's block size
// and checks that the syncer moved to the newest block file (the one the
// server appends to) and keeps syncing without error.
func TestBlockSyncerFollowsNewBlocks(t *testing.T) {
	dir := t.TempDir()
	s := natstest.ServerAt(t, dir)
	nc := natstest.Connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	syncer := EmbeddedSyncer(dir, "S").(*blockSyncer)
	defer syncer.Close()
	if _, err := js.Publish(ctx, "s.x", []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := syncer.Sync(); err != nil {
		t.Fatal(err)
	}
	first := syncer.index
	payload := []byte(strings.Repeat("x", 512<<10))
	blocks := func() int {
		entries, _ := os.ReadDir(syncer.dir)
		n := 0
		for _, e := range entries {
			if filepath.Ext(e.Name()) == ".blk" {
				n++
			}
		}
		return n
	}
	for i := 0; blocks() < 3; i++ {
		if i == 200 {
			t.Fatalf("still %d block files after 100 MiB", blocks())
		}
		if _, err := js.Publish(ctx, "s.x", payload); err != nil {
			t.Fatal(err)
		}
		if err := syncer.Sync(); err != nil {
			t.Fatalf("sync after %d appends: %v", i+1, err)
		}
	}
	newest := 0
	entries, err := os.ReadDir(syncer.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".blk")); err == nil && n > newest {
			newest = n
		}
	}
	if held := filepath.Base(syncer.f.Name()); syncer.index <= first || syncer.index != newest || held != strconv.Itoa(newest)+".blk" {
		t.Fatalf("syncer holds %s (index %d, first %d); newest block is %d.blk", held, syncer.index, first, newest)
	}
}
