package build

import (
	"archive/tar"
	"bufio"
	"compress/bzip2"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/patternmatcher"
	digest "github.com/opencontainers/go-digest"
)

// copySpec is a COPY or ADD after expansion.
type copySpec struct {
	instructions.SourcesAndDest
	from, chown, chmod, checksum string
	link, add, unpack, parents   bool
	excludes                     []string
}

// copyEntry is one path the COPY/ADD layer will hold.
type copyEntry struct {
	dst     string // clean path in the image, no leading slash
	host    string // host file to read (regular files and archives)
	data    []byte // inline content (heredoc)
	hasData bool
	mode    fs.FileMode // type and permission bits
	uid     int
	gid     int
	size    int64
	mtime   time.Time
	link    string // symlink target, or hardlink target (dst of another entry)
	hard    bool
	archive bool // ADD: extract this tar into dst (a directory)
	mkdir   bool // only make sure directory dst exists
}

// copySource is where a COPY reads from.
type copySource struct {
	view    *fsView
	ctx     *buildContext // set when reading the build context
	keepIDs bool          // keep owners (stages, images); the context's become 0:0
	what    string        // for messages: "the build context", "stage build"
}

func (st *state) copy(line int, text string, sp copySpec) error {
	b := st.s.b
	fail := func(err error) error { return stepErr(b.df.name, line, text, err) }
	if sp.parents {
		return fail(errors.New("--parents is not supported"))
	}
	if sp.checksum != "" && (!sp.add || len(sp.SourcePaths) != 1 || !isURL(sp.SourcePaths[0])) {
		return fail(errors.New("--checksum requires ADD with one http(s) source"))
	}
	var chmod *fs.FileMode
	if sp.chmod != "" {
		m, err := strconv.ParseUint(sp.chmod, 8, 32)
		if err != nil || m > 0o7777 {
			return fail(fmt.Errorf("invalid --chmod %q: want an octal mode up to 7777", sp.chmod))
		}
		fm := octalToMode(uint32(m))
		chmod = &fm
	}
	if sp.link && sp.chown != "" && !numericOwner(sp.chown) {
		return fail(fmt.Errorf("--chown=%s: names can't be resolved with --link, use numeric uid[:gid]", sp.chown))
	}
	nsrc := len(sp.SourcePaths) + len(sp.SourceContents)
	dest := sp.DestPath
	wd := st.cfg.Config.WorkingDir
	if wd == "" {
		wd = "/"
	}
	destIsDir := strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.")
	if !path.IsAbs(dest) {
		dest = path.Join(wd, dest)
	}
	dest = strings.Trim(path.Clean(dest), "/")
	if dest == "" {
		destIsDir = true
	}
	if nsrc > 1 && !destIsDir {
		return fail(fmt.Errorf("with more than one source the destination must be a directory ending in /"))
	}

	// Where the sources come from, and what identifies their content.
	key := []string{text, sp.from, dest, strconv.FormatBool(destIsDir), sp.chown, sp.chmod, strconv.FormatBool(sp.add), strings.Join(sp.excludes, "\x00")}
	var src *copySource
	var fromStage *stageRun
	var fromImage v1.Image
	switch {
	case sp.from == "":
		src = &copySource{view: b.ctx.view, ctx: b.ctx, what: "the build context"}
	default:
		if fromStage = b.stageByName(sp.from, st.s.idx); fromStage != nil {
			if _, err := fromStage.wait(); err != nil {
				return fmt.Errorf("stage %s: %w", st.s.name, errDepFailed)
			}
			key = append(key, "stage", fromStage.key)
		} else {
			img, err := b.o.Store.Image(sp.from, platformString(st.platform))
			if err != nil {
				return fail(fmt.Errorf("--from=%s: no stage or image of that name (%v)", sp.from, err))
			}
			d, err := img.Digest()
			if err != nil {
				return fail(err)
			}
			fromImage = img
			key = append(key, "image", d.String())
		}
	}
	var excl *patternmatcher.PatternMatcher
	if len(sp.excludes) > 0 {
		var err error
		if excl, err = patternmatcher.New(sp.excludes); err != nil {
			return fail(fmt.Errorf("--exclude: %w", err))
		}
	}

	// Owner: numeric now; names need the stage's /etc/passwd, read when
	// the step actually runs (the key holds the spec and the parent).
	owner := func() (int, int, bool, error) {
		if sp.chown == "" {
			return 0, 0, false, nil
		}
		var v *fsView
		if !numericOwner(sp.chown) {
			var err error
			if v, err = st.lowerView(); err != nil {
				return 0, 0, false, err
			}
		}
		u, g, err := resolveChown(sp.chown, v)
		return u, g, true, err
	}

	// Context sources are enumerated (and hashed) up front: their content
	// is part of the key. Stage and image sources are identified by the
	// stage's key or the image digest, and read only on a cache miss.
	var pre []*copyEntry
	var urls []urlSource
	if src != nil {
		var err error
		pre, urls, err = st.collect(src, sp, dest, destIsDir, excl, false)
		if err != nil {
			return fail(err)
		}
		h, err := b.cache.hashEntries(pre)
		if err != nil {
			return fail(err)
		}
		key = append(key, "context", h)
		for _, u := range urls {
			key = append(key, "url", u.url, u.digest)
		}
	}
	return st.runStep(line, stepOpts{text: text, key: key, link: sp.link, make: func() (*fileLayer, error) {
		entries := pre
		if src != nil && !destIsDir && !sp.link && len(pre) == 1 && !pre[0].archive && st.isDirBelow(dest) {
			// One file to a dest without a slash: into it, as it is a directory.
			if len(urls) == 1 {
				e := *pre[0]
				e.dst = path.Join(dest, urls[0].file)
				entries = []*copyEntry{&e}
			} else {
				var err error
				if entries, _, err = st.collect(src, sp, dest, true, excl, false); err != nil {
					return nil, err
				}
			}
		}
		if src == nil {
			var err error
			var v *fsView
			what := "stage " + sp.from
			if fromStage != nil && fromStage.view != nil {
				v = fromStage.view
			} else if fromStage != nil {
				v, err = viewOf(b, fromStage.img)
			} else {
				v, err = viewOf(b, fromImage)
				what = "image " + sp.from
			}
			if err != nil {
				return nil, err
			}
			if entries, _, err = st.collect(&copySource{view: v, keepIDs: true, what: what}, sp, dest, destIsDir, excl, true); err != nil {
				return nil, err
			}
		}
		uid, gid, chown, err := owner()
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.mkdir {
				continue
			}
			if chown {
				e.uid, e.gid = uid, gid
			}
			if chmod != nil && e.mode&fs.ModeSymlink == 0 {
				e.mode = e.mode&fs.ModeType | *chmod
			}
		}
		var lower *fsView
		if !sp.link {
			if lower, err = st.lowerView(); err != nil {
				return nil, err
			}
		} else {
			lower = &fsView{}
		}
		newOwner := [2]int{0, 0}
		if chown {
			newOwner = [2]int{uid, gid}
		}
		return st.writeCopyLayer(entries, lower, newOwner, sp)
	}})
}

