package layer

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// walkMode says how a tree's special entries are read.
type walkMode int

const (
	plainTree   walkMode = iota // every entry is itself
	overlayTree                 // an overlayfs upper: 0:0 char devices and opaque dirs are whiteouts
)

// tarWriter writes tree entries as deterministic PAX tar entries.
type tarWriter struct {
	tw     *tar.Writer
	bw     *bufio.Writer
	o      DiffOptions
	inodes map[[2]uint64]string // (dev, ino) of a written file -> its name
	buf    []byte
	upper  bool // reading an overlayfs upper dir
}

func newTarWriter(w io.Writer, o DiffOptions) *tarWriter {
	bw := bufio.NewWriterSize(w, readBufSize)
	return &tarWriter{tw: tar.NewWriter(bw), bw: bw, o: o, inodes: map[[2]uint64]string{}, buf: make([]byte, readBufSize)}
}

func (t *tarWriter) close() error {
	if err := t.tw.Close(); err != nil {
		return err
	}
	return t.bw.Flush()
}

func (t *tarWriter) mtime(sec int64) time.Time {
	m := time.Unix(sec, 0)
	if e := t.o.SourceDateEpoch; e != nil && m.After(*e) {
		m = e.Truncate(time.Second)
	}
	return m
}

// whiteout writes the .wh. entry removing rel (or, for an opaque dir,
// rel/.wh..wh..opq).
func (t *tarWriter) whiteout(dirRel, name string, mtimeSec int64) error {
	p := whPrefix + name
	if dirRel != "" {
		p = dirRel + "/" + p
	}
	return t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: 0o600, ModTime: t.mtime(mtimeSec), Format: tar.FormatPAX})
}

// entry writes the entry name of dirfd (rel is its path in the tar).
func (t *tarWriter) entry(dirfd int, name, rel string, st *unix.Stat_t) error {
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: t.mtime(st.Mtim.Sec),
		Format:  tar.FormatPAX,
	}
	fd := -1
	defer func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}()
	var err error
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
		if fd, err = openDir(dirfd, name); err != nil {
			return err
		}
	case unix.S_IFREG:
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := t.inodes[key]; ok && st.Nlink > 1 {
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
			return t.tw.WriteHeader(hdr)
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
		if fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err != nil {
			return err
		}
		var fst unix.Stat_t
		if err := unix.Fstat(fd, &fst); err != nil {
			return err
		}
		if fst.Ino != st.Ino || fst.Mode&unix.S_IFMT != unix.S_IFREG {
			return errors.New("changed while being read")
		}
		if st.Nlink > 1 {
			t.inodes[key] = rel
		}
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		if hdr.Linkname, err = readlinkAt(dirfd, name); err != nil {
			return err
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil // sockets are not kept in layers
	}
	xa, err := listXattrs(fd, procPath(dirfd, name))
	if err != nil {
		return err
	}
	for k, v := range xa {
		if strings.HasPrefix(k, "trusted.overlay.") || strings.HasPrefix(k, "user.overlay.") {
			// A redirected dir or a metadata-only copy-up keeps its data
			// in a lower layer: a diff of the upper alone would lose it.
			if t.upper && (strings.HasSuffix(k, ".redirect") || strings.HasSuffix(k, ".metacopy")) {
				return fmt.Errorf("overlayfs %s is set: mount the overlay with redirect_dir=off,metacopy=off to diff its upper dir", k)
			}
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+k] = string(v)
	}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeReg {
		return t.copyFile(fd, st.Size)
	}
	return nil
}

func (t *tarWriter) copyFile(fd int, size int64) error {
	for size > 0 {
		b := t.buf
		if int64(len(b)) > size {
			b = b[:size]
		}
		n, err := unix.Read(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New("file shrank while being read")
		}
		if _, err := t.tw.Write(b[:n]); err != nil {
			return err
		}
		size -= int64(n)
	}
	return nil
}

func readlinkAt(dirfd int, name string) (string, error) {
	for n := 256; ; n *= 2 {
		b := make([]byte, n)
		k, err := unix.Readlinkat(dirfd, name, b)
		if err != nil {
			return "", err
		}
		if k < n {
			return string(b[:k]), nil
		}
	}
}

// isWhiteoutDev tells an overlayfs whiteout: a 0:0 character device.
func isWhiteoutDev(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// isOpaque tells an overlayfs opaque directory.
func isOpaque(fd int) bool {
	b := make([]byte, 8)
	for _, name := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		if n, err := unix.Fgetxattr(fd, name, b); err == nil && string(b[:n]) == "y" {
			return true
		}
	}
	return false
}

