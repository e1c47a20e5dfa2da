package inspect

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Report is doctor's finding about one image.
type Report struct {
	Image           string        `json:"image"`
	Platform        string        `json:"platform"`
	OS              string        `json:"os"` // PRETTY_NAME of os-release, or "none"
	OSID            string        `json:"os_id,omitempty"`
	Libc            string        `json:"libc"` // "glibc 2.36", "musl", "none"
	Shell           string        `json:"shell,omitempty"`
	Shells          []string      `json:"shells,omitempty"`
	PackageManagers []string      `json:"package_managers,omitempty"`
	Files           int           `json:"files"`
	Dirs            int           `json:"dirs"`
	Symlinks        int           `json:"symlinks"`
	Size            int64         `json:"size"`
	Layers          []LayerStat   `json:"layers"`
	Wasted          int64         `json:"wasted"`
	LargestFiles    []PathSize    `json:"largest_files"`
	LargestDirs     []PathSize    `json:"largest_dirs"`
	Setuid          []string      `json:"setuid,omitempty"`
	WorldWritable   []string      `json:"world_writable_dirs,omitempty"`
	User            string        `json:"user"`
	RunsAsRoot      bool          `json:"runs_as_root"`
	Users           []string      `json:"users,omitempty"`
	CACerts         string        `json:"ca_certificates,omitempty"`
	Tzdata          int           `json:"tzdata_zones"`
	Entry           *Entry        `json:"entrypoint"`
	Slim            *SlimEstimate `json:"slim,omitempty"`
	Verdict         []string      `json:"verdict"`
}

// PathSize is a path with its bytes (a directory's: everything under it).
type PathSize struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// SlimEstimate is what berth slim would keep.
type SlimEstimate struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// Runtime is the interpreter and libraries of a dynamic entrypoint:
	// what a distroless-style base must carry.
	Runtime      []PathSize `json:"runtime,omitempty"`
	RuntimeBytes int64      `json:"runtime_bytes,omitempty"`
}

var (
	shellNames  = []string{"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox"}
	pkgManagers = []struct{ name, path string }{
		{"dpkg", "/usr/bin/dpkg"}, {"apt", "/usr/bin/apt-get"}, {"apk", "/sbin/apk"},
		{"rpm", "/usr/bin/rpm"}, {"dnf", "/usr/bin/dnf"}, {"yum", "/usr/bin/yum"},
		{"microdnf", "/usr/bin/microdnf"}, {"zypper", "/usr/bin/zypper"}, {"pacman", "/usr/bin/pacman"},
	}
)