func viewOf(b *builder, img v1.Image) (*fsView, error) {
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if len(ls) == 0 {
		return &fsView{}, nil
	}
	dirs, err := b.o.Store.Snapshots(img)
	if err != nil {
		return nil, fmt.Errorf("unpack layers: %w", err)
	}
	return &fsView{layers: dirs}, nil
}

type urlSource struct {
	url, digest, file string
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

func hasGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// collect lists what the sources put where, following Docker's rules: a
// directory's contents (not the directory) are copied; a file lands in
// dest, or in dest/ when dest is a directory (trailing slash, several
// sources or matches, or an existing directory).
//
// Whether dest already is a directory in the stage is only asked when
// checkLower is set (when the step runs): the cache key does not need it,
// since the parent's key already decides it, and a cached build then
// never unpacks layers to answer it.
func (st *state) collect(src *copySource, sp copySpec, dest string, destIsDir bool, excl *patternmatcher.PatternMatcher, checkLower bool) ([]*copyEntry, []urlSource, error) {
	b := st.s.b
	entries := map[string]*copyEntry{}
	var urls []urlSource
	var matches []string
	for _, s := range sp.SourcePaths {
		if isURL(s) {
			if !sp.add {
				return nil, nil, fmt.Errorf("source %q: COPY does not fetch URLs, use ADD", s)
			}
			u, err := st.fetch(s, sp.checksum)
			if err != nil {
				return nil, nil, err
			}
			urls = append(urls, u)
			continue
		}
		clean := path.Clean(s)
		if src.ctx != nil && (clean == ".." || strings.HasPrefix(clean, "../")) {
			return nil, nil, fmt.Errorf("source %q is outside the build context", s)
		}
		rel := strings.Trim(path.Clean("/"+s), "/")
		if hasGlob(rel) {
			ms, err := globView(src, rel)
			if err != nil {
				return nil, nil, err
			}
			matches = append(matches, ms...)
			if len(ms) > 1 {
				destIsDir = true
			}
			continue
		}
		matches = append(matches, rel)
	}
	if len(matches)+len(urls)+len(sp.SourceContents) > 1 {
		destIsDir = true
	}
	// An existing directory at dest takes files into it.
	if !destIsDir && !sp.link && checkLower && st.isDirBelow(dest) {
		destIsDir = true
	}
	hard := map[[2]uint64]string{}
	add := func(e *copyEntry) {
		if e.archive {
			entries["\x00archive\x00"+e.host] = e // several archives may share a dest
			return
		}
		entries[e.dst] = e
	}
	for _, rel := range matches {
		r, escaped, err := src.view.resolve(rel, true)
		if err != nil {
			return nil, nil, fmt.Errorf("source %q: %w", rel, err)
		}
		if escaped && src.ctx != nil {
			return nil, nil, fmt.Errorf("source %q is outside the build context (through a symlink)", rel)
		}
		if src.ctx != nil && src.ctx.excluded(r) {
			return nil, nil, fmt.Errorf("source %q not found in %s (excluded by .dockerignore)", rel, src.what)
		}
		host, fi, err := src.view.Lstat(r)
		if err != nil {
			return nil, nil, fmt.Errorf("source %q not found in %s", "/"+rel, src.what)
		}
		if fi.IsDir() {
			// The destination directory is made (0755, owned as --chown
			// says) or kept as it is: it does not take the source's mode.
			if dest != "" {
				add(&copyEntry{dst: dest, mode: fs.ModeDir | 0o755, mkdir: true})
			}
			if err := walkView(src, r, dest, excl, hard, add); err != nil {
				return nil, nil, err
			}
			continue
		}
		d := dest
		if destIsDir {
			// Named as the source was named, even when that is a symlink.
			d = path.Join(dest, path.Base("/"+rel))
		}
		e := entryFor(src, d, host, fi)
		if sp.add && sp.unpack && fi.Mode().IsRegular() {
			if ok, _ := isArchive(host); ok {
				e.archive = true
				e.dst = dest
			}
		}
		add(e)
	}
	for _, u := range urls {
		d := dest
		if destIsDir {
			d = path.Join(dest, u.file)
		}
		fi, err := os.Stat(u.digest2path(b))
		if err != nil {
			return nil, nil, err
		}
		e := &copyEntry{dst: d, host: u.digest2path(b), mode: 0o600, size: fi.Size(), mtime: fi.ModTime()}
		add(e)
	}
	for _, c := range sp.SourceContents {
		d := dest
		if destIsDir {
			d = path.Join(dest, c.Path)
		}
		add(&copyEntry{dst: d, data: []byte(c.Data), hasData: true, mode: 0o644, size: int64(len(c.Data)), mtime: b.now()})
	}
	out := make([]*copyEntry, 0, len(entries))
	for _, e := range entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].dst != out[j].dst {
			return out[i].dst < out[j].dst
		}
		return out[i].host < out[j].host
	})
	return out, urls, nil
}

