package store

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// flock takes a whole-file lock on Root/name, shared or exclusive, and
// returns its release. flock locks die with the process, so a kill -9
// never leaves the store locked.
func (s *Store) flock(name string, exclusive bool) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.Root, name), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store lock: %w", err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store lock %s: %w", name, err)
	}
	return func() { f.Close() }, nil
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
