// Package flock serialises berth processes on a lock file: a whole-file
// flock(2), which dies with its holder, so a kill -9 never leaves a lock
// taken.
package flock

import (
	"os"

	"golang.org/x/sys/unix"
)

// Lock takes a lock on path (creating the file), exclusive or shared,
// waiting for it; it returns the release.
func Lock(path string, exclusive bool) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
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
		return nil, err
	}
	return func() { f.Close() }, nil
}