// isDirBelow says whether dest is a directory in the stage so far.
func (st *state) isDirBelow(dest string) bool {
	v, err := st.lowerView()
	if err != nil {
		return false
	}
	r, _, err := v.resolve(dest, true)
	if err != nil {
		return false
	}
	_, fi, err := v.Lstat(r)
	return err == nil && fi.IsDir()
}

func entryFor(src *copySource, dst, host string, fi fs.FileInfo) *copyEntry {
	e := &copyEntry{dst: dst, mode: fi.Mode(), mtime: fi.ModTime(), size: fi.Size()}
	if fi.Mode().IsRegular() {
		e.host = host
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		e.link, _ = os.Readlink(host)
		e.size = 0
	}
	if fi.IsDir() {
		e.size = 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && src.keepIDs {
		e.uid, e.gid = int(st.Uid), int(st.Gid)
	}
	return e
}

// walkView adds everything under dir rel (not rel itself) at dest.
func walkView(src *copySource, rel, dest string, excl *patternmatcher.PatternMatcher, hard map[[2]uint64]string, add func(*copyEntry)) error {
	names, err := src.view.ReadDir(rel)
	if err != nil {
		return err
	}
	for _, n := range names {
		r := strings.TrimPrefix(rel+"/"+n, "/")
		if src.ctx != nil && src.ctx.excluded(r) && (src.ctx.ignore == nil || !src.ctx.ignore.Exclusions()) {
			continue
		}
		host, fi, err := src.view.Lstat(r)
		if err != nil {
			return err
		}
		d := path.Join(dest, n)
		if excl != nil {
			if m, _ := excl.MatchesOrParentMatches(strings.TrimPrefix(d, dest+"/")); m {
				continue
			}
		}
		if fi.IsDir() {
			if !(src.ctx != nil && src.ctx.excluded(r)) {
				add(entryFor(src, d, host, fi))
			}
			if err := walkView(src, r, d, excl, hard, add); err != nil {
				return err
			}
			continue
		}
		if src.ctx != nil && src.ctx.excluded(r) {
			continue
		}
		if fi.Mode()&(fs.ModeSocket|fs.ModeDevice|fs.ModeCharDevice|fs.ModeIrregular) != 0 && src.ctx != nil {
			continue // sockets and devices in a context are not content
		}
		e := entryFor(src, d, host, fi)
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			k := [2]uint64{uint64(st.Dev), st.Ino}
			if first, ok := hard[k]; ok {
				e.link, e.hard, e.host, e.size = first, true, "", 0
			} else {
				hard[k] = d
			}
		}
		add(e)
	}
	return nil
}

