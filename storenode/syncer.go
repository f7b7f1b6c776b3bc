package storenode

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Syncer makes appended events durable. The node calls it once per group of
// appended batches, after the stream acknowledged them and before any reply.
type Syncer interface {
	Sync() error
}

// SyncerFunc adapts a function to Syncer.
type SyncerFunc func() error

// Sync calls f.
func (f SyncerFunc) Sync() error { return f() }

// blockSyncer fsyncs the message block files of one JetStream file-storage
// stream. NATS's own sync_interval "always" fsyncs after every single message;
// doing it here once per group commit is what keeps durable appends fast:
// one fsync covers every event of every command committed together.
//
// It relies on the file layout of nats-server's file store
// (<store>/jetstream/<account>/streams/<stream>/msgs/<n>.blk, the newest
// block holding the appends), which is why it is only used with the embedded
// server, whose version the module pins. The server writes each message to
// the block file before it acknowledges it, so an fsync of that file after
// the ack makes the message durable.
type blockSyncer struct {
	dir string

	mu    sync.Mutex
	index int      // index of the newest block, 0 before the first Sync
	f     *os.File // the newest block, kept open
}

// EmbeddedSyncer returns the Syncer for stream in an embedded server whose
// JetStream StoreDir is storeDir (account "$G", the default).
func EmbeddedSyncer(storeDir, stream string) Syncer {
	return accountSyncer(storeDir, "$G", stream)
}

// accountSyncer is EmbeddedSyncer for a stream of account (with auth on,
// the application account's public key).
func accountSyncer(storeDir, account, stream string) Syncer {
	return &blockSyncer{dir: filepath.Join(storeDir, "jetstream", account, "streams", stream, "msgs")}
}

func (s *blockSyncer) block(i int) string { return filepath.Join(s.dir, strconv.Itoa(i)+".blk") }

func (s *blockSyncer) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		if err := s.openNewest(); err != nil {
			return err
		}
	}
	// Blocks the server started since the last sync: the one we hold is
	// complete; sync it, then move to the next, and make the new directory
	// entries durable.
	moved := false
	for {
		if _, err := os.Stat(s.block(s.index + 1)); err != nil {
			break
		}
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("storenode: sync %s: %w", s.f.Name(), err)
		}
		s.f.Close()
		f, err := os.Open(s.block(s.index + 1))
		if err != nil {
			return fmt.Errorf("storenode: sync: %w", err)
		}
		s.f, s.index, moved = f, s.index+1, true
	}
	if err := s.stillCurrent(); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("storenode: sync %s: %w", s.f.Name(), err)
	}
	if moved {
		return fsyncPath(s.dir)
	}
	return nil
}

// openNewest opens the highest-numbered block and syncs the directory.
func (s *blockSyncer) openNewest() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("storenode: sync: %w", err)
	}
	for _, e := range entries {
		if n, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".blk")); err == nil && strings.HasSuffix(e.Name(), ".blk") && n > s.index {
			s.index = n
		}
	}
	if s.index == 0 {
		return fmt.Errorf("storenode: sync: no message block in %s", s.dir)
	}
	if s.f, err = os.Open(s.block(s.index)); err != nil {
		return fmt.Errorf("storenode: sync: %w", err)
	}
	return fsyncPath(s.dir)
}

// stillCurrent reopens the newest block if the server replaced the file
// (it rewrites blocks by rename when it compacts them).
func (s *blockSyncer) stillCurrent() error {
	held, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("storenode: sync: %w", err)
	}
	now, err := os.Stat(s.block(s.index))
	if err != nil {
		return fmt.Errorf("storenode: sync: %w", err)
	}
	if os.SameFile(held, now) {
		return nil
	}
	s.f.Close()
	if s.f, err = os.Open(s.block(s.index)); err != nil {
		return fmt.Errorf("storenode: sync: %w", err)
	}
	return nil
}

func fsyncPath(path string) error {
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

// Close releases the open block file.
func (s *blockSyncer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
