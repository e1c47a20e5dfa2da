package inspect

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Plan is the set of paths a distroless copy of an image keeps.
type Plan struct {
	Entry *Entry
	Keep  map[string]string // path -> why it is kept
	Files int               // regular files kept
	Bytes int64             // their bytes
}

// Paths lists the kept paths in order.
func (p *Plan) Paths() []string {
	out := make([]string, 0, len(p.Keep))
	for k := range p.Keep {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Files a glibc program reads at run time (user and host lookups, the
// loader's cache) and the trust and time data most programs expect.
var (
	glibcRuntime = []string{"/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d"}
	caFiles      = []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem", "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"}
	tzFiles      = []string{"/usr/share/zoneinfo", "/etc/localtime", "/etc/timezone"}
	alwaysFiles  = []string{"/etc/passwd", "/etc/group"}
	emptyDirs    = []string{"/tmp", "/proc", "/sys", "/dev", "/etc", "/root", "/run", "/var/tmp"}
)

// runtimeDirs are the directories an interpreter loads its standard
// library and modules from. %s is Debian's multiarch triple.
func (fs *FS) runtimeDirs(lang, interpReal string, ma string) []string {
	switch lang {
	case "node":
		return []string{"/usr/lib/node_modules", "/usr/local/lib/node_modules", "/usr/share/nodejs", "/usr/lib/nodejs", "/usr/lib/" + ma + "/nodejs"}
	case "python":
		base := path.Base(interpReal)
		dirs := []string{"/usr/lib/python3/dist-packages", "/usr/local/lib/" + base, "/usr/lib/" + base}
		if base == "python3" || base == "python" {
			dirs = append(dirs, fs.glob("/usr/lib/python3.*")...)
			dirs = append(dirs, fs.glob("/usr/local/lib/python3.*")...)
		}
		return dirs
	case "perl":
		return []string{"/usr/share/perl", "/usr/share/perl5", "/usr/lib/" + ma + "/perl", "/usr/lib/" + ma + "/perl5", "/usr/lib/" + ma + "/perl-base", "/usr/local/lib/site_perl", "/usr/local/share/perl", "/etc/perl"}
	case "ruby":
		return []string{"/usr/lib/ruby", "/usr/lib/" + ma + "/ruby", "/usr/local/lib/ruby"}
	case "php":
		return []string{"/usr/lib/php", "/usr/share/php", "/etc/php"}
	}
	return nil
}

// MakePlan decides what a slim copy of the image keeps: the entrypoint
// with its ELF closure, what glibc loads at run time, CA certificates,
// tzdata, an interpreted app with its interpreter's runtime files, and
// the include paths.
func (fs *FS) MakePlan(cfg *v1.ConfigFile, includes []string) (*Plan, error) {
	pl := &Plan{Keep: map[string]string{}}
	e := fs.ResolveEntry(cfg)
	pl.Entry = e
	addTree := func(p, why string) {
		n, real, links := fs.Resolve(p)
		if n == nil {
			return
		}
		for _, l := range links {
			pl.add(l.Path, why)
		}
		n.walk(func(c *Node) {
			pl.add(path.Join(real, strings.TrimPrefix(c.Path, n.Path)), why)
		})
	}
	for _, p := range alwaysFiles {
		addTree(p, "users and groups")
	}
	for _, p := range emptyDirs {
		if n := fs.lookup(p); n != nil && n.Type == tar.TypeDir {
			pl.add(p, "mount point")
		}
	}
	if wd := cfg.Config.WorkingDir; wd != "" {
		if n, real, _ := fs.Resolve(wd); n != nil && n.Type == tar.TypeDir {
			pl.add(real, "WORKDIR")
		}
	}
	for _, inc := range includes {
		if !fs.Exists(inc) {
			return nil, fmt.Errorf("--include %s: no such path in the image", inc)
		}
		addTree(inc, "--include")
	}
	for _, p := range caFiles {
		addTree(p, "CA certificates")
	}
	for _, p := range tzFiles {
		addTree(p, "tzdata")
	}
	var addProgram func(pr *Program, why string)
	addProgram = func(pr *Program, why string) {
		if pr == nil || !pr.Found {
			return
		}
		for _, l := range pr.links {
			pl.add(l.Path, why)
		}
		pl.add(pr.Real, why)
		if pr.envProg != nil {
			addProgram(pr.envProg, why)
		}
		addProgram(pr.Interpreter, "interpreter")
	}
	addProgram(e.Program, "entrypoint")
	addProgram(e.Command, "command")
	if e.Lang != "" && e.Script != "" {
		interp := e.Program
		if e.Command != nil {
			interp = e.Command
		}
		if interp.Interpreter != nil {
			interp = interp.Interpreter
		}
		ma := "x86_64-linux-gnu"
		if interp.node != nil && interp.node.ELF != nil && multiarch[interp.node.ELF.Machine] != "" {
			ma = multiarch[interp.node.ELF.Machine]
		}
		for _, d := range fs.runtimeDirs(e.Lang, interp.Real, ma) {
			addTree(d, e.Lang+" runtime")
		}
		app := e.workdir
		if app == "/" || !strings.HasPrefix(e.Script, strings.TrimSuffix(app, "/")+"/") {
			app = path.Dir(e.Script)
		}
		if app == "/" {
			addTree(e.Script, "app")
		} else {
			addTree(app, "app")
		}
	}
	// Close over ELF dependencies of everything kept so far: the
	// entrypoint, an interpreter's native modules, included binaries.
	// glibc's NSS modules are loaded by name from nsswitch.conf at run
	// time, so DT_NEEDED alone would miss them.
	done := map[string]bool{}
	glibc := false
	for {
		var todo []string
		for p := range pl.Keep {
			if !done[p] {
				todo = append(todo, p)
			}
		}
		if len(todo) == 0 {
			break
		}
		sort.Strings(todo)
		for _, p := range todo {
			done[p] = true
			n := fs.lookup(p)
			if n == nil || n.ELF == nil || !n.ELF.Dynamic {
				continue
			}
			c := fs.LoadClosure(p, n.ELF, e.ldPath)
			for _, k := range c.Paths {
				pl.add(k, "library")
			}
			if _, ok := c.Libs["libc.so.6"]; ok && !glibc {
				glibc = true
				for _, f := range glibcRuntime {
					addTree(f, "glibc runtime")
				}
				for _, svc := range nssServices(fs.Data("/etc/nsswitch.conf")) {
					if p, ok := fs.findLib("libnss_"+svc+".so.2", fs.searchDirs(n.ELF.Machine, false), n.ELF, map[string]bool{}, &Closure{}); ok {
						addTree(p, "NSS module")
						_, _, links := fs.Resolve(path.Join(path.Dir(p), "libnss_"+svc+".so.2"))
						for _, l := range links {
							pl.add(l.Path, "NSS module")
						}
					}
				}
			}
		}
	}
	if msg := fs.TooComplex(); msg != "" {
		return nil, errors.New(msg)
	}
	for p := range pl.Keep {
		if n := fs.lookup(p); n != nil && n.Type == tar.TypeReg {
			pl.Files++
			pl.Bytes += n.Size
		} else if n != nil && n.Type == tar.TypeLink && n.src != nil {
			pl.Files++
			pl.Bytes += n.src.Size
		}
	}
	return pl, nil
}

func (pl *Plan) add(p, why string) {
	if p == "" || p == "/" {
		return
	}
	if _, ok := pl.Keep[p]; !ok {
		pl.Keep[p] = why
	}
}

// nssServices lists the service names of nsswitch.conf ("files", "dns").
func nssServices(conf []byte) []string {
	seen := map[string]bool{}
	var out []string
	for _, line := range strings.Split(string(conf), "\n") {
		line, _, _ = strings.Cut(line, "#")
		_, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		for _, f := range strings.Fields(rest) {
			if strings.HasPrefix(f, "[") || seen[f] {
				continue
			}
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}

// SlimResult reports what Slim made.
type SlimResult struct {
	Image                   v1.Image
	Plan                    *Plan
	BeforeBytes, AfterBytes int64
	BeforeFiles, AfterFiles int
	Missing                 []string // problems the original entrypoint already had
	tmp                     string   // the layer's tar, until Close
}

// Close removes the slim layer's temp file: call it once Image is stored.
func (r *SlimResult) Close() {
	if r.tmp != "" {
		os.Remove(r.tmp)
		r.tmp = ""
	}
}

// Slim makes a single-layer copy of img holding only what MakePlan keeps,
// with img's config (entrypoint, env, user, workdir...).
func Slim(img v1.Image, includes []string) (*SlimResult, error) {
	fs, err := ReadFS(img)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	pl, err := fs.MakePlan(cfg, includes)
	if err != nil {
		return nil, err
	}
	if pl.Entry.Program == nil {
		return nil, fmt.Errorf("image has no entrypoint or cmd: nothing to slim for")
	}
	if !pl.Entry.Program.Found {
		return nil, fmt.Errorf("entrypoint %s not found in the image", pl.Entry.Program.Name)
	}
	// Parents of every kept path, so the layer carries their modes and owners.
	for p := range pl.Keep {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := pl.Keep[d]; ok {
				break
			}
			pl.Keep[d] = "parent"
		}
	}
	// The layer goes to a temp file, file contents streamed from the
	// original's layers: kept in memory, a kept file of many GB (zeros
	// compress to almost nothing) took as much memory, twice.
	tmp, err := os.CreateTemp("", "berth-slim-*.tar")
	if err != nil {
		return nil, err
	}
	res := &SlimResult{Plan: pl, Missing: pl.Entry.Problems, tmp: tmp.Name()}
	err = fs.writeLayer(img, pl, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	var layer v1.Layer
	if err == nil {
		layer, err = tarball.LayerFromFile(tmp.Name())
	}
	if err != nil {
		res.Close()
		return nil, err
	}
	mtime := time.Unix(0, 0)
	nc := cfg.DeepCopy()
	nc.RootFS = v1.RootFS{Type: "layers"}
	nc.History = nil
	base, err := mutate.ConfigFile(empty.Image, nc)
	if err != nil {
		res.Close()
		return nil, err
	}
	out, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: "berth slim", Created: v1.Time{Time: mtime}}})
	if err != nil {
		res.Close()
		return nil, err
	}
	res.Image = out
	// Counted as doctor counts: everything but directories and symlinks.
	fs.Walk(func(n *Node) {
		if n.Type != tar.TypeDir && n.Type != tar.TypeSymlink {
			res.BeforeFiles++
			res.BeforeBytes += n.Size
		}
	})
	res.AfterFiles, res.AfterBytes = pl.Files, pl.Bytes
	return res, nil
}

// writeLayer writes the slim layer's tar to w: directories and symlinks
// in path order, then each kept regular file as the original's layers
// are read (one pass over each layer needed), its content copied from
// the layer that wrote it; a file kept at several paths (a hardlink's
// target) is written once and linked from the others.
func (fs *FS) writeLayer(img v1.Image, pl *Plan, w io.Writer) error {
	tw := tar.NewWriter(w)
	mtime := time.Unix(0, 0)
	header := func(p string, n *Node) *tar.Header {
		return &tar.Header{Name: strings.TrimPrefix(p, "/"), Mode: n.Mode, Uid: n.UID, Gid: n.GID, ModTime: mtime, Format: tar.FormatPAX}
	}
	want := map[int]map[string][]string{} // layer -> path in layer -> kept paths
	for _, p := range pl.Paths() {
		n := fs.lookup(p)
		if n == nil {
			continue
		}
		h := header(p, n)
		switch n.Type {
		case tar.TypeDir:
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		case tar.TypeSymlink:
			h.Typeflag, h.Linkname = tar.TypeSymlink, n.Link
		case tar.TypeReg, tar.TypeLink:
			s := n
			if n.Type == tar.TypeLink {
				if n.src == nil {
					return fmt.Errorf("%s: hardlink to %s whose target is gone", p, n.Link)
				}
				s = n.src
			}
			if s.Type == tar.TypeReg {
				if want[s.Layer] == nil {
					want[s.Layer] = map[string][]string{}
				}
				want[s.Layer][s.Path] = append(want[s.Layer][s.Path], p)
				continue
			}
			h.Typeflag = tar.TypeReg // a hardlink to a non-file: empty, as before
		default:
			continue // devices, fifos: the runtime provides /dev
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for i, l := range layers {
		files := want[i]
		if len(files) == 0 {
			continue
		}
		if err := fs.copyFiles(i, l, files, tw, header); err != nil {
			return err
		}
	}
	return tw.Close()
}

// copyFiles copies the kept files layer i wrote (every occurrence: a
// later entry of the same name replaces an earlier one, in the view as
// when the slim layer is applied).
func (fs *FS) copyFiles(i int, l v1.Layer, w map[string][]string, tw *tar.Writer, header func(string, *Node) *tar.Header) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	found := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		p, err := clean(h.Name)
		if err != nil {
			continue
		}
		dst, ok := w[p]
		if !ok || (h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA) {
			continue
		}
		found[p] = true
		for j, d := range dst {
			out := header(d, fs.lookup(d))
			if j == 0 {
				out.Typeflag, out.Size = tar.TypeReg, h.Size
			} else {
				out.Typeflag, out.Linkname = tar.TypeLink, strings.TrimPrefix(dst[0], "/")
			}
			if err := tw.WriteHeader(out); err != nil {
				return err
			}
			if j == 0 {
				if _, err := io.Copy(tw, tr); err != nil {
					return fmt.Errorf("layer %d: %s: %w", i, p, err)
				}
			}
		}
	}
	for p := range w {
		if !found[p] {
			return fmt.Errorf("layer %d: %s vanished while reading", i, p)
		}
	}
	return nil
}

// noEnv expands no variables in --probe's words.
type noEnv struct{}

func (noEnv) Get(string) (string, bool) { return "", false }
func (noEnv) Keys() []string            { return nil }

// SplitArgs splits --probe's argument string into words as a shell
// would (quotes and backslashes), expanding nothing.
func SplitArgs(s string) ([]string, error) {
	return shell.NewLex('\\').ProcessWords(s, noEnv{})
}

// ProbeResult is what one `berth run` of a probe printed.
type ProbeResult struct {
	Stdout, Stderr string
	Code           int
}

// Probe runs `berth [global...] run --rm IMAGE args...` for the original
// and the slim image and fails when their stdout, stderr or exit status
// differ: the slim image must behave as the original did.
func Probe(berth string, global []string, orig, slim string, args []string) (ProbeResult, ProbeResult, error) {
	runOne := func(ref string) (ProbeResult, error) {
		argv := append(append(append([]string{}, global...), "run", "--rm", ref), args...)
		cmd := exec.Command(berth, argv...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		r := ProbeResult{Stdout: out.String(), Stderr: errb.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.Code = ee.ExitCode()
		} else if err != nil {
			return r, fmt.Errorf("probe: %s run %s: %w", berth, ref, err)
		}
		return r, nil
	}
	a, err := runOne(orig)
	if err != nil {
		return a, ProbeResult{}, err
	}
	b, err := runOne(slim)
	if err != nil {
		return a, b, err
	}
	switch {
	case a.Code != b.Code:
		return a, b, fmt.Errorf("probe %q: exit status %d from %s, %d from %s (stderr: %s)", strings.Join(args, " "), a.Code, orig, b.Code, slim, strings.TrimSpace(b.Stderr))
	case a.Stdout != b.Stdout:
		return a, b, fmt.Errorf("probe %q: output differs: %s printed %q, %s printed %q", strings.Join(args, " "), orig, clip(a.Stdout), slim, clip(b.Stdout))
	case a.Stderr != b.Stderr:
		return a, b, fmt.Errorf("probe %q: stderr differs: %s printed %q, %s printed %q", strings.Join(args, " "), orig, clip(a.Stderr), slim, clip(b.Stderr))
	}
	return a, b, nil
}

func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}