// Doctor analyses img from its layers.
func Doctor(name string, img v1.Image) (*Report, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	fs, err := ReadFS(img)
	if err != nil {
		return nil, err
	}
	r := &Report{Image: name, Platform: cfg.OS + "/" + cfg.Architecture, Layers: fs.Layers, Wasted: fs.Wasted}
	if cfg.Variant != "" {
		r.Platform += "/" + cfg.Variant
	}
	r.osRelease(fs)
	r.walk(fs)
	r.libc(fs)
	for _, s := range shellNames {
		for _, d := range []string{"/bin/", "/usr/bin/"} {
			if n, real, _ := fs.Resolve(d + s); n != nil && n.Type != tar.TypeDir {
				if s == "sh" {
					r.Shell = "/bin/sh"
					if real != "/bin/sh" && real != "/usr/bin/sh" {
						r.Shell += " -> " + real
					}
				} else if !contains(r.Shells, s) {
					r.Shells = append(r.Shells, s)
				}
			}
		}
	}
	for _, pm := range pkgManagers {
		n, real, _ := fs.Resolve(pm.path)
		if n != nil && (path.Base(real) == "busybox" || path.Base(real) == "toybox") {
			continue // an applet (busybox dpkg) with no package database behind it
		}
		if n != nil || (pm.name == "apk" && fs.Exists("/usr/sbin/apk")) {
			r.PackageManagers = append(r.PackageManagers, pm.name)
		}
	}
	r.users(fs, cfg.Config.User)
	for _, p := range caFiles {
		if n, _, _ := fs.Resolve(p); n != nil && n.Type != tar.TypeDir {
			r.CACerts = p
			break
		}
	}
	if z, _, _ := fs.Resolve("/usr/share/zoneinfo"); z != nil && z.Type == tar.TypeDir {
		z.walk(func(n *Node) {
			if n.Type == tar.TypeReg {
				r.Tzdata++
			}
		})
	}
	r.Entry = fs.ResolveEntry(cfg)
	if pl, err := fs.MakePlan(cfg, nil); err == nil && r.Entry.Program != nil && r.Entry.Program.Found {
		est := &SlimEstimate{Files: pl.Files, Bytes: pl.Bytes}
		if c := r.Entry.Program.Closure; c != nil {
			for _, p := range c.Paths {
				if n := fs.lookup(p); n != nil && n.Type == tar.TypeReg {
					est.Runtime = append(est.Runtime, PathSize{p, n.Size})
					est.RuntimeBytes += n.Size
				}
			}
		}
		r.Slim = est
	}
	r.verdict()
	return r, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (r *Report) osRelease(fs *FS) {
	data := fs.Data("/etc/os-release")
	if data == nil {
		data = fs.Data("/usr/lib/os-release")
	}
	r.OS = "none"
	vals := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		} else {
			v = strings.Trim(v, `"'`)
		}
		vals[k] = v
	}
	r.OSID = vals["ID"]
	switch {
	case vals["PRETTY_NAME"] != "":
		r.OS = vals["PRETTY_NAME"]
	case vals["NAME"] != "":
		r.OS = strings.TrimSpace(vals["NAME"] + " " + vals["VERSION"])
	}
}

func (r *Report) walk(fs *FS) {
	dirSize := map[string]int64{}
	var files []PathSize
	fs.Walk(func(n *Node) {
		switch n.Type {
		case tar.TypeDir:
			r.Dirs++
			if n.Mode&0o002 != 0 && n.Mode&0o1000 == 0 {
				r.WorldWritable = append(r.WorldWritable, n.Path)
			}
			return
		case tar.TypeSymlink:
			r.Symlinks++
			return
		case tar.TypeReg, tar.TypeLink:
			r.Files++
		default:
			r.Files++
			return
		}
		if n.Mode&0o6000 != 0 {
			kind := "setuid"
			if n.Mode&0o4000 == 0 {
				kind = "setgid"
			} else if n.Mode&0o2000 != 0 {
				kind = "setuid+setgid"
			}
			r.Setuid = append(r.Setuid, fmt.Sprintf("%s (%s, owner %d)", n.Path, kind, n.UID))
		}
		r.Size += n.Size
		files = append(files, PathSize{n.Path, n.Size})
		for d := path.Dir(n.Path); ; d = path.Dir(d) {
			dirSize[d] += n.Size
			if d == "/" {
				break
			}
		}
	})
	r.LargestFiles = top(files, 10)
	var dirs []PathSize
	for d, s := range dirSize {
		if d != "/" {
			dirs = append(dirs, PathSize{d, s})
		}
	}
	r.LargestDirs = top(dirs, 10)
}

func top(list []PathSize, n int) []PathSize {
	sort.Slice(list, func(i, j int) bool {
		if list[i].Size != list[j].Size {
			return list[i].Size > list[j].Size
		}
		return list[i].Path < list[j].Path
	})
	if len(list) > n {
		list = list[:n]
	}
	return list
}

