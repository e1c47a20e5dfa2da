package layer

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	defaultMaxBytes = 64 << 30
	whPrefix        = ".wh."
	whMetaPrefix    = ".wh..wh."
	whOpaque        = ".wh..wh..opq"
	// pathMax bounds entry names: the kernel's PATH_MAX, so a deep path can
	// not make us hold thousands of directory fds.
	pathMax = 4096
)

// errTooBig marks the decompression-bomb limit being hit.
var errTooBig = errors.New("layer too big")

// limitReader counts what is read and fails once more than max bytes came.
type limitReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.max {
		return n, errTooBig
	}
	return n, err
}

// dirMeta is what is set on a directory after all its entries are in:
// writing an entry changes its parent's mtime (and a read-only mode would
// stop a non-root apply from writing into it).
type dirMeta struct {
	comps        []string
	mode         uint32
	atime, mtime time.Time
}

type applier struct {
	o       Options
	root    int
	dirs    dirCache
	created map[string]struct{} // paths written by this layer
	later   []dirMeta
	isRoot  bool
	umask   uint32
	buf     []byte
}

// entryError names the offending entry.
func entryError(name string, err error) error {
	return fmt.Errorf("layer entry %q: %w", name, err)
}

func apply(dir string, r io.Reader, o Options) (int64, error) {
	root, err := unix.Open(dir, dirFlags, 0)
	if err != nil {
		return 0, fmt.Errorf("layer: open target %s: %w", dir, err)
	}
	defer unix.Close(root)
	return applyAt(root, dir, r, o)
}

// applyAt applies into the directory open as root (named dir in errors).
func applyAt(root int, dir string, r io.Reader, o Options) (int64, error) {
	if o.MaxBytes <= 0 {
		o.MaxBytes = defaultMaxBytes
	}
	dr, _, err := Decompress(r)
	if err != nil {
		return 0, fmt.Errorf("layer: %w", err)
	}
	defer dr.Close()
	lr := &limitReader{r: dr, max: o.MaxBytes}
	a := &applier{
		o:       o,
		root:    root,
		dirs:    dirCache{root: root, inRoot: o.InRootSymlinks},
		created: map[string]struct{}{},
		isRoot:  os.Geteuid() == 0,
		umask:   currentUmask(),
		buf:     make([]byte, readBufSize),
	}
	defer a.dirs.close()

	tr := tar.NewReader(lr)
	name := ""
	// Sparse entries expand holes without reading them: count the logical
	// sizes against the limit as well.
	var logical int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return lr.n, a.readError(name, lr, err)
		}
		name = hdr.Name
		if hdr.Size > o.MaxBytes-logical {
			return lr.n, a.readError(name, lr, errTooBig)
		}
		logical += max(hdr.Size, 0)
		if err := a.entry(hdr, tr); err != nil {
			if errors.Is(err, errTooBig) {
				return lr.n, a.readError(name, lr, err)
			}
			return lr.n, entryError(hdr.Name, err)
		}
	}
	if err := a.finishDirs(); err != nil {
		return lr.n, err
	}
	// Read the trailer and any padding so that the count covers the whole
	// stream and gzip's checksum is verified.
	if _, err := io.CopyBuffer(io.Discard, lr, a.buf); err != nil {
		return lr.n, a.readError("", lr, err)
	}
	if o.Sync {
		if err := unix.Syncfs(root); err != nil {
			return lr.n, fmt.Errorf("layer: syncfs %s: %w", dir, err)
		}
	}
	return lr.n, nil
}

func (a *applier) readError(last string, lr *limitReader, err error) error {
	if errors.Is(err, errTooBig) {
		where := ""
		if last != "" {
			where = fmt.Sprintf(" (at entry %q)", last)
		}
		return fmt.Errorf("layer: more than %d bytes uncompressed%s: refusing a possible decompression bomb", lr.max, where)
	}
	if last != "" {
		return fmt.Errorf("layer: reading tar after entry %q: %w", last, err)
	}
	return fmt.Errorf("layer: reading tar: %w", err)
}

