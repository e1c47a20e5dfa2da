package store

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/berthproject/berth/internal/flock"
)

// flock takes a whole-file lock on Root/name, shared or exclusive, and
// returns its release.
func (s *Store) flock(name string, exclusive bool) (func(), error) {
	unlock, err := flock.Lock(filepath.Join(s.Root, name), exclusive)
	if err != nil {
		return nil, fmt.Errorf("store lock %s: %w", name, err)
	}
	return unlock, nil
}

// Lock takes the store's GC lock: shared for anything that adds blobs or
// reads snapshots, exclusive for what deletes them. Callers outside the
// package (e.g. an engine creating a container from a snapshot) hold it
// shared so that a concurrent prune cannot pull the floor away.
func (s *Store) Lock(exclusive bool) (unlock func(), err error) {
	return s.flock("gc.lock", exclusive)
}

// writeFileAtomic writes data to path via a temp file in tmp/, fsyncs it,
// renames it over path and fsyncs the directory.
func (s *Store) writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Join(s.Root, "tmp"), "file-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
