package datadir

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// LockFile is the name of the lock file in a data directory.
const LockFile = "storeloop.lock"

// Holder identifies the process holding a data directory's lock; it is
// written into the lock file so that a refused process can name it.
type Holder struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Started time.Time `json:"started"`
}

func (h Holder) String() string {
	return fmt.Sprintf("pid %d on %s, started %s", h.PID, h.Host, h.Started.UTC().Format(time.RFC3339))
}

// HeldError is returned by Lock when another process holds the directory.
type HeldError struct {
	Dir    string
	Holder Holder // zero if the holder's record could not be read
}

func (e *HeldError) Error() string {
	if e.Holder.PID == 0 {
		return fmt.Sprintf("data directory %s is in use by another store node (holder unknown)", e.Dir)
	}
	return fmt.Sprintf("data directory %s is in use by another store node: %s", e.Dir, e.Holder)
}

// ErrLockUnsupported is returned (wrapped) by Lock on platforms without
// flock: the caller decides whether to run without the guarantee.
var ErrLockUnsupported = errors.New("data directory lock not supported on this platform")

// Lock is a held data directory lock.
type Lock struct {
	f *os.File
}

// Acquire creates dir if needed and locks it for this process, writing this
// process as the holder. It fails with *HeldError if another process (or
// another Lock in this one) holds it. The operating system releases the lock
// when the process exits, however it exits, so a killed node never leaves a
// stale lock behind.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("datadir: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("datadir: %w", err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("datadir: lock %s: %w", path, err)
	}
	if held {
		e := &HeldError{Dir: dir}
		if b, err := os.ReadFile(path); err == nil {
			_ = json.Unmarshal(b, &e.Holder)
		}
		f.Close()
		return nil, e
	}
	host, _ := os.Hostname()
	me, _ := json.Marshal(Holder{PID: os.Getpid(), Host: host, Started: time.Now().UTC()})
	if err := writeHolder(f, me); err != nil {
		unlock(f)
		f.Close()
		return nil, fmt.Errorf("datadir: %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// writeHolder replaces the lock file's content. The file is never removed
// or renamed: the lock lives on its inode.
func writeHolder(f *os.File, b []byte) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(append(b, '\n'), 0); err != nil {
		return err
	}
	return f.Sync()
}

// Release unlocks the directory. The holder record stays in the file; it
// only means something while the file is locked.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	unlock(l.f)
	err := l.f.Close()
	l.f = nil
	return err
}