// cleanName turns an entry name into its path components below the root.
// A leading "/" means the root (as docker reads layers); a name that still
// climbs out after cleaning is refused. The root itself is no components.
func cleanName(name string) ([]string, error) {
	if name == "" {
		return nil, errors.New("empty name")
	}
	if len(name) > pathMax {
		return nil, fmt.Errorf("name longer than %d bytes", pathMax)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return nil, errors.New("name contains a NUL byte")
	}
	p := path.Clean(strings.TrimLeft(name, "/"))
	if p == "." || p == "" {
		return nil, nil
	}
	if p == ".." || strings.HasPrefix(p, "../") {
		return nil, errors.New("path escapes the layer root")
	}
	return strings.Split(p, "/"), nil
}

func (a *applier) entry(hdr *tar.Header, tr *tar.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // PAX defaults for later entries; archive/tar applies none we use
	}
	comps, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if a.o.HostCopy {
		if hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock {
			return errors.New("device nodes are not copied out of a container")
		}
		// The caller's files, as docker cp's: a container must not hand a
		// host user a setuid-root binary or a file-capability one.
		hdr.Uid, hdr.Gid = os.Getuid(), os.Getgid()
		hdr.Mode &^= 0o6000
		for k := range hdr.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok && (strings.HasPrefix(x, "security.") || strings.HasPrefix(x, "trusted.")) {
				delete(hdr.PAXRecords, k)
			}
		}
	}
	// Tar ids are 64-bit, uid_t is 32: chown would truncate 1<<32 to root
	// (and -1 means "unchanged", the applier's root), so a setuid file the
	// tar lists as unprivileged would land setuid root.
	if !validID(hdr.Uid) || !validID(hdr.Gid) {
		return fmt.Errorf("owner %d:%d out of range", hdr.Uid, hdr.Gid)
	}
	if len(comps) == 0 {
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("the layer root must be a directory")
		}
		return a.rootDir(hdr)
	}
	plain := a.o.PlainWhiteouts
	for _, c := range comps[:len(comps)-1] {
		if strings.HasPrefix(c, whPrefix) && !plain {
			return fmt.Errorf("parent %q is a whiteout name", c)
		}
	}
	base := comps[len(comps)-1]
	parentComps := comps[:len(comps)-1]
	if strings.HasPrefix(base, whPrefix) && !plain {
		return a.whiteout(hdr, parentComps, base)
	}
	if (hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock) && a.o.NoDevices {
		return errors.New("device nodes are not allowed here")
	}
	pfd, err := a.dirs.dir(parentComps, true, a.markCreated)
	if err != nil {
		return parentError(err)
	}
	rel := strings.Join(comps, "/")
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = a.mkdir(pfd, comps, hdr)
	case tar.TypeReg, '\x00', tar.TypeGNUSparse, tar.TypeCont:
		err = a.regular(pfd, comps, hdr, tr)
	case tar.TypeSymlink:
		err = a.replace(pfd, comps, func() error { return unix.Symlinkat(hdr.Linkname, pfd, base) })
		if err == nil {
			err = a.meta(pfd, base, -1, hdr, false)
		}
	case tar.TypeLink:
		err = a.hardlink(pfd, comps, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode = unix.S_IFCHR
		case tar.TypeBlock:
			mode = unix.S_IFBLK
		}
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		err = a.replace(pfd, comps, func() error { return unix.Mknodat(pfd, base, mode|uint32(hdr.Mode)&0o777, dev) })
		if err == nil {
			err = a.meta(pfd, base, -1, hdr, true)
		}
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	if err != nil {
		return err
	}
	a.created[rel] = struct{}{}
	return nil
}

// validID says whether id is a uid or gid chown takes as itself.
func validID(id int) bool { return id >= 0 && id < 1<<32-1 }

func (a *applier) markCreated(rel string) { a.created[rel] = struct{}{} }