type dirent struct {
	name string
	st   unix.Stat_t
}

// readDir lists dirfd sorted by name, with each entry's lstat.
func readDir(dirfd int) ([]dirent, error) {
	names, err := readDirNames(dirfd)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]dirent, 0, len(names))
	for _, n := range names {
		var d dirent
		d.name = n
		if err := unix.Fstatat(dirfd, n, &d.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue
			}
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// writeTree writes what dirfd holds (rel is its tar path, "" for the
// root), directories before their contents, names sorted, whiteouts of a
// directory before its other entries.
func (t *tarWriter) writeTree(dirfd int, rel string, mode walkMode) error {
	ents, err := readDir(dirfd)
	if err != nil {
		return fmt.Errorf("%s: %w", orDot(rel), err)
	}
	if mode == overlayTree {
		for _, e := range ents {
			if isWhiteoutDev(&e.st) {
				if err := t.whiteout(rel, e.name, e.st.Mtim.Sec); err != nil {
					return err
				}
			}
		}
	}
	for _, e := range ents {
		p := join(rel, e.name)
		if mode == overlayTree && isWhiteoutDev(&e.st) {
			continue
		}
		if err := t.entry(dirfd, e.name, p, &e.st); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if e.st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		fd, err := openDir(dirfd, e.name)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if mode == overlayTree && isOpaque(fd) {
			err = t.whiteout(p, whOpaque[len(whPrefix):], e.st.Mtim.Sec)
		}
		if err == nil {
			err = t.writeTree(fd, p, mode)
		}
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	return nil
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func orDot(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

func openRoot(dir string) (int, error) {
	fd, err := unix.Open(dir, dirFlags, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return fd, nil
}

func writeDir(dir string, w io.Writer, o DiffOptions, mode walkMode) error {
	root, err := openRoot(dir)
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	defer unix.Close(root)
	t := newTarWriter(w, o)
	t.upper = mode == overlayTree
	if err := t.writeTree(root, "", mode); err != nil {
		return fmt.Errorf("layer: %s: %w", dir, err)
	}
	return t.close()
}

// diffDirs writes the changes that turn lower into upper.
type differ struct {
	t       *tarWriter
	pending []pendingDir // upper dirs whose header waits for a first change below them
}

type pendingDir struct {
	dirfd   int // parent's fd, valid while the walk is below it
	name    string
	rel     string
	st      unix.Stat_t
	written bool
}

func (d *differ) flushPending() error {
	for i := range d.pending {
		p := &d.pending[i]
		if p.written {
			continue
		}
		if err := d.t.entry(p.dirfd, p.name, p.rel, &p.st); err != nil {
			return fmt.Errorf("%s: %w", p.rel, err)
		}
		p.written = true
	}
	return nil
}

func sameEntry(a, b *unix.Stat_t) bool {
	return a.Mode == b.Mode && a.Uid == b.Uid && a.Gid == b.Gid && a.Rdev == b.Rdev &&
		a.Mtim == b.Mtim && (a.Mode&unix.S_IFMT == unix.S_IFDIR || a.Size == b.Size)
}

func (d *differ) walk(lowerfd, upperfd int, rel string) error {
	lents, err := readDir(lowerfd)
	if err != nil {
		return fmt.Errorf("lower %s: %w", orDot(rel), err)
	}
	uents, err := readDir(upperfd)
	if err != nil {
		return fmt.Errorf("%s: %w", orDot(rel), err)
	}
	inUpper := make(map[string]*unix.Stat_t, len(uents))
	for i := range uents {
		inUpper[uents[i].name] = &uents[i].st
	}
	lower := make(map[string]*unix.Stat_t, len(lents))
	for i := range lents {
		lower[lents[i].name] = &lents[i].st
		if _, ok := inUpper[lents[i].name]; !ok {
			if err := d.flushPending(); err != nil {
				return err
			}
			if err := d.t.whiteout(rel, lents[i].name, lents[i].st.Mtim.Sec); err != nil {
				return err
			}
		}
	}
	for i := range uents {
		e := &uents[i]
		p := join(rel, e.name)
		l, inLower := lower[e.name]
		isDir := e.st.Mode&unix.S_IFMT == unix.S_IFDIR
		if inLower && isDir && l.Mode&unix.S_IFMT == unix.S_IFDIR {
			fd, err := openDir(upperfd, e.name)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			lfd, err := openDir(lowerfd, e.name)
			if err != nil {
				unix.Close(fd)
				return fmt.Errorf("lower %s: %w", p, err)
			}
			d.pending = append(d.pending, pendingDir{dirfd: upperfd, name: e.name, rel: p, st: e.st})
			if !sameEntry(l, &e.st) || !sameXattrs(lfd, fd) {
				err = d.flushPending()
			}
			if err == nil {
				err = d.walk(lfd, fd, p)
			}
			d.pending = d.pending[:len(d.pending)-1]
			unix.Close(fd)
			unix.Close(lfd)
			if err != nil {
				return err
			}
			continue
		}
		if inLower && !isDir && sameEntry(l, &e.st) && sameContentMeta(lowerfd, upperfd, e.name, l) {
			continue
		}
		// New or changed: the entry as a whole (a directory with all it
		// holds; a type change replaces the old entry on apply).
		if err := d.flushPending(); err != nil {
			return err
		}
		if err := d.t.entry(upperfd, e.name, p, &e.st); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if isDir {
			fd, err := openDir(upperfd, e.name)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			err = d.t.writeTree(fd, p, plainTree)
			unix.Close(fd)
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// sameContentMeta compares what stat does not cover: a symlink's target
// and the xattrs.
func sameContentMeta(lowerfd, upperfd int, name string, st *unix.Stat_t) bool {
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		a, err1 := readlinkAt(lowerfd, name)
		b, err2 := readlinkAt(upperfd, name)
		if err1 != nil || err2 != nil || a != b {
			return false
		}
	}
	a, err1 := listXattrs(-1, procPath(lowerfd, name))
	b, err2 := listXattrs(-1, procPath(upperfd, name))
	return err1 == nil && err2 == nil && equalXattrs(a, b)
}

func sameXattrs(lfd, ufd int) bool {
	a, err1 := listXattrs(lfd, "")
	b, err2 := listXattrs(ufd, "")
	return err1 == nil && err2 == nil && equalXattrs(a, b)
}

func equalXattrs(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || string(v) != string(w) {
			return false
		}
	}
	return true
}

func diffDirs(lower, upper string, w io.Writer, o DiffOptions) error {
	lfd, err := openRoot(lower)
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	defer unix.Close(lfd)
	ufd, err := openRoot(upper)
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	defer unix.Close(ufd)
	d := &differ{t: newTarWriter(w, o)}
	if err := d.walk(lfd, ufd, ""); err != nil {
		return fmt.Errorf("layer: diff %s -> %s: %w", lower, upper, err)
	}
	return d.t.close()
}

// changes lists an overlay upper dir's changes against its lowers (lowest
// first).
func changes(upper string, lowers []string) ([]Change, error) {
	ufd, err := openRoot(upper)
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	defer unix.Close(ufd)
	var lfds []int
	defer func() {
		for _, fd := range lfds {
			unix.Close(fd)
		}
	}()
	for _, l := range lowers {
		fd, err := openRoot(l)
		if err != nil {
			return nil, fmt.Errorf("layer: %w", err)
		}
		lfds = append(lfds, fd)
	}
	// inLower tells whether rel is visible in the lower stack: the topmost
	// lower holding it (as a file or a whiteout) decides.
	inLower := func(rel string) bool {
		comps := strings.Split(rel, "/")
		for i := len(lfds) - 1; i >= 0; i-- {
			fd, err := walkDir(lfds[i], comps[:len(comps)-1])
			if err != nil {
				continue
			}
			var st unix.Stat_t
			err = unix.Fstatat(fd, comps[len(comps)-1], &st, unix.AT_SYMLINK_NOFOLLOW)
			unix.Close(fd)
			if err == nil {
				return !isWhiteoutDev(&st)
			}
		}
		return false
	}
	var out []Change
	var walk func(fd int, rel string, parentNew bool) error
	walk = func(fd int, rel string, parentNew bool) error {
		ents, err := readDir(fd)
		if err != nil {
			return fmt.Errorf("%s: %w", orDot(rel), err)
		}
		for _, e := range ents {
			p := join(rel, e.name)
			if isWhiteoutDev(&e.st) {
				if !parentNew && inLower(p) {
					out = append(out, Change{Kind: Deleted, Path: "/" + p})
				}
				continue
			}
			isNew := parentNew || !inLower(p)
			kind := Modified
			if isNew {
				kind = Added
			}
			out = append(out, Change{Kind: kind, Path: "/" + p})
			if e.st.Mode&unix.S_IFMT == unix.S_IFDIR {
				cfd, err := openDir(fd, e.name)
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				err = walk(cfd, p, isNew)
				unix.Close(cfd)
				if err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(ufd, "", false); err != nil {
		return nil, fmt.Errorf("layer: changes of %s: %w", upper, err)
	}
	return out, nil
}
