// Package datadir guards the folders under data_dir that embedded servers (the Kafka
// broker's log, the object store's files) own: one process at a time, since two
// processes writing the same log would corrupt it.
package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrInUse is returned when another process holds the folder.
var ErrInUse = errors.New("in use by another process")

// Lock is an exclusive lock on a folder, held until Release or the process ends.
type Lock struct {
	f *os.File
}

// Acquire creates dir if needed and locks it (flock on dir/.lock), failing at once with
// ErrInUse when another process holds it.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w (is another vigil running on this data_dir?)", dir, ErrInUse)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return &Lock{f: f}, nil
}

// Release unlocks the folder.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor drops the flock
	l.f = nil
	return err
}
