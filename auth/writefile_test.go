package auth

import (
	"os"
	"path/filepath"
	"testing"
)

// A leftover .tmp, a symlink to another file or one readable by all, is
// replaced, not written through: the secret lands in path alone, with
// its mode.
func TestWriteFileLeftoverTmp(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "user.creds")
	if err := os.Symlink(other, path+".tmp"); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(path, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(other); string(b) != "keep" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want a regular file 0600", path, fi.Mode())
	}
	if b, _ := os.ReadFile(path); string(b) != "secret" {
		t.Errorf("%s = %q, want the secret", path, b)
	}
}