// globView expands a wildcard source, one path component at a time.
func globView(src *copySource, pattern string) ([]string, error) {
	cur := []string{""}
	for _, part := range strings.Split(pattern, "/") {
		var next []string
		for _, dir := range cur {
			if !hasGlob(part) {
				next = append(next, strings.TrimPrefix(dir+"/"+part, "/"))
				continue
			}
			names, err := src.view.ReadDir(dir)
			if err != nil {
				continue
			}
			for _, n := range names {
				if ok, err := path.Match(part, n); err != nil {
					return nil, fmt.Errorf("source %q: %w", pattern, err)
				} else if ok {
					r := strings.TrimPrefix(dir+"/"+n, "/")
					if src.ctx != nil && src.ctx.excluded(r) {
						continue
					}
					next = append(next, r)
				}
			}
		}
		cur = next
	}
	var out []string
	for _, r := range cur {
		if _, _, err := src.view.Lstat(r); err == nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// hashEntries digests what the entries would put in the layer: paths,
// types, modes, owners, link targets and file contents. Not mtimes, as
// BuildKit: a checkout or a touch does not invalidate the cache. File
// contents are hashed once and remembered by inode and change time.
func (c *cache) hashEntries(es []*copyEntry) (string, error) {
	h := sha256.New()
	for _, e := range es {
		fmt.Fprintf(h, "%s\x00%o\x00%d:%d\x00%s\x00%v\x00%v\x00%d\x00", e.dst, uint32(e.mode), e.uid, e.gid, e.link, e.archive, e.mkdir, e.size)
		switch {
		case e.hasData:
			h.Write(e.data)
		case e.host != "":
			sum, err := c.fileSum(e.host)
			if err != nil {
				return "", err
			}
			h.Write([]byte(sum))
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeCopyLayer writes the layer of a COPY/ADD: the destination's
// parents (as they are below, or new), then the entries, then the
// contents of ADDed archives.
func (st *state) writeCopyLayer(entries []*copyEntry, lower *fsView, newOwner [2]int, sp copySpec) (*fileLayer, error) {
	b := st.s.b
	lw, err := b.cache.newLayer(b.o.Timestamp)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			lw.Abort()
		}
	}()
	// Resolve each entry's parent through symlinks of the image (e.g.
	// /bin -> usr/bin) so the layer writes where the files really go.
	resolved := map[string]string{}
	resolveDir := func(d string) (string, error) {
		if d == "" {
			return "", nil
		}
		if r, ok := resolved[d]; ok {
			return r, nil
		}
		r, _, err := lower.resolve(d, true)
		if err != nil {
			return "", err
		}
		resolved[d] = r
		return r, nil
	}
	for _, e := range entries {
		dir, err := resolveDir(path.Dir("/" + e.dst)[1:])
		if err != nil {
			return nil, err
		}
		if e.archive || e.mkdir || e.mode.IsDir() {
			d, err := resolveDir(e.dst)
			if err != nil {
				return nil, err
			}
			e.dst = d
			continue
		}
		e.dst = strings.TrimPrefix(dir+"/"+path.Base("/"+e.dst), "/")
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].dst < entries[j].dst })
	have := map[string]bool{}
	for _, e := range entries {
		if !e.archive && !e.mkdir {
			have[e.dst] = true
		}
	}
	written := map[string]bool{}
	var parents func(p string) error
	parents = func(p string) error {
		d := path.Dir("/" + p)[1:]
		if d == "" || have[d] || written[d] {
			return nil
		}
		if err := parents(d); err != nil {
			return err
		}
		written[d] = true
		h := &tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, Uid: newOwner[0], Gid: newOwner[1], ModTime: b.now()}
		if _, fi, err := lower.Lstat(d); err == nil && fi.IsDir() {
			h.Mode = int64(modeBits(fi.Mode()))
			h.ModTime = fi.ModTime()
			if s, ok := fi.Sys().(*syscall.Stat_t); ok {
				h.Uid, h.Gid = int(s.Uid), int(s.Gid)
			}
		}
		return lw.WriteHeader(h)
	}
	var archives []*copyEntry
	for _, e := range entries {
		if e.mkdir {
			if err := parents(e.dst + "/x"); err != nil {
				return nil, err
			}
			continue
		}
		if e.archive {
			archives = append(archives, e)
			if err := parents(e.dst + "/x"); err != nil {
				return nil, err
			}
			continue
		}
		if err := parents(e.dst); err != nil {
			return nil, err
		}
		if err := writeEntry(lw, e); err != nil {
			return nil, err
		}
	}
	for _, a := range archives {
		if err := extractInto(lw, a, sp); err != nil {
			return nil, fmt.Errorf("ADD %s: %w", a.host, err)
		}
	}
	l, err := lw.Commit()
	if err != nil {
		return nil, err
	}
	ok = true
	return l, nil
}

