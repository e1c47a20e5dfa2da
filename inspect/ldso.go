package inspect

import (
	"archive/tar"
	"debug/elf"
	"fmt"
	"path"
	"sort"
	"strings"
)

// Missing is a piece the dynamic loader (or the kernel) would not find.
type Missing struct {
	Name     string `json:"name"`      // "libc.so.6" or "/lib64/ld-linux-x86-64.so.2"
	NeededBy string `json:"needed_by"` // the object asking for it
	Error    string `json:"error"`     // the message the loader would print
}

// Closure is everything an executable loads before main: its ELF
// interpreter and every DT_NEEDED library, transitively, as the dynamic
// loader inside the image would find them.
type Closure struct {
	Interp  string            `json:"interpreter,omitempty"`
	Libs    map[string]string `json:"libraries,omitempty"` // soname -> real path
	Missing []Missing         `json:"missing,omitempty"`
	Musl    bool              `json:"musl,omitempty"`
	// Paths holds every path to keep for it to run: real files and the
	// symlinks on the way to them.
	Paths []string `json:"-"`
}

// multiarch names Debian's per-architecture library directory.
var multiarch = map[elf.Machine]string{
	elf.EM_X86_64:  "x86_64-linux-gnu",
	elf.EM_AARCH64: "aarch64-linux-gnu",
	elf.EM_386:     "i386-linux-gnu",
	elf.EM_ARM:     "arm-linux-gnueabihf",
	elf.EM_PPC64:   "powerpc64le-linux-gnu",
	elf.EM_S390:    "s390x-linux-gnu",
	elf.EM_RISCV:   "riscv64-linux-gnu",
}

// muslArch names musl's architecture in ld-musl-ARCH.so.1 and its .path file.
var muslArch = map[elf.Machine]string{
	elf.EM_X86_64: "x86_64", elf.EM_AARCH64: "aarch64", elf.EM_386: "i386",
	elf.EM_ARM: "armhf", elf.EM_PPC64: "powerpc64le", elf.EM_S390: "s390x", elf.EM_RISCV: "riscv64",
}

// searchDirs is the loader's list after RPATH/RUNPATH/LD_LIBRARY_PATH:
// for glibc the directories of /etc/ld.so.conf (what ld.so.cache is made
// from) then the built-in system directories; for musl its .path file or
// its defaults.
func (fs *FS) searchDirs(m elf.Machine, musl bool) []string {
	if musl {
		if data := fs.Data("/etc/ld-musl-" + muslArch[m] + ".path"); data != nil {
			return uniqueDirs(strings.FieldsFunc(string(data), func(r rune) bool { return r == ':' || r == '\n' }))
		}
		return []string{"/lib", "/usr/local/lib", "/usr/lib"}
	}
	dirs := fs.ldSoConf("/etc/ld.so.conf", 0, map[string]bool{})
	if ma := multiarch[m]; ma != "" {
		dirs = append(dirs, "/lib/"+ma, "/usr/lib/"+ma)
	}
	// /lib64 is the system directory of RPM distros.
	if m == elf.EM_X86_64 || m == elf.EM_AARCH64 || m == elf.EM_PPC64 || m == elf.EM_S390 {
		dirs = append(dirs, "/lib64", "/usr/lib64")
	}
	return uniqueDirs(append(dirs, "/lib", "/usr/lib"))
}

// maxLookups bounds the library lookups of one view (a lookup is one
// directory tried for one name): objects, their DT_NEEDED names and
// their search dirs multiply, and a hostile image can hold a hundred
// thousand objects needing a thousand names each. Real images need a
// few hundred thousand. A variable for tests.
var maxLookups = 20_000_000

// TooComplex tells why an analysis stopped short, "" if it did not.
func (fs *FS) TooComplex() string {
	if fs.lookups > maxLookups {
		return fmt.Sprintf("analysis stopped after %d library lookups: the image is too complex (or built to be)", maxLookups)
	}
	return ""
}

// maxSearchDirs bounds a search list: every library lookup walks it, and
// a hostile ld.so.conf (or RPATH) can name a million directories.
const maxSearchDirs = 1024

