package build

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fsView is a read-only merged view of stacked directories, as overlayfs
// would show them (top layer wins, 0:0 char devices are whiteouts,
// trusted.overlay.opaque=y hides lower layers). A single directory (the
// build context) is the degenerate case. It lets a build read a stage's
// files without mounting anything, so COPY-only builds need no root.
type fsView struct {
	layers []string // lowest first
}

var errWhiteout = errors.New("whiteout")

func isWhiteout(fi fs.FileInfo) bool {
	if fi.Mode()&fs.ModeCharDevice == 0 || fi.Mode()&fs.ModeDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Rdev == 0
}

func isOpaque(p string) bool {
	buf := make([]byte, 2)
	n, err := unix.Lgetxattr(p, "trusted.overlay.opaque", buf)
	return err == nil && n == 1 && buf[0] == 'y'
}

// find returns the host path and info of the clean, slash-separated
// relative path rel ("" is the root) without following a final symlink.
// Intermediate components must be directories in the merged view (callers
// resolve symlinks with resolve first).
func (v *fsView) find(rel string) (string, fs.FileInfo, error) {
	parts := splitRel(rel)
	for i := len(v.layers) - 1; i >= 0; i-- {
		top := v.layers[i]
		p, fi, stop, err := lookupInLayer(top, parts)
		if err == nil {
			return p, fi, nil
		}
		if stop {
			break
		}
	}
	return "", nil, &fs.PathError{Op: "lstat", Path: "/" + rel, Err: fs.ErrNotExist}
}

// lookupInLayer looks parts up in one layer; stop says lower layers must
// not be consulted (a whiteout, an opaque dir or a non-dir on the way).
func lookupInLayer(top string, parts []string) (string, fs.FileInfo, bool, error) {
	cur := top
	for i, name := range parts {
		cur = filepath.Join(cur, name)
		fi, err := os.Lstat(cur)
		if err != nil {
			return "", nil, false, err
		}
		if isWhiteout(fi) {
			return "", nil, true, errWhiteout
		}
		if i == len(parts)-1 {
			return cur, fi, false, nil
		}
		if !fi.IsDir() {
			return "", nil, true, fs.ErrNotExist
		}
		if isOpaque(cur) {
			// Deeper lookups fall through only within this layer.
			p, fi, _, err := lookupInLayer(cur, parts[i+1:])
			return p, fi, true, err
		}
	}
	fi, err := os.Lstat(top)
	return top, fi, false, err
}

func splitRel(rel string) []string {
	rel = strings.Trim(path.Clean("/"+rel), "/")
	if rel == "" {
		return nil
	}
	return strings.Split(rel, "/")
}

// Lstat reports the merged entry at rel.
func (v *fsView) Lstat(rel string) (string, fs.FileInfo, error) {
	if len(v.layers) == 0 {
		if len(splitRel(rel)) == 0 {
			return "", rootInfo{}, nil
		}
		return "", nil, &fs.PathError{Op: "lstat", Path: "/" + rel, Err: fs.ErrNotExist}
	}
	return v.find(rel)
}

// ReadDir lists the merged names of directory rel, sorted.
func (v *fsView) ReadDir(rel string) ([]string, error) {
	parts := splitRel(rel)
	seen := map[string]bool{}
	var names []string
	for i := len(v.layers) - 1; i >= 0; i-- {
		p, fi, stop, err := lookupInLayer(v.layers[i], parts)
		if err != nil {
			if stop {
				break
			}
			continue
		}
		if !fi.IsDir() {
			break
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if seen[e.Name()] {
				continue
			}
			seen[e.Name()] = true
			if e.Type()&fs.ModeCharDevice != 0 {
				if fi, err := e.Info(); err == nil && isWhiteout(fi) {
					continue
				}
			}
			names = append(names, e.Name())
		}
		if stop || isOpaque(p) {
			break
		}
	}
	sort.Strings(names)
	return names, nil
}

// resolve follows symlinks in rel (every component, the last one too when
// followLast) inside the view: an absolute target restarts at the view's
// root and ".." never climbs above it, as in a chroot. escaped reports
// whether a symlink tried to leave the root (the build context refuses it).
func (v *fsView) resolve(rel string, followLast bool) (string, bool, error) {
	parts := splitRel(rel)
	var out []string
	escaped := false
	for n := 0; len(parts) > 0; {
		name := parts[0]
		parts = parts[1:]
		if name == ".." {
			if len(out) == 0 {
				escaped = true
			} else {
				out = out[:len(out)-1]
			}
			continue
		}
		out = append(out, name)
		if len(parts) == 0 && !followLast {
			break
		}
		p, fi, err := v.Lstat(strings.Join(out, "/"))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				// The rest does not exist: keep it lexically.
				out = append(out, parts...)
				return cleanJoin(out), escaped, nil
			}
			return "", escaped, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		if n++; n > 255 {
			return "", escaped, &fs.PathError{Op: "resolve", Path: "/" + rel, Err: syscall.ELOOP}
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", escaped, err
		}
		out = out[:len(out)-1]
		if path.IsAbs(target) {
			out = nil
		}
		parts = append(strings.Split(strings.Trim(target, "/"), "/"), parts...)
	}
	return cleanJoin(out), escaped, nil
}

func cleanJoin(parts []string) string {
	return strings.Trim(path.Clean("/"+strings.Join(parts, "/")), "/")
}

// ReadFile reads rel, following symlinks inside the view.
func (v *fsView) ReadFile(rel string) ([]byte, error) {
	r, _, err := v.resolve(rel, true)
	if err != nil {
		return nil, err
	}
	p, fi, err := v.Lstat(r)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: "/" + rel, Err: syscall.EINVAL}
	}
	return os.ReadFile(p)
}

// rootInfo describes the root of an empty (scratch) view.
type rootInfo struct{}

func (rootInfo) Name() string       { return "/" }
func (rootInfo) Size() int64        { return 0 }
func (rootInfo) Mode() fs.FileMode  { return fs.ModeDir | 0o755 }
func (rootInfo) ModTime() time.Time { return time.Time{} }
func (rootInfo) IsDir() bool        { return true }
func (rootInfo) Sys() any           { return nil }
