package proof

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nats-io/nkeys"
)

// LoadOrCreateKey reads the nkey seed in path, creating a new key there
// (mode 0600, its directory 0700) when the file does not exist.
func LoadOrCreateKey(path string) (nkeys.KeyPair, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("proof: key file: %w", err)
	}
	kp, err := nkeys.FromSeed(bytes.TrimSpace(data))
	if err != nil {
		return nil, fmt.Errorf("proof: key file %s: %w", path, err)
	}
	return kp, nil
}

func createKey(path string) (nkeys.KeyPair, error) {
	kp, err := nkeys.CreateServer()
	if err != nil {
		return nil, fmt.Errorf("proof: new key: %w", err)
	}
	seed, _ := kp.Seed()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("proof: key file: %w", err)
	}
	// O_EXCL: two processes racing to create the key must not both win.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateKey(path)
		}
		return nil, fmt.Errorf("proof: key file: %w", err)
	}
	_, err = f.Write(append(seed, '\n'))
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		return nil, fmt.Errorf("proof: write key file %s: %w", path, err)
	}
	return kp, nil
}
