package keyring

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ReadFile reads a key file: the key in base64, alone (white space
// around it is ignored).
func ReadFile(path string) (Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("read key file: %w", err)
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return Key{}, fmt.Errorf("read key file %s: %w", path, err)
	}
	return k, nil
}

// CreateFile writes a new random key to path (mode 0600) unless the file
// exists, in which case it reads that key instead; created says which.
// The key is written to a temporary file in the same folder first and
// linked into place, which fails if path appeared meanwhile: concurrent
// callers agree on one key, and no reader sees a partial file.
func CreateFile(path string) (k Key, created bool, err error) {
	if k, err := ReadFile(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	if k, err = NewKey(); err != nil {
		return Key{}, false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return Key{}, false, fmt.Errorf("create key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(k.Text() + "\n")
	err = errors.Join(err, tmp.Chmod(0o600), tmp.Sync(), tmp.Close())
	if err != nil {
		return Key{}, false, fmt.Errorf("create key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			k, err := ReadFile(path)
			return k, false, err
		}
		return Key{}, false, fmt.Errorf("create key file: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return k, true, nil
}