// parentError tells a symlink parent apart from other failures.
func parentError(err error) error {
	if errors.Is(err, errSymlinkParent) {
		return fmt.Errorf("refusing to write through a symlink: %w", err)
	}
	return err
}

// replace makes a new entry with create, first removing what is in its way
// (docker's rule: anything but a directory over a directory is replaced).
func (a *applier) replace(pfd int, comps []string, create func() error) error {
	err := create()
	if err != unix.EEXIST {
		return err
	}
	if err := removeAllAt(pfd, comps[len(comps)-1]); err != nil {
		return err
	}
	a.dirs.forget(comps)
	return create()
}

func (a *applier) mkdir(pfd int, comps []string, hdr *tar.Header) error {
	base := comps[len(comps)-1]
	mode := uint32(hdr.Mode) & 0o7777
	err := unix.Mkdirat(pfd, base, 0o700)
	if err == unix.EEXIST {
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := removeAllAt(pfd, base); err != nil {
				return err
			}
			a.dirs.forget(comps)
			err = unix.Mkdirat(pfd, base, 0o700)
		} else {
			err = nil
		}
	}
	if err != nil {
		return err
	}
	if err := a.dirMeta(pfd, base, comps, hdr, mode); err != nil {
		return err
	}
	a.later = append(a.later, dirMeta{comps: comps, mode: mode, atime: atime(hdr), mtime: hdr.ModTime})
	return nil
}

func (a *applier) rootDir(hdr *tar.Header) error {
	mode := uint32(hdr.Mode) & 0o7777
	if err := a.dirMeta(a.root, ".", nil, hdr, mode); err != nil {
		return err
	}
	a.later = append(a.later, dirMeta{mode: mode, atime: atime(hdr), mtime: hdr.ModTime})
	return nil
}

// dirMeta sets a directory's owner, xattrs and a writable mode now; the
// final mode and times come in finishDirs.
func (a *applier) dirMeta(pfd int, base string, comps []string, hdr *tar.Header, mode uint32) error {
	fd, err := openDir(pfd, base)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if a.isRoot {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	} else {
		mode |= 0o700
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return err
	}
	return a.xattrs(fd, "", hdr)
}