// libc names the image's C library: glibc's libc.so.6 (with the version
// from its banner string), musl's loader, or none.
func (r *Report) libc(fs *FS) {
	r.Libc = "none"
	var glibc, musl string
	fs.Walk(func(n *Node) {
		switch {
		case n.Type != tar.TypeReg && n.Type != tar.TypeLink:
		case n.Libc != "" && (glibc == "" || glibc == "?" || versionLess(glibc, n.Libc)):
			glibc = n.Libc
		case path.Base(n.Path) == "libc.so.6" && glibc == "":
			glibc = "?"
		}
	})
	// musl's loader is its libc; Alpine and Debian's musl both name it so.
	for _, d := range []string{"/lib", "/usr/lib"} {
		for _, p := range fs.glob(d + "/ld-musl-*.so.1") {
			if n, _, _ := fs.Resolve(p); n != nil && n.ELF != nil {
				musl = "musl"
			}
		}
	}
	switch {
	case glibc == "?":
		r.Libc = "glibc"
	case glibc != "":
		r.Libc = "glibc " + glibc
	case musl != "":
		r.Libc = musl
	}
}

func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, _ := strconv.Atoi(as[i])
		y, _ := strconv.Atoi(bs[i])
		if x != y {
			return x < y
		}
	}
	return len(as) < len(bs)
}

// users lists the accounts with a login shell and decides whether the
// configured USER is root (no USER means root).
func (r *Report) users(fs *FS, user string) {
	r.User = user
	uids := map[string]string{}
	for _, line := range strings.Split(string(fs.Data("/etc/passwd")), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 7 {
			continue
		}
		uids[f[0]] = f[2]
		if !strings.HasSuffix(f[6], "nologin") && !strings.HasSuffix(f[6], "false") && f[6] != "/bin/sync" {
			r.Users = append(r.Users, f[0]+"("+f[2]+")")
		}
	}
	u, _, _ := strings.Cut(user, ":")
	if uid, ok := uids[u]; ok {
		u = uid
	}
	r.RunsAsRoot = u == "" || u == "0"
}

