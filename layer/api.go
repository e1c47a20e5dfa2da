// Package layer applies and creates OCI layer tarballs securely: paths are
// resolved inside the target directory, never through a symlink out of it.
package layer

import (
	"errors"
	"io"
)

var errTODO = errors.New("layer: not implemented yet")

// Options tune Apply.
type Options struct {
	// Overlay writes whiteouts in overlayfs form (0:0 char devices and the
	// trusted.overlay.opaque xattr) instead of removing the shadowed paths,
	// so the result can be stacked as an overlay lowerdir.
	Overlay bool
	// NoDevices refuses device nodes (e.g. when not running as root).
	NoDevices bool
	// MaxBytes bounds the uncompressed size (decompression bombs); 0 = 64 GiB.
	MaxBytes int64
}

// Apply extracts a layer (gzip, zstd or plain tar, detected) into dir and
// returns the number of uncompressed bytes read.
func Apply(dir string, r io.Reader, o Options) (int64, error) { return 0, errTODO }

// Diff writes, as a tar, the changes of an overlayfs upper directory
// (whiteouts become .wh. entries, opaque dirs .wh..wh..opq).
func Diff(upper string, w io.Writer) error { return errTODO }