// uniqueDirs drops repeated directories, keeping the first (the loader
// looks there first) and at most maxSearchDirs.
func uniqueDirs(dirs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, d := range dirs {
		if !seen[d] && len(out) < maxSearchDirs {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// ldSoConf reads each file once (seen): files that include each other
// (or a glob that matches themselves) made the search list grow as
// files^depth, a hang on a hostile image with a handful of conf files.
func (fs *FS) ldSoConf(file string, depth int, seen map[string]bool) []string {
	if depth > 8 {
		return nil
	}
	_, real, _ := fs.Resolve(file)
	if seen[real] {
		return nil
	}
	seen[real] = true
	var dirs []string
	for _, line := range strings.Split(string(fs.Data(file)), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		switch {
		case len(f) == 0 || f[0] == "hwcap":
		case f[0] == "include":
			for _, pat := range f[1:] {
				if !strings.HasPrefix(pat, "/") {
					pat = path.Join(path.Dir(file), pat)
				}
				for _, inc := range fs.glob(pat) {
					dirs = append(dirs, fs.ldSoConf(inc, depth+1, seen)...)
				}
			}
		default:
			for _, d := range f {
				dirs = append(dirs, strings.Split(d, ":")...)
			}
		}
	}
	return dirs
}

// glob expands a pattern whose last element may hold wildcards.
func (fs *FS) glob(pat string) []string {
	dir, base := path.Split(pat)
	d, real, _ := fs.Resolve(dir)
	if d == nil || d.Type != tar.TypeDir {
		return nil
	}
	var out []string
	for name := range d.children {
		if ok, _ := path.Match(base, name); ok {
			out = append(out, path.Join(real, name))
		}
	}
	sort.Strings(out)
	return out
}

// keepPath adds p and the symlinks on its way to the closure's paths.
func (c *Closure) keep(seen map[string]bool, real string, links []*Node) {
	for _, l := range links {
		if !seen[l.Path] {
			seen[l.Path] = true
			c.Paths = append(c.Paths, l.Path)
		}
	}
	if !seen[real] {
		seen[real] = true
		c.Paths = append(c.Paths, real)
	}
}

// LoadClosure computes what the loader does for the executable at exe
// (a real path in the view) with env's LD_LIBRARY_PATH.
func (fs *FS) LoadClosure(exe string, info *ELFInfo, ldLibraryPath []string) *Closure {
	c := &Closure{Libs: map[string]string{}}
	seen := map[string]bool{}
	if info == nil || (info.Interp == "" && !info.Dynamic) {
		return c
	}
	var real string
	if info.Interp != "" {
		c.Interp = info.Interp
		c.Musl = strings.Contains(path.Base(info.Interp), "ld-musl")
		in, r, links := fs.Resolve(info.Interp)
		if in == nil || in.Type == tar.TypeDir {
			c.Missing = append(c.Missing, Missing{Name: info.Interp, NeededBy: exe,
				Error: "ELF interpreter " + info.Interp + " not found: exec fails with \"no such file or directory\""})
		} else {
			real = r
			c.keep(seen, real, links)
		}
	} else {
		// A shared library on its own: musl's link against libc.musl-*.
		for _, n := range info.Needed {
			c.Musl = c.Musl || strings.HasPrefix(n, "libc.musl")
		}
	}
	dirs := fs.searchDirs(info.Machine, c.Musl)
	type obj struct {
		path string
		info *ELFInfo
	}
	queue := []obj{{exe, info}}
	for len(queue) > 0 {
		o := queue[0]
		queue = queue[1:]
		origin := path.Dir(o.path)
		expand := func(list []string) []string {
			var out []string
			for _, d := range list {
				d = strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", origin), "$ORIGIN", origin)
				out = append(out, d)
			}
			return out
		}
		var order []string
		if len(o.info.RunPath) == 0 {
			order = append(order, expand(o.info.RPath)...)
			if o.path != exe && len(info.RunPath) == 0 {
				order = append(order, expand(info.RPath)...)
			}
			order = append(order, ldLibraryPath...)
		} else {
			order = append(order, ldLibraryPath...)
			order = append(order, expand(o.info.RunPath)...)
		}
		order = uniqueDirs(append(order, dirs...))
		for _, need := range o.info.Needed {
			if _, done := c.Libs[need]; done {
				continue
			}
			if c.Musl && strings.HasPrefix(need, "libc.") {
				// musl's loader is its libc: it satisfies libc.so and libc.musl-*.so.1 itself.
				if p, ok := fs.findLib(need, dirs, o.info, seen, c); ok {
					c.Libs[need] = p
				} else if real != "" {
					c.Libs[need] = real
				}
				continue
			}
			cands := order
			if strings.Contains(need, "/") {
				cands = []string{""}
			}
			p, ok := fs.findLib(need, cands, o.info, seen, c)
			if !ok {
				c.Libs[need] = ""
				c.Missing = append(c.Missing, Missing{Name: need, NeededBy: o.path,
					Error: need + ": cannot open shared object file: No such file or directory"})
				continue
			}
			c.Libs[need] = p
			n, _, _ := fs.Resolve(p)
			if n != nil && n.ELF != nil {
				queue = append(queue, obj{p, n.ELF})
			}
		}
	}
	return c
}

// findLib looks for name in dirs, taking the first candidate that is an
// ELF object of the same class and machine, as the loader does.
func (fs *FS) findLib(name string, dirs []string, want *ELFInfo, seen map[string]bool, c *Closure) (string, bool) {
	for _, d := range dirs {
		if fs.lookups++; fs.lookups > maxLookups {
			return "", false
		}
		p := path.Join(d, name)
		if d == "" {
			p = name
		}
		n, real, links := fs.Resolve(p)
		if n == nil || n.ELF == nil || n.ELF.Class != want.Class || n.ELF.Machine != want.Machine {
			continue
		}
		c.keep(seen, real, links)
		return real, true
	}
	return "", false
}
