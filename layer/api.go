// Package layer applies and creates OCI layer tarballs securely: paths are
// resolved inside the target directory, never through a symlink out of it.
//
// Reading a layer:
//   - Apply extracts a layer (gzip, zstd or plain tar, detected by
//     Decompress) into a directory, either as an overlayfs lowerdir
//     (Options.Overlay: whiteouts become 0:0 char devices, opaque dirs get
//     trusted.overlay.opaque=y) or merged onto the directory (whiteouts
//     remove what earlier layers put there).
//   - Hostile input is refused with an error naming the entry: names that
//     climb out of the root, a parent that is a symlink (every operation is
//     relative to a directory fd opened with O_NOFOLLOW, so nothing is
//     written through a symlink; Options.InRootSymlinks instead follows it
//     confined to the root, as the container would), hardlinks whose
//     target escapes or is not in the directory, device nodes under
//     NoDevices, whiteout names used as directories or with nothing to
//     name (".wh.", ".wh..", ".wh..."), and more than MaxBytes of
//     uncompressed data (sparse entries count at their full size). A
//     leading "/" in a name means the layer root, as docker reads layers.
//     overlayfs's own xattrs (trusted.overlay.*, user.overlay.*) in a layer
//     are dropped. On error the target may hold a partial layer (the
//     caller throws it away), but nothing outside it was touched.
//   - Symlinks may point anywhere (they are resolved inside the container).
//   - Without root, owners are not set and xattrs the kernel refuses
//     (trusted.*, security.*) are skipped, as tar does.
//
// Writing a layer (all deterministic: names sorted, a directory before its
// contents and its whiteouts before its other entries, PAX format, numeric
// owners, mtimes in whole seconds, no atime/ctime, hardlinks for files
// sharing an inode, xattrs except overlayfs's own):
//   - Diff/DiffWith: the changes an overlayfs upper dir holds. The overlay
//     must be mounted without redirect_dir and metacopy (the kernel's
//     defaults here): an upper using them is refused, since its data
//     lives partly in the lowers.
//   - DiffDirs: the changes from one directory tree to another (commit
//     without overlayfs).
//   - Tar: a whole tree as it is (export, build outputs).
//   - Changes: docker-diff style A/C/D list of an overlayfs upper dir.
//   - NewGzipWriter: blocked gzip (independent 1 MiB members that say
//     their length), which any gzip reader reads and Decompress inflates
//     on all cores.
package layer

import (
	"io"
	"os"
	"runtime"
	"time"
)

// Options tune Apply.
type Options struct {
	// Overlay writes whiteouts in overlayfs form (0:0 char devices and the
	// trusted.overlay.opaque xattr) instead of removing the shadowed paths,
	// so the result can be stacked as an overlay lowerdir.
	Overlay bool
	// NoDevices refuses device nodes (e.g. when not running as root).
	// Fifos are still allowed, and so are whiteouts with Overlay.
	NoDevices bool
	// MaxBytes bounds the uncompressed size (decompression bombs); 0 = 64 GiB.
	MaxBytes int64
	// InRootSymlinks follows symlinks met in an entry's parent path the
	// way the container would see them, with dir as "/" (openat2
	// RESOLVE_IN_ROOT, so "..", and absolute targets, stay inside dir):
	// docker's semantics for extracting an archive into an existing
	// rootfs (ADD x.tar /). Without it such an entry is refused. The last
	// component of a name is never followed, in either mode.
	InRootSymlinks bool
	// PlainWhiteouts takes .wh. names as ordinary files, for a tar that is
	// not a layer (cp): else a file a container named .wh..wh..opq would
	// empty the directory it is copied into.
	PlainWhiteouts bool
	// HostCopy is for a tree from a container or image landing on the
	// host (cp out, with PlainWhiteouts too; build --output type=local):
	// device nodes are refused, and the files are the caller's, with no
	// setuid/setgid bits or security.*/trusted.* xattrs (capabilities),
	// whatever the tar says: else a host user could be handed a raw disk
	// node or a setuid-root shell.
	HostCopy bool
	// Sync flushes the target's file system (syncfs) before Apply returns,
	// so that a layer recorded as unpacked survives a power loss.
	Sync bool
}

// Apply extracts a layer (gzip, zstd or plain tar, detected) into dir and
// returns the number of uncompressed bytes read (the whole tar stream, so
// the caller can check it against a DiffID it hashed with a TeeReader on
// the decompressed side, or simply log it).
func Apply(dir string, r io.Reader, o Options) (int64, error) { return apply(dir, r, o) }

// ApplyAt is Apply into an open directory (left open): for a caller that
// resolved the target safely (inside a live container's rootfs, say) and
// must not have its path looked up again, when a symlink may be swapped in.
func ApplyAt(dir *os.File, r io.Reader, o Options) (int64, error) {
	n, err := applyAt(int(dir.Fd()), dir.Name(), r, o)
	runtime.KeepAlive(dir) // the fd stays open until applyAt is done with it
	return n, err
}

// DiffOptions tune the tar writers.
type DiffOptions struct {
	// SourceDateEpoch, when set, clamps every mtime to at most this time
	// (reproducible builds, SOURCE_DATE_EPOCH).
	SourceDateEpoch *time.Time
}

// Diff writes, as a tar, the changes of an overlayfs upper directory
// (whiteouts become .wh. entries, opaque dirs .wh..wh..opq).
func Diff(upper string, w io.Writer) error { return DiffWith(upper, w, DiffOptions{}) }

// DiffWith is Diff with options.
func DiffWith(upper string, w io.Writer, o DiffOptions) error {
	return writeDir(upper, w, o, overlayTree)
}

// DiffDirs writes, as a tar, what turns the tree lower into the tree
// upper: new and changed entries (by type, mode, owner, size, mtime,
// symlink target, xattrs), their parent directories, and .wh. entries for
// what upper no longer has.
func DiffDirs(lower, upper string, w io.Writer, o DiffOptions) error {
	return diffDirs(lower, upper, w, o)
}

// Tar writes the whole tree dir as a tar, every entry as it is (a 0:0 char
// device stays a device). The root directory itself has no entry.
func Tar(dir string, w io.Writer, o DiffOptions) error {
	return writeDir(dir, w, o, plainTree)
}

// ChangeKind is docker diff's letter: A(dded), C(hanged), D(eleted).
type ChangeKind byte

const (
	Added    ChangeKind = 'A'
	Modified ChangeKind = 'C'
	Deleted  ChangeKind = 'D'
)

// Change is one line of `berth diff`.
type Change struct {
	Kind ChangeKind
	Path string // absolute in the container, e.g. "/etc/hostname"
}

func (c Change) String() string { return string(c.Kind) + " " + c.Path }

// Changes lists an overlayfs upper dir's changes, sorted by path, parents
// before children. lowers (lowest first, as store.Snapshots returns them)
// tell a changed path (C) from an added one (A); with none given, every
// path in upper is A. A whiteout is D; the contents of a new directory
// are A.
func Changes(upper string, lowers ...string) ([]Change, error) { return changes(upper, lowers) }
