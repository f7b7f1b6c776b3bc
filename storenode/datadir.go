package storenode

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/storeloop/storeloop/internal/datadir"
)

// DataDirInUseError is the error of LockDataDir (and StartEmbedded) when
// another process holds the data directory; Holder names it (pid, host,
// start time).
type DataDirInUseError = datadir.HeldError

// LockDataDir makes this process the only store node on dir (creating it
// if needed): an OS lock held until release is called or the process ends,
// however it ends. Another holder fails it with *DataDirInUseError. On
// platforms without flock it logs a warning and locks nothing.
// StartEmbedded takes this lock itself; a node on an external server that
// keeps its high-water mark in dir (WithDataDir) takes it first.
func LockDataDir(dir string) (release func(), err error) {
	lock, err := datadir.Acquire(dir)
	if errors.Is(err, datadir.ErrLockUnsupported) {
		slog.Warn("one store node per data directory is not enforced on this platform", "data", dir)
		return func() {}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("storenode: %w", err)
	}
	return func() { lock.Release() }, nil
}