func (a *applier) regular(pfd int, comps []string, hdr *tar.Header, tr *tar.Reader) error {
	base := comps[len(comps)-1]
	mode := uint32(hdr.Mode) & 0o7777
	perm := mode & 0o777
	var fd int
	err := a.replace(pfd, comps, func() (err error) {
		fd, err = unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
		return err
	})
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := a.copyData(fd, hdr, tr); err != nil {
		return err
	}
	if a.isRoot {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	// open applied the umask, and chown clears set-id bits: chmod unless
	// open already made the mode exact.
	if mode&0o7000 != 0 || perm&a.umask != 0 {
		if err := unix.Fchmod(fd, mode); err != nil {
			return err
		}
	}
	if err := a.xattrs(fd, "", hdr); err != nil {
		return err
	}
	return unix.UtimesNanoAt(pfd, base, times(hdr), unix.AT_SYMLINK_NOFOLLOW)
}

func (a *applier) copyData(fd int, hdr *tar.Header, tr *tar.Reader) error {
	sparse := isSparse(hdr)
	var off int64
	for {
		n, err := tr.Read(a.buf)
		if n > 0 {
			if werr := writeAt(fd, a.buf[:n], off, sparse); werr != nil {
				return werr
			}
			off += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if sparse {
		return unix.Ftruncate(fd, off) // a trailing hole
	}
	return nil
}

var zeroBlock [4096]byte

// writeAt writes b at off; sparse leaves all-zero blocks as holes (the tar
// reader gives a sparse entry's holes as zeros).
func writeAt(fd int, b []byte, off int64, sparse bool) error {
	for len(b) > 0 {
		k := len(b)
		if sparse {
			k = min(k, len(zeroBlock))
			if bytes.Equal(b[:k], zeroBlock[:k]) {
				b, off = b[k:], off+int64(k)
				continue
			}
		}
		n, err := unix.Pwrite(fd, b[:k], off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

func (a *applier) hardlink(pfd int, comps []string, hdr *tar.Header) error {
	tcomps, err := cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
	}
	if len(tcomps) == 0 {
		return fmt.Errorf("hardlink target %q is the layer root", hdr.Linkname)
	}
	// The target's directory is walked without the cache (it is usually
	// elsewhere in the tree) and without following symlinks.
	var tdir int
	if a.o.InRootSymlinks && len(tcomps) > 1 {
		tdir, err = openInRoot(a.root, strings.Join(tcomps[:len(tcomps)-1], "/"))
	} else {
		tdir, err = walkDir(a.root, tcomps[:len(tcomps)-1])
	}
	if err != nil {
		return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, parentError(err))
	}
	defer unix.Close(tdir)
	tbase := tcomps[len(tcomps)-1]
	var st unix.Stat_t
	if err := unix.Fstatat(tdir, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return fmt.Errorf("hardlink target %q does not exist in the layer", hdr.Linkname)
		}
		return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("hardlink target %q is a directory", hdr.Linkname)
	}
	if strings.Join(tcomps, "/") == strings.Join(comps, "/") {
		return nil // a link to itself changes nothing
	}
	base := comps[len(comps)-1]
	return a.replace(pfd, comps, func() error { return unix.Linkat(tdir, tbase, pfd, base, 0) })
}

// walkDir opens the directory comps below root, refusing symlinks; the
// caller closes the fd.
func walkDir(root int, comps []string) (int, error) {
	fd, err := unix.Openat(root, ".", dirFlags, 0)
	if err != nil {
		return -1, err
	}
	for i, c := range comps {
		next, err := openDir(fd, c)
		unix.Close(fd)
		if err != nil {
			return -1, fmt.Errorf("%s: %w", strings.Join(comps[:i+1], "/"), err)
		}
		fd = next
	}
	return fd, nil
}

// meta sets owner, mode, xattrs and times on a non-directory entry that is
// not opened (a symlink or a device); chmod is only for nodes (symlinks
// have no mode of their own on Linux).
func (a *applier) meta(pfd int, base string, fd int, hdr *tar.Header, chmod bool) error {
	if a.isRoot {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	if chmod {
		// The node was just made by us in a directory fd we hold: the
		// name can only be that node.
		if err := unix.Fchmodat(pfd, base, uint32(hdr.Mode)&0o7777, 0); err != nil {
			return err
		}
	}
	if err := a.xattrs(-1, procPath(pfd, base), hdr); err != nil {
		return err
	}
	return unix.UtimesNanoAt(pfd, base, times(hdr), unix.AT_SYMLINK_NOFOLLOW)
}

// xattrs sets the SCHILY.xattr.* records of hdr on fd, or on path when fd
// is -1. overlayfs's own attributes are never taken from a layer: they
// would steer the overlay's lookups.
func (a *applier) xattrs(fd int, p string, hdr *tar.Header) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.") {
			continue
		}
		var err error
		if fd >= 0 {
			err = unix.Fsetxattr(fd, name, []byte(v), 0)
		} else {
			err = unix.Lsetxattr(p, name, []byte(v), 0)
		}
		if err == nil {
			continue
		}
		// Without root, trusted.* and security.* cannot be set; a file
		// system without xattrs cannot hold any: keep going, as tar does.
		if err == unix.ENOTSUP || (!a.isRoot && err == unix.EPERM) {
			continue
		}
		return fmt.Errorf("setxattr %s: %w", name, err)
	}
	return nil
}

// whiteout applies a .wh. entry in the directory parentComps.
func (a *applier) whiteout(hdr *tar.Header, parentComps []string, base string) error {
	if hdr.Typeflag == tar.TypeDir {
		return errors.New("a whiteout must not be a directory")
	}
	opaque := base == whOpaque
	if !opaque && strings.HasPrefix(base, whMetaPrefix) {
		return nil // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): no meaning here
	}
	name := strings.TrimPrefix(base, whPrefix)
	if !opaque && (name == "" || name == "." || name == "..") {
		return fmt.Errorf("whiteout of %q is not a valid name", name)
	}
	// An overlay lowerdir needs the directory to hold the whiteout; merged
	// onto a tree, a whiteout in a directory that is not there has nothing
	// to remove and makes no directory.
	pfd, err := a.dirs.dir(parentComps, a.o.Overlay, a.markCreated)
	if err != nil {
		if !a.o.Overlay && errors.Is(err, unix.ENOENT) {
			return nil
		}
		return parentError(err)
	}
	prel := strings.Join(parentComps, "/")
	if opaque {
		if a.o.Overlay {
			if err := unix.Fsetxattr(pfd, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
				return fmt.Errorf("marking %q opaque: %w", prel, err)
			}
			return nil
		}
		return emptyDirAt(pfd, prel, a.isCreated)
	}
	rel := name
	if prel != "" {
		rel = prel + "/" + name
	}
	if a.isCreated(rel) {
		return nil // this layer's own entry wins over its whiteout
	}
	comps := append(append([]string{}, parentComps...), name)
	if !a.o.Overlay {
		if err := removeAllAt(pfd, name); err != nil {
			return err
		}
		a.dirs.forget(comps)
		return nil
	}
	err = a.replace(pfd, comps, func() error { return unix.Mknodat(pfd, name, unix.S_IFCHR, 0) })
	if err == nil {
		err = unix.UtimesNanoAt(pfd, name, times(hdr), unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		return fmt.Errorf("whiteout device %q: %w", rel, err)
	}
	return nil
}

func (a *applier) isCreated(rel string) bool {
	_, ok := a.created[rel]
	return ok
}

// finishDirs sets the final modes and times of the layer's directories,
// now that nothing more is written into them.
func (a *applier) finishDirs() error {
	// When a dir is listed twice the later entry wins; then deepest
	// first: a parent's final mode (say 0555, or 0 without root) must not
	// stop us reaching its children.
	done := make(map[string]struct{}, len(a.later))
	var todo []dirMeta
	for i := len(a.later) - 1; i >= 0; i-- {
		key := strings.Join(a.later[i].comps, "/")
		if _, ok := done[key]; !ok {
			done[key] = struct{}{}
			todo = append(todo, a.later[i])
		}
	}
	slices.Reverse(todo) // back to tar order, which keeps the dir cache warm
	sort.SliceStable(todo, func(i, j int) bool { return len(todo[i].comps) > len(todo[j].comps) })
	for _, d := range todo {
		pfd, base := a.root, "."
		if len(d.comps) > 0 {
			fd, err := a.dirs.dir(d.comps[:len(d.comps)-1], false, nil)
			if err != nil {
				continue // replaced later in the layer (e.g. by a symlink)
			}
			pfd, base = fd, d.comps[len(d.comps)-1]
		}
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		if !a.isRoot {
			if err := unix.Fchmodat(pfd, base, d.mode, 0); err != nil {
				return entryError(strings.Join(d.comps, "/"), err)
			}
		}
		if err := unix.UtimesNanoAt(pfd, base, []unix.Timespec{timespec(d.atime), timespec(d.mtime)}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return entryError(strings.Join(d.comps, "/"), err)
		}
	}
	return nil
}

func atime(hdr *tar.Header) time.Time {
	if hdr.AccessTime.IsZero() {
		return hdr.ModTime
	}
	return hdr.AccessTime
}

func times(hdr *tar.Header) []unix.Timespec {
	return []unix.Timespec{timespec(atime(hdr)), timespec(hdr.ModTime)}
}

// timespec converts without UnixNano, which overflows outside 1678..2262.
func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// currentUmask reads the umask without changing it (umask(2) would, for
// the whole process, racing other goroutines).
func currentUmask() uint32 {
	b, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				var m uint32
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%o", &m); err == nil {
					return m
				}
			}
		}
	}
	return 0o777 // unknown: always chmod
}
