// Package inspect analyses images from their layers, never by running
// them: what distro and libc an image carries, whether its entrypoint can
// start (ELF interpreter and libraries present), what it wastes (doctor);
// it cuts an image down to what its entrypoint needs (slim), and attaches
// a toolbox to a running shell-less container (debug).
package inspect

import (
	"archive/tar"
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Node is one path of the merged filesystem view: the state after every
// layer was applied in order, whiteouts and opaque directories included.
type Node struct {
	Path     string // absolute, cleaned
	Type     byte   // tar typeflag: tar.TypeReg, TypeDir, TypeSymlink, TypeLink, ...
	Mode     int64  // permission and setuid/setgid/sticky bits, as in the tar header
	UID, GID int
	Size     int64  // bytes of content (0 for hardlinks: their target holds it)
	Link     string // symlink or hardlink target as written in the layer
	Layer    int    // index of the layer that last wrote this path
	ELF      *ELFInfo
	Shebang  string // first line of an executable script, without "#!"
	Libc     string // glibc version found in a libc.so.6 ("2.36")

	children map[string]*Node
	src      *Node  // a hardlink's target as it was when the link was made
	data     []byte // small config files kept in memory (os-release, passwd...)
}

// ELFInfo is what the dynamic loader would look at in an ELF file.
type ELFInfo struct {
	Class   elf.Class
	Machine elf.Machine
	Type    elf.Type
	Interp  string   // PT_INTERP, empty for a static binary
	Needed  []string // DT_NEEDED
	RPath   []string
	RunPath []string
	Dynamic bool // has a PT_DYNAMIC segment (static-pie has one but no interpreter)
}

// LayerStat sums up one layer.
type LayerStat struct {
	Index   int    `json:"index"`
	DiffID  string `json:"diff_id,omitempty"`
	Bytes   int64  `json:"bytes"`   // content bytes of the regular files it adds
	Entries int    `json:"entries"` // tar entries, whiteouts included
	Wasted  int64  `json:"wasted"`  // bytes of lower-layer files it shadows or deletes
}

// FS is the merged view of an image's layers.
type FS struct {
	root   *Node
	Layers []LayerStat
	Wasted int64 // bytes of files shadowed or deleted by a later layer

	held    int64    // bytes the nodes take, against maxHeld
	lookups int      // library lookups made, against maxLookups
	kept    int64    // config file bytes kept, against maxKept
	spool   *os.File // large ELF files are parsed from here, not memory
}

// Config files small enough to keep: read when the tree is built, so
// that the report needs a single pass over the layers.
var keepData = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^/(etc/(os-release|passwd|group|nsswitch\.conf|ld\.so\.conf|ld\.so\.conf\.d/.*|ld-musl-.*\.path|shells)|usr/lib/os-release)$`)
})

var glibcVersion = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`GNU C Library [^\n]*?(?:release )?version (\d+\.\d+)`)
})

// What one image's view may take: a layer of a few MB (zeros compress
// well) can hold files of many GB, millions of entries or names of a
// MB. Doctor and slim read images they do not trust.
const (
	// maxELF bounds the size of a file parsed for its ELF headers;
	// larger files are recorded without ELF details.
	maxELF = 512 << 20
	// maxInMemELF: larger ELF files are parsed from a temp file, not
	// read into memory whole.
	maxInMemELF = 32 << 20
	// maxKeptFile and maxKept bound the config files kept in memory,
	// one and all (a thousand 1 MB files in /etc/ld.so.conf.d were a GB).
	maxKeptFile = 1 << 20
	maxKept     = 64 << 20
	// maxHeld bounds the bytes of the nodes themselves: a view of more is
	// refused.
	maxHeld = 1 << 30
	// nodeBytes is about what a node takes beside its path and link.
	nodeBytes = 256
)

// ReadFS applies img's layers in order into a merged view.
func ReadFS(img v1.Image) (*FS, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("layers: %w", err)
	}
	fs := &FS{root: &Node{Path: "/", Type: tar.TypeDir, Mode: 0o755, children: map[string]*Node{}}}
	for i, l := range layers {
		st := LayerStat{Index: i}
		if d, err := l.DiffID(); err == nil {
			st.DiffID = d.String()
		}
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		err = fs.apply(i, rc, &st)
		rc.Close()
		if err != nil {
			fs.closeSpool()
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		fs.Layers = append(fs.Layers, st)
		fs.Wasted += st.Wasted
	}
	fs.closeSpool()
	return fs, nil
}

func (fs *FS) closeSpool() {
	if fs.spool != nil {
		fs.spool.Close()
		fs.spool = nil
	}
}

// hold counts a new node against maxHeld.
func (fs *FS) hold(p, link string) error {
	fs.held += nodeBytes + int64(len(p)+len(link))
	if fs.held > maxHeld {
		return fmt.Errorf("the image's file tree takes more than %d MB: refused", maxHeld>>20)
	}
	return nil
}

// clean turns a tar entry name into an absolute clean path, refusing
// names that climb out of the root.
func clean(name string) (string, error) {
	// No path the kernel can look up is longer; a 1 MB name of "a/a/a..."
	// implied half a million directories, each holding its own path.
	if len(name) > pathMax {
		return "", fmt.Errorf("entry %.40q...: name of %d bytes, longer than PATH_MAX", name, len(name))
	}
	p := path.Clean("/" + name)
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("entry %q climbs out of the root", name)
		}
	}
	return p, nil
}

func (fs *FS) apply(layer int, r io.Reader, st *LayerStat) error {
	tr := tar.NewReader(r)
	// Opaque markers hide lower layers only: entries of this layer under
	// the same directory may come before the marker in the tar.
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		st.Entries++
		p, err := clean(h.Name)
		if err != nil {
			return err
		}
		if p == "/" {
			fs.root.Mode, fs.root.UID, fs.root.GID = h.Mode&0o7777, h.Uid, h.Gid
			continue
		}
		dir, base := path.Split(p)
		dir = path.Clean(dir)
		if base == ".wh..wh..opq" {
			if d := fs.lookup(dir); d != nil && d.Type == tar.TypeDir {
				for name, c := range d.children {
					if c.Layer < layer {
						st.Wasted += c.subtreeBytes()
						delete(d.children, name)
					}
				}
			}
			continue
		}
		if strings.HasPrefix(base, ".wh.") {
			victim := path.Join(dir, strings.TrimPrefix(base, ".wh."))
			if n := fs.lookup(victim); n != nil {
				st.Wasted += n.subtreeBytes()
				fs.remove(victim)
			}
			continue
		}
		if len(h.Linkname) > pathMax {
			return fmt.Errorf("%s: link target of %d bytes, longer than PATH_MAX", p, len(h.Linkname))
		}
		parent, err := fs.mkdirAll(dir, layer)
		if err != nil {
			return err
		}
		if err := fs.hold(p, h.Linkname); err != nil {
			return err
		}
		n := &Node{Path: p, Type: h.Typeflag, Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid, Layer: layer, Link: h.Linkname}
		if n.Type == tar.TypeRegA {
			n.Type = tar.TypeReg
		}
		if old := parent.children[base]; old != nil {
			if old.Type == tar.TypeDir && n.Type == tar.TypeDir {
				// A directory entry over a directory updates its metadata only.
				old.Mode, old.UID, old.GID, old.Layer = n.Mode, n.UID, n.GID, layer
				continue
			}
			st.Wasted += old.subtreeBytes()
		}
		switch n.Type {
		case tar.TypeDir:
			n.children = map[string]*Node{}
		case tar.TypeReg:
			n.Size = h.Size
			st.Bytes += h.Size
			if err := fs.sniff(n, tr); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		case tar.TypeLink:
			t, err := clean(h.Linkname)
			if err != nil {
				return err
			}
			n.Link = t
			if tgt := fs.lookup(t); tgt != nil {
				n.ELF, n.Shebang, n.Libc, n.data = tgt.ELF, tgt.Shebang, tgt.Libc, tgt.data
				n.src = tgt
			}
		}
		parent.children[base] = n
	}
}

// sniff reads what the report needs from a regular file's content: ELF
// headers, a script's shebang line, glibc's version, small config files.
func (fs *FS) sniff(n *Node, r io.Reader) error {
	br := bufio.NewReaderSize(r, 4096)
	head, _ := br.Peek(256)
	isELF := bytes.HasPrefix(head, []byte("\x7fELF"))
	switch {
	case isELF && n.Size > maxInMemELF && n.Size <= maxELF:
		f, size, err := fs.spoolFile(br)
		if err != nil {
			return err
		}
		n.ELF = parseELFAt(f, size)
	case isELF && n.Size <= maxInMemELF:
		data, err := io.ReadAll(br)
		if err != nil {
			return err
		}
		n.ELF = parseELF(data)
		base := path.Base(n.Path)
		if base == "libc.so.6" || strings.HasPrefix(base, "libc-2.") {
			if m := glibcVersion().FindSubmatch(data); m != nil {
				n.Libc = string(m[1])
			}
		}
	case bytes.HasPrefix(head, []byte("#!")):
		line, _, _ := strings.Cut(string(head[2:]), "\n")
		n.Shebang = strings.TrimSpace(line)
	}
	if keepData().MatchString(n.Path) && n.Size <= maxKeptFile && fs.kept+n.Size <= maxKept {
		data, err := io.ReadAll(io.LimitReader(br, maxKeptFile))
		if err != nil {
			return err
		}
		n.data = data
		fs.kept += int64(len(data))
	}
	return nil
}

// spoolFile copies r to the view's temp file (made once, unlinked at
// once so that nothing is left behind) and returns it with the size.
func (fs *FS) spoolFile(r io.Reader) (*os.File, int64, error) {
	if fs.spool == nil {
		f, err := os.CreateTemp("", "berth-inspect-*")
		if err != nil {
			return nil, 0, err
		}
		os.Remove(f.Name())
		fs.spool = f
	}
	f := fs.spool
	if err := f.Truncate(0); err != nil {
		return nil, 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	size, err := io.Copy(f, io.LimitReader(r, maxELF))
	return f, size, err
}

// The kernel refuses (ENOEXEC) a PT_INTERP longer than PATH_MAX; the
// loader opens no name longer than that either.
const pathMax = 4096

// maxDynStrings bounds the DT_NEEDED/RPATH/RUNPATH strings kept from one
// object (real ones have a few dozen): a hostile .dynamic section can
// repeat an entry pointing at one long string tens of thousands of times.
const maxDynStrings = 1024

// maxDynamic and maxDynStr bound the sections read for them (real ones
// are a few hundred bytes and a few MB).
const maxDynamic, maxDynStr = 1 << 20, 64 << 20

func parseELF(data []byte) *ELFInfo { return parseELFAt(bytes.NewReader(data), int64(len(data))) }

func parseELFAt(r io.ReaderAt, size int64) *ELFInfo {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil
	}
	defer f.Close()
	info := &ELFInfo{Class: f.Class, Machine: f.Machine, Type: f.Type}
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			// The header's size is the image's word: bound it before
			// allocating (a PT_INTERP of 1 TB made doctor die of OOM).
			if p.Filesz < 2 || p.Filesz > pathMax || p.Off+p.Filesz > uint64(size) {
				return nil
			}
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err == nil {
				info.Interp = strings.TrimRight(string(b), "\x00")
			}
		case elf.PT_DYNAMIC:
			info.Dynamic = true
		}
	}
	if info.Dynamic {
		dyn := dynStrings(f)
		info.Needed = dyn[elf.DT_NEEDED]
		info.RPath = splitPaths(dyn[elf.DT_RPATH], nil)
		info.RunPath = splitPaths(dyn[elf.DT_RUNPATH], nil)
	}
	return info
}

// dynStrings reads the string entries of the dynamic section in one pass,
// each name once and at most pathMax bytes, and at most maxDynStrings of
// them. debug/elf's DynString copies the string of every entry whole: a
// 2 MB file of 65536 DT_NEEDED entries naming one 1 MB string asked for
// 64 GB.
func dynStrings(f *elf.File) map[elf.DynTag][]string {
	out := map[elf.DynTag][]string{}
	ds := f.SectionByType(elf.SHT_DYNAMIC)
	if ds == nil || int(ds.Link) >= len(f.Sections) || ds.Size > maxDynamic || f.Sections[ds.Link].Size > maxDynStr {
		return out
	}
	d, err := ds.Data()
	if err != nil {
		return out
	}
	str, err := f.Sections[ds.Link].Data()
	if err != nil {
		return out
	}
	size := 8
	if f.Class == elf.ELFCLASS64 {
		size = 16
	}
	seen := map[elf.DynTag]map[string]bool{}
	kept := 0
	for ; len(d) >= size && kept < maxDynStrings; d = d[size:] {
		var tag elf.DynTag
		var v uint64
		if size == 8 {
			tag, v = elf.DynTag(f.ByteOrder.Uint32(d)), uint64(f.ByteOrder.Uint32(d[4:]))
		} else {
			tag, v = elf.DynTag(f.ByteOrder.Uint64(d)), f.ByteOrder.Uint64(d[8:])
		}
		if tag == elf.DT_NULL {
			break
		}
		if tag != elf.DT_NEEDED && tag != elf.DT_RPATH && tag != elf.DT_RUNPATH || v >= uint64(len(str)) {
			continue
		}
		s := str[v:]
		if len(s) > pathMax {
			s = s[:pathMax]
		}
		if i := bytes.IndexByte(s, 0); i >= 0 {
			s = s[:i]
		}
		if seen[tag] == nil {
			seen[tag] = map[string]bool{}
		}
		if !seen[tag][string(s)] { // a lookup that copies nothing
			name := string(s)
			seen[tag][name] = true
			out[tag] = append(out[tag], name)
			kept++
		}
	}
	return out
}

func splitPaths(v []string, err error) []string {
	var out []string
	for _, s := range v {
		for _, p := range strings.Split(s, ":") {
			if p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func (n *Node) subtreeBytes() int64 {
	var sum int64
	n.walk(func(c *Node) { sum += c.Size })
	return sum
}

// walk visits n and everything under it, children in name order.
func (n *Node) walk(fn func(*Node)) {
	fn(n)
	names := make([]string, 0, len(n.children))
	for name := range n.children {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		n.children[name].walk(fn)
	}
}

// Walk visits every path of the view, parents before children.
func (fs *FS) Walk(fn func(*Node)) { fs.root.walk(fn) }

// lookup finds p without following symlinks (nil if absent).
func (fs *FS) lookup(p string) *Node {
	n := fs.root
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		if part == "" {
			continue
		}
		if n.children == nil {
			return nil
		}
		if n = n.children[part]; n == nil {
			return nil
		}
	}
	return n
}

func (fs *FS) remove(p string) {
	dir, base := path.Split(p)
	if d := fs.lookup(path.Clean(dir)); d != nil && d.children != nil {
		delete(d.children, base)
	}
}

// mkdirAll returns the directory at p, creating implied parents (a layer
// may omit them); a non-directory in the way is replaced, as tar would.
func (fs *FS) mkdirAll(p string, layer int) (*Node, error) {
	n := fs.root
	cur := "/"
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		if part == "" {
			continue
		}
		cur = path.Join(cur, part)
		c := n.children[part]
		if c == nil || c.Type != tar.TypeDir {
			if err := fs.hold(cur, ""); err != nil {
				return nil, err
			}
			c = &Node{Path: cur, Type: tar.TypeDir, Mode: 0o755, Layer: layer, children: map[string]*Node{}}
			n.children[part] = c
		}
		n = c
	}
	return n, nil
}

// maxHops is the kernel's limit on symlinks followed in one lookup.
const maxHops = 40

// Resolve follows p (absolute, or relative to cwd) through the view as
// the kernel would inside the container: symlinks are resolved against
// the image root, ".." never climbs above it. It returns the final node
// (nil if absent), its real path, and every symlink passed on the way.
func (fs *FS) Resolve(p string) (*Node, string, []*Node) {
	var links []*Node
	n, real := fs.resolve(p, &links, 0)
	return n, real, links
}

func (fs *FS) resolve(p string, links *[]*Node, hops int) (*Node, string) {
	parts := strings.Split(p, "/")
	cur := "/"
	var n *Node = fs.root
	for i := 0; i < len(parts); i++ {
		part := parts[i]
		switch part {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			n = fs.lookup(cur)
			continue
		}
		if n == nil || n.Type != tar.TypeDir {
			return nil, path.Join(cur, strings.Join(parts[i:], "/"))
		}
		next := n.children[part]
		cand := path.Join(cur, part)
		if next == nil {
			return nil, path.Join(cand, strings.Join(parts[i+1:], "/"))
		}
		if next.Type == tar.TypeSymlink {
			if hops >= maxHops {
				return nil, cand
			}
			*links = append(*links, next)
			target := next.Link
			if !strings.HasPrefix(target, "/") {
				target = path.Join(cur, target)
			}
			rest := strings.Join(parts[i+1:], "/")
			return fs.resolve(path.Clean("/"+target)+"/"+rest, links, hops+1)
		}
		cur, n = cand, next
	}
	return n, cur
}

// Data returns a small config file's content kept in memory, following
// symlinks (nil if absent or not kept).
func (fs *FS) Data(p string) []byte {
	n, _, _ := fs.Resolve(p)
	if n == nil {
		return nil
	}
	return n.data
}

// Exists tells whether p resolves to something.
func (fs *FS) Exists(p string) bool {
	n, _, _ := fs.Resolve(p)
	return n != nil
}