// MB formats bytes the way the verdict does.
func MB(b int64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

func (r *Report) verdict() {
	e := r.Entry
	v := func(f string, a ...any) { r.Verdict = append(r.Verdict, fmt.Sprintf(f, a...)) }
	p := e.Program
	switch {
	case p == nil:
		v("no entrypoint or cmd: the image runs only with a command given")
	case len(e.Problems) > 0:
		v("entrypoint %s will not start: %s", e.Args[0], strings.Join(e.Problems, "; "))
		if p.Closure != nil && len(p.Closure.Missing) > 0 {
			v("it is dynamically linked (%s): build it static (CGO_ENABLED=0, gcc -static) for FROM scratch, or use a base that has %s (distroless/base, debian:bookworm-slim)", p.Libc, p.Libc)
		}
	case p.Kind == "elf" && p.Linkage == "static" && r.Slim.Bytes*5 < r.Size*4:
		v("entrypoint is statically linked: FROM scratch would be %s instead of %s", MB(r.Slim.Bytes), MB(r.Size))
	case p.Kind == "elf" && p.Linkage == "static":
		v("entrypoint is statically linked and the image holds little else (%s): as small as it gets", MB(r.Size))
	case p.Kind == "elf" && r.Slim != nil:
		v("dynamic %s binary: a distroless-style base needs these %d files (%s): %s", p.Libc, len(r.Slim.Runtime), MB(r.Slim.RuntimeBytes), pathList(r.Slim.Runtime))
	case p.Kind == "script" && p.Interpreter != nil:
		v("script entrypoint run by %s (%s)", p.Interpreter.Real, p.Interpreter.Linkage)
	}
	if e.Command != nil {
		v("entrypoint is in shell form (%s -c %q): it needs a shell; in exec form ([\"%s\", ...]) the shell can go", e.Args[0], e.Args[2], e.Command.Name)
	}
	if e.Lang != "" && e.Program != nil && len(e.Problems) == 0 {
		v("%s app %s: slim keeps the interpreter, its libraries and runtime files and the app", e.Lang, e.Script)
	}
	// Worth saying only when slim would cut something real (a fifth or more).
	if r.Slim != nil && len(e.Problems) == 0 && r.Size > 0 && r.Slim.Bytes*5 < r.Size*4 {
		v("berth slim would keep %d of %d files: %s instead of %s (%.0fx smaller)", r.Slim.Files, r.Files, MB(r.Slim.Bytes), MB(r.Size), float64(r.Size)/float64(max(r.Slim.Bytes, 1)))
	}
	if r.Shell != "" || len(r.PackageManagers) > 0 {
		var what []string
		if r.Shell != "" {
			what = append(what, "a shell")
		}
		if len(r.PackageManagers) > 0 {
			what = append(what, "a package manager ("+strings.Join(r.PackageManagers, ", ")+")")
		}
		v("carries %s: attack surface an entrypoint that does not exec them never needs", strings.Join(what, " and "))
	}
	if r.RunsAsRoot {
		v("runs as root: set USER to an unprivileged uid (e.g. 65532)")
	}
	if len(r.Setuid) > 0 {
		v("%d setuid/setgid files: privilege escalation paths", len(r.Setuid))
	}
	if r.Wasted > 0 {
		v("%s wasted by files shadowed or deleted in later layers: remove them in the step that creates them", MB(r.Wasted))
	}
	if len(r.WorldWritable) > 0 {
		v("%d world-writable directories without the sticky bit: %s", len(r.WorldWritable), strings.Join(r.WorldWritable, ", "))
	}
}

func pathList(l []PathSize) string {
	var s []string
	for _, p := range l {
		s = append(s, p.Path)
	}
	return strings.Join(s, " ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// WriteText prints the report for a person.
func (r *Report) WriteText(out io.Writer) {
	var buf bytes.Buffer
	defer writePrintable(out, &buf)
	w := io.Writer(&buf)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	f := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	f("image", "%s (%s)", r.Image, r.Platform)
	f("os", "%s", r.OS)
	f("libc", "%s", r.Libc)
	f("shell", "%s", orNone(r.Shell))
	if len(r.Shells) > 0 {
		f("shells", "%s", strings.Join(r.Shells, " "))
	}
	f("package manager", "%s", orNone(strings.Join(r.PackageManagers, ", ")))
	f("files", "%d (%d dirs, %d symlinks)", r.Files, r.Dirs, r.Symlinks)
	f("size", "%s", MB(r.Size))
	for _, l := range r.Layers {
		f(fmt.Sprintf("  layer %d", l.Index), "%s in %d entries, wastes %s", MB(l.Bytes), l.Entries, MB(l.Wasted))
	}
	f("wasted", "%s", MB(r.Wasted))
	f("setuid/setgid", "%d", len(r.Setuid))
	for _, s := range r.Setuid {
		f("", "%s", s)
	}
	f("world-writable", "%s", orNone(strings.Join(r.WorldWritable, " ")))
	f("user", "%s (runs as root: %s)", orDefault(r.User, "(none)"), yesNo(r.RunsAsRoot))
	if len(r.Users) > 0 {
		f("login users", "%s", strings.Join(r.Users, " "))
	}
	f("ca certificates", "%s", orNone(r.CACerts))
	f("tzdata", "%s", func() string {
		if r.Tzdata == 0 {
			return "none"
		}
		return fmt.Sprintf("%d zone files", r.Tzdata)
	}())
	tw.Flush()
	fmt.Fprintln(w, "\nlargest files:")
	for _, p := range r.LargestFiles {
		fmt.Fprintf(w, "  %10s  %s\n", MB(p.Size), p.Path)
	}
	fmt.Fprintln(w, "largest directories:")
	for _, p := range r.LargestDirs {
		fmt.Fprintf(w, "  %10s  %s\n", MB(p.Size), p.Path)
	}
	fmt.Fprintln(w, "\nentrypoint:")
	r.Entry.writeText(w)
	fmt.Fprintln(w, "\nverdict:")
	for _, s := range r.Verdict {
		fmt.Fprintf(w, "  - %s\n", s)
	}
}

func (e *Entry) writeText(w io.Writer) {
	if len(e.Args) == 0 {
		fmt.Fprintln(w, "  none")
		return
	}
	fmt.Fprintf(w, "  args: %q\n", e.Args)
	var show func(p *Program, indent string)
	show = func(p *Program, indent string) {
		if !p.Found {
			fmt.Fprintf(w, "%s%s: NOT FOUND\n", indent, p.Name)
			return
		}
		desc := p.Kind
		if p.Kind == "elf" {
			desc = fmt.Sprintf("ELF %s, %s", p.Arch, p.Linkage)
			if p.Libc != "" {
				desc += " " + p.Libc
			}
		}
		fmt.Fprintf(w, "%s%s -> %s (%s, %s)\n", indent, p.Name, p.Real, desc, MB(p.Size))
		if c := p.Closure; c != nil {
			fmt.Fprintf(w, "%s  interpreter %s\n", indent, c.Interp)
			var names []string
			for k := range c.Libs {
				names = append(names, k)
			}
			sort.Strings(names)
			for _, k := range names {
				fmt.Fprintf(w, "%s  %s => %s\n", indent, k, orDefault(c.Libs[k], "NOT FOUND"))
			}
		}
		if p.Shebang != "" {
			fmt.Fprintf(w, "%s  #!%s\n", indent, p.Shebang)
		}
		if p.Interpreter != nil {
			show(p.Interpreter, indent+"  ")
		}
	}
	show(e.Program, "  ")
	if e.Command != nil {
		fmt.Fprintln(w, "  its -c command:")
		show(e.Command, "    ")
	}
	if e.Script != "" {
		fmt.Fprintf(w, "  %s app: %s (found: %s)\n", e.Lang, e.Script, yesNo(e.ScriptOK))
	}
	for _, p := range e.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
}

func orNone(s string) string { return orDefault(s, "none") }

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// WriteCompare prints seed 001's table, one column per image.
func WriteCompare(out io.Writer, reports []*Report) {
	var buf bytes.Buffer
	defer writePrintable(out, &buf)
	w := io.Writer(&buf)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, fn func(r *Report) string) {
		cells := []string{k}
		for _, r := range reports {
			cells = append(cells, fn(r))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	row("", func(r *Report) string { return r.Image })
	row("os", func(r *Report) string { return r.OS })
	row("size", func(r *Report) string { return MB(r.Size) })
	row("files", func(r *Report) string { return strconv.Itoa(r.Files) })
	row("shell", func(r *Report) string { return yesNo(r.Shell != "") })
	row("package manager", func(r *Report) string { return orNone(strings.Join(r.PackageManagers, ",")) })
	row("libc", func(r *Report) string { return r.Libc })
	row("setuid", func(r *Report) string { return strconv.Itoa(len(r.Setuid)) })
	row("runs as root", func(r *Report) string { return yesNo(r.RunsAsRoot) })
	row("entrypoint", func(r *Report) string {
		switch {
		case r.Entry.Program == nil:
			return "none"
		case len(r.Entry.Problems) > 0:
			return "BROKEN"
		case r.Entry.Program.Kind == "elf":
			return r.Entry.Program.Linkage
		}
		return r.Entry.Program.Kind
	})
	row("slim estimate", func(r *Report) string {
		if r.Slim == nil {
			return "-"
		}
		return MB(r.Slim.Bytes)
	})
	tw.Flush()
}

// writePrintable writes the report with control characters shown as '?':
// os-release, passwd, file names and the config are the image's words,
// and escape sequences in them would drive the reader's terminal (rewrite
// the screen, set the clipboard with OSC 52).
func writePrintable(w io.Writer, buf *bytes.Buffer) {
	w.Write(bytes.Map(func(r rune) rune {
		if r != '\n' && r != '\t' && unicode.IsControl(r) {
			return '?'
		}
		return r
	}, buf.Bytes()))
}