func modeBits(m fs.FileMode) uint32 {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return v
}

func octalToMode(m uint32) fs.FileMode {
	fm := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= fs.ModeSticky
	}
	return fm
}

func writeEntry(lw *layerWriter, e *copyEntry) error {
	// In a layer a .wh. name is a whiteout: a context file named
	// .wh.passwd (or .wh..wh..opq) would delete what the base image has
	// there instead of adding a file.
	for _, c := range strings.Split(e.dst, "/") {
		if strings.HasPrefix(c, ".wh.") {
			return fmt.Errorf("%q: a name starting with .wh. cannot be stored in a layer (it would be a whiteout)", "/"+e.dst)
		}
	}
	h := &tar.Header{Name: e.dst, Mode: int64(modeBits(e.mode)), Uid: e.uid, Gid: e.gid, ModTime: e.mtime}
	switch {
	case e.mode.IsDir():
		if e.dst == "" {
			return nil
		}
		h.Typeflag, h.Name = tar.TypeDir, e.dst+"/"
	case e.mode&fs.ModeSymlink != 0:
		h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
	case e.hard:
		h.Typeflag, h.Linkname = tar.TypeLink, e.link
	case e.mode&fs.ModeNamedPipe != 0:
		h.Typeflag = tar.TypeFifo
	case e.mode.IsRegular():
		h.Typeflag, h.Size = tar.TypeReg, e.size
	default:
		return nil
	}
	if err := lw.WriteHeader(h); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeReg {
		return nil
	}
	if e.hasData {
		_, err := lw.Write(e.data)
		return err
	}
	f, err := os.Open(e.host)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(lw, io.LimitReader(f, e.size))
	if err == nil && n != e.size {
		err = fmt.Errorf("%s changed size while being copied", e.host)
	}
	return err
}

// isArchive says whether a file is a tar, plain or compressed (gzip,
// bzip2, zstd), which ADD extracts.
func isArchive(p string) (bool, error) {
	r, closer, err := openArchive(p)
	if err != nil {
		return false, err
	}
	defer closer()
	_, err = tar.NewReader(r).Next()
	return err == nil, nil
}

