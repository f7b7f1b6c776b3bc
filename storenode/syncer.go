package storenode

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Syncer makes appended events durable. The node calls it once per appended
// batch, after the stream acknowledged the batch and before any reply.
type Syncer interface {
	Sync() error
}

// SyncerFunc adapts a function to Syncer.
type SyncerFunc func() error

// Sync calls f.
func (f SyncerFunc) Sync() error { return f() }

// blockSyncer fsyncs the message block files of one JetStream file-storage
// stream. NATS's own sync_interval "always" fsyncs after every single message;
// doing it here once per batch is the group commit that keeps durable
// appends fast: one fsync covers every event of every command in the batch.
//
// It relies on the file layout of nats-server's file store
// (<store>/jetstream/<account>/streams/<stream>/msgs/<n>.blk), which is why
// it is only used with the embedded server, whose version we pin.
type blockSyncer struct {
	dir string

	mu     sync.Mutex
	last   int // highest block index synced so far
	synced int // number of block files present at the last directory sync
}

// EmbeddedSyncer returns the Syncer for stream in an embedded server whose
// JetStream StoreDir is storeDir (account "$G", the default).
func EmbeddedSyncer(storeDir, stream string) Syncer {
	return &blockSyncer{dir: filepath.Join(storeDir, "jetstream", "$G", "streams", stream, "msgs")}
}

func (s *blockSyncer) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("storenode: sync: %w", err)
	}
	var blocks []int
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".blk") {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSuffix(name, ".blk"))
		if err == nil && n >= s.last {
			blocks = append(blocks, n)
		}
	}
	// Blocks before the last synced one are complete and were synced when
	// they were the last; the last one and any newer ones need it now.
	for _, n := range blocks {
		if err := fsyncFile(filepath.Join(s.dir, strconv.Itoa(n)+".blk")); err != nil {
			return err
		}
		if n > s.last {
			s.last = n
		}
	}
	if len(entries) != s.synced {
		// New block files: make their directory entries durable too.
		if err := fsyncFile(s.dir); err != nil {
			return err
		}
		s.synced = len(entries)
	}
	return nil
}

func fsyncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("storenode: sync: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("storenode: sync %s: %w", path, err)
	}
	return nil
}
