package storenode

import (
	"fmt"
	"time"
)

// snapshotConfig says when the node takes snapshots by itself.
type snapshotConfig struct {
	every    uint64        // events since the last snapshot; 0: not by count
	interval time.Duration // time since the last snapshot; 0: not by time
	keep     int           // 0: DefaultSnapshotKeep
	maxBytes int64         // 0: DefaultSnapshotMaxBytes
	slice    int           // records a step of a capture copies; 0: captureSlice
	between  func()        // called between the steps of a capture, off the loop (tests)
}

func (c snapshotConfig) periodic() bool { return c.every > 0 || c.interval > 0 }

func (c snapshotConfig) maxObject() int64 {
	if c.maxBytes == 0 {
		return DefaultSnapshotMaxBytes
	}
	return c.maxBytes
}

func (c snapshotConfig) captureSlice() int {
	if c.slice == 0 {
		return captureSlice
	}
	return c.slice
}

func (c snapshotConfig) kept() int {
	if c.keep == 0 {
		return DefaultSnapshotKeep
	}
	return c.keep
}

// WithSnapshots makes the node take a snapshot of its state once every
// events have been appended since the last one, and once interval has
// passed since the last one if anything was appended; 0 turns either
// trigger off (both 0: only store.snapshot takes them, the default). A
// start always loads the newest valid snapshot, whatever the options.
func WithSnapshots(every uint64, interval time.Duration) Option {
	return func(c *config) error {
		if interval < 0 {
			return fmt.Errorf("storenode: snapshot interval %s is negative", interval)
		}
		if interval > 0 && interval < time.Second {
			return fmt.Errorf("storenode: snapshot interval %s is under a second", interval)
		}
		c.snapshots.every, c.snapshots.interval = every, interval
		return nil
	}
}

// WithSnapshotKeep sets how many snapshots are kept, newest first
// (default DefaultSnapshotKeep).
func WithSnapshotKeep(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 100 {
			return fmt.Errorf("storenode: snapshots kept %d out of range 1..100", n)
		}
		c.snapshots.keep = n
		return nil
	}
}

// WithSnapshotMaxBytes caps a snapshot object (header and body) at max
// bytes (default DefaultSnapshotMaxBytes): a start skips a bigger one
// without reading it, and a snapshot of a state that would encode bigger
// is not taken (it could not be loaded). Give the node memory for it.
func WithSnapshotMaxBytes(max int64) Option {
	return func(c *config) error {
		if max < 1<<20 || max > 1<<40 {
			return fmt.Errorf("storenode: snapshot max bytes %d out of range 1 MiB..1 TiB", max)
		}
		c.snapshots.maxBytes = max
		return nil
	}
}