func openArchive(p string) (io.Reader, func(), error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReader(f)
	magic, _ := br.Peek(6)
	closer := func() { f.Close() }
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		z, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		return z, closer, nil
	case len(magic) >= 3 && string(magic[:3]) == "BZh":
		return bzip2.NewReader(br), closer, nil
	case len(magic) >= 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
		z, err := zstd.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		return z, func() { z.Close(); f.Close() }, nil
	}
	return br, closer, nil
}

// extractInto copies the archive's entries into the layer under a.dst,
// refusing any that would land outside it.
func extractInto(lw *layerWriter, a *copyEntry, sp copySpec) error {
	r, closer, err := openArchive(a.host)
	if err != nil {
		return err
	}
	defer closer()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name, err := archivePath(h.Name)
		if err != nil {
			return err
		}
		if name == "" || strings.HasPrefix(path.Base("/"+name), ".wh.") {
			continue // the root itself; whiteouts are not files to add
		}
		h.Name = strings.TrimPrefix(a.dst+"/"+name, "/")
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		if h.Typeflag == tar.TypeLink {
			ln, err := archivePath(h.Linkname)
			if err != nil || ln == "" {
				return fmt.Errorf("entry %q: hard link target %q outside the archive", h.Name, h.Linkname)
			}
			h.Linkname = strings.TrimPrefix(a.dst+"/"+ln, "/")
		}
		if a.uid != 0 || a.gid != 0 || sp.chown != "" {
			h.Uid, h.Gid = a.uid, a.gid
		}
		if err := lw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeRegA {
			if _, err := io.Copy(lw, tr); err != nil {
				return err
			}
		}
	}
}

func archivePath(n string) (string, error) {
	c := path.Clean("/" + n)
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", fmt.Errorf("entry %q climbs out of the destination", n)
		}
	}
	return strings.Trim(c, "/"), nil
}

// fetch downloads an ADD URL into the cache (once per checksum when one
// is given) and returns its digest.
func (st *state) fetch(raw, checksum string) (urlSource, error) {
	b := st.s.b
	u, err := url.Parse(raw)
	if err != nil {
		return urlSource{}, fmt.Errorf("ADD %s: %w", raw, err)
	}
	name := path.Base(u.Path)
	if name == "/" || name == "." || name == "" {
		name = "__unnamed__"
	}
	var want digest.Digest
	if checksum != "" {
		if want, err = digest.Parse(checksum); err != nil {
			return urlSource{}, fmt.Errorf("--checksum %q: %w", checksum, err)
		}
		us := urlSource{url: raw, digest: want.String(), file: name}
		if _, err := os.Stat(us.digest2path(b)); err == nil {
			return us, nil
		}
	}
	client := &http.Client{Timeout: 5 * time.Minute}
	resp, err := client.Get(raw)
	if err != nil {
		return urlSource{}, fmt.Errorf("ADD %s: cannot fetch (offline or unreachable?): %w", raw, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return urlSource{}, fmt.Errorf("ADD %s: server answered %s", raw, resp.Status)
	}
	tmp, err := os.CreateTemp(b.cache.dir+"/tmp", "url-")
	if err != nil {
		return urlSource{}, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), resp.Body); err != nil {
		tmp.Close()
		return urlSource{}, fmt.Errorf("ADD %s: %w", raw, err)
	}
	tmp.Close()
	got := digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil))
	if want != "" && got != want {
		return urlSource{}, fmt.Errorf("ADD %s: checksum mismatch: got %s, want %s", raw, got, want)
	}
	us := urlSource{url: raw, digest: got.String(), file: name}
	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		os.Chtimes(tmp.Name(), lm, lm)
	} else {
		os.Chtimes(tmp.Name(), time.Unix(0, 0), time.Unix(0, 0))
	}
	dst := us.digest2path(b)
	os.MkdirAll(path.Dir(dst), 0o700)
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return urlSource{}, err
	}
	return us, nil
}

func (u urlSource) digest2path(b *builder) string {
	return b.cache.dir + "/downloads/" + strings.ReplaceAll(u.digest, ":", "-")
}

func numericOwner(s string) bool {
	u, g, _ := strings.Cut(s, ":")
	if _, err := parseID(u); err != nil {
		return false
	}
	if g != "" {
		if _, err := parseID(g); err != nil {
			return false
		}
	}
	return true
}
