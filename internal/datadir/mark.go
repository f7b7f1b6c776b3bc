package datadir

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/storeloop/storeloop/events"
)

// Mark is the durable high-water mark of one stream: the last sequence the
// store node acknowledged (it may lag the newest acknowledgement, never run
// ahead of it), and the holes an operator accepted as lost
// (--accept-data-loss), which later starts must not report again.
type Mark struct {
	Stream  string            `json:"stream"`
	LastSeq uint64            `json:"lastSeq"`
	Lost    []events.SeqRange `json:"lost,omitempty"`
}

// MarkFile is the mark's file name in a data directory.
func MarkFile(stream string) string { return "storeloop-" + stream + ".mark" }

// ReadMark reads the mark of stream in dir; no file is the zero mark (a
// stream the node never acknowledged anything on).
func ReadMark(dir, stream string) (Mark, error) {
	b, err := os.ReadFile(filepath.Join(dir, MarkFile(stream)))
	if errors.Is(err, os.ErrNotExist) {
		return Mark{Stream: stream}, nil
	}
	if err != nil {
		return Mark{}, fmt.Errorf("datadir: %w", err)
	}
	var m Mark
	if err := json.Unmarshal(b, &m); err != nil {
		return Mark{}, fmt.Errorf("datadir: %s: %w", MarkFile(stream), err)
	}
	if m.Stream != stream {
		return Mark{}, fmt.Errorf("datadir: %s names stream %q", MarkFile(stream), m.Stream)
	}
	return m, nil
}

// WriteMark replaces the mark atomically and durably: a temporary file,
// fsync, rename over the old one, fsync of the directory. A crash leaves
// either the old mark or the new one.
func WriteMark(dir string, m Mark) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("datadir: %w", err)
	}
	path := filepath.Join(dir, MarkFile(m.Stream))
	tmp := path + ".tmp"
	if err := writeSynced(tmp, b); err != nil {
		return fmt.Errorf("datadir: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("datadir: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("datadir: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("datadir: sync %s: %w", dir, err)
	}
	return nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
