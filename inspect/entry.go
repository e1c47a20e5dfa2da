package inspect

import (
	"archive/tar"
	"debug/elf"
	"path"
	"regexp"
	goruntime "runtime"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// defaultPath is the PATH a container gets when its image sets none
// (Docker's and the OCI runtimes' choice).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Program is an executable resolved inside the image the way the runtime
// and the kernel would resolve it: PATH lookup, WORKDIR, symlinks.
type Program struct {
	Name    string   `json:"name"`           // as written in the config or shebang
	Path    string   `json:"path,omitempty"` // where PATH lookup found it
	Real    string   `json:"real,omitempty"` // after symlinks
	Found   bool     `json:"found"`
	Kind    string   `json:"kind"`              // elf, script, other, missing
	Arch    string   `json:"arch,omitempty"`    // GOARCH naming of the ELF machine
	Linkage string   `json:"linkage,omitempty"` // static, dynamic
	Libc    string   `json:"libc,omitempty"`    // glibc, musl (dynamic only)
	Closure *Closure `json:"closure,omitempty"`
	// Interpreter is a script's shebang interpreter (after /usr/bin/env).
	Interpreter *Program `json:"interpreter,omitempty"`
	Shebang     string   `json:"shebang,omitempty"`
	Size        int64    `json:"size"`
	envProg     *Program // the env of `#!/usr/bin/env X`
	links       []*Node
	node        *Node
}

// Entry is the image's entrypoint+cmd and how it would start.
type Entry struct {
	Args    []string `json:"args"`
	Program *Program `json:"program,omitempty"`
	// Command is what a shell-form entrypoint's `sh -c` runs.
	Command  *Program `json:"command,omitempty"`
	Script   string   `json:"script,omitempty"` // the app file of `node app.js`, `python3 app.py`
	ScriptOK bool     `json:"script_found,omitempty"`
	Lang     string   `json:"lang,omitempty"` // node, python, perl, ruby, php
	Problems []string `json:"problems,omitempty"`
	workdir  string
	pathEnv  []string
	ldPath   []string
	arch     string // the image config's architecture
}

var elfArch = map[elf.Machine]string{
	elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64", elf.EM_386: "386", elf.EM_ARM: "arm",
	elf.EM_PPC64: "ppc64le", elf.EM_S390: "s390x", elf.EM_RISCV: "riscv64", elf.EM_MIPS: "mips",
}

// Compiled on first use, not at package init: every berth process, a
// container's start included, would pay for it.
var langOf = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(node|nodejs|python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|php[0-9.]*)$`)
})

func envValue(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// ResolveEntry resolves the config's entrypoint and cmd.
func (fs *FS) ResolveEntry(cfg *v1.ConfigFile) *Entry {
	c := cfg.Config
	e := &Entry{Args: append(append([]string{}, c.Entrypoint...), c.Cmd...), workdir: c.WorkingDir, arch: cfg.Architecture}
	if e.workdir == "" {
		e.workdir = "/"
	}
	p, ok := envValue(c.Env, "PATH")
	if !ok {
		p = defaultPath
	}
	e.pathEnv = strings.Split(p, ":")
	if v, ok := envValue(c.Env, "LD_LIBRARY_PATH"); ok && v != "" {
		e.ldPath = strings.Split(v, ":")
	}
	if len(e.Args) == 0 {
		e.Problems = append(e.Problems, "no entrypoint or cmd: the image runs only with a command given")
		return e
	}
	e.Program = fs.program(e.Args[0], e, cfg.Architecture, 0)
	e.collect(e.Program)
	prog, args := e.Program, e.Args[1:]
	// Shell form (`CMD node app.js` is ["/bin/sh", "-c", "node app.js"]):
	// the shell starts, then the command its script names.
	if words := shellForm(e.Program, e.Args); len(words) > 0 {
		e.Command = fs.program(words[0], e, cfg.Architecture, 0)
		e.collect(e.Command)
		prog, args = e.Command, words[1:]
	}
	if prog.Interpreter != nil {
		e.lang(fs, prog.Interpreter, nil, prog.Real)
	} else {
		e.lang(fs, prog, args, "")
	}
	if msg := fs.TooComplex(); msg != "" {
		e.Problems = append(e.Problems, msg)
	}
	return e
}

// shellForm returns the words of `sh -c SCRIPT`'s command (after exec
// and variable assignments), nil when args are not that form or the
// script is more than a simple command.
func shellForm(p *Program, args []string) []string {
	if !p.Found || len(args) < 3 || args[1] != "-c" {
		return nil
	}
	switch path.Base(p.Real) {
	case "sh", "bash", "dash", "ash", "busybox":
	default:
		return nil
	}
	if strings.ContainsAny(args[2], ";|&<>`$(){}\n") {
		return nil
	}
	words, err := SplitArgs(args[2])
	if err != nil {
		return nil
	}
	for len(words) > 0 && (words[0] == "exec" || strings.Contains(words[0], "=")) {
		words = words[1:]
	}
	return words
}

// lang notes an interpreted app: p is the interpreter, run with args
// (`node app.js`) or on script (a #! file).
func (e *Entry) lang(fs *FS, p *Program, args []string, script string) {
	if !p.Found {
		return
	}
	base := path.Base(p.Real)
	if !langOf().MatchString(path.Base(p.Name)) && !langOf().MatchString(base) {
		return
	}
	e.Lang = langName(base)
	if script != "" {
		e.Script, e.ScriptOK = script, true
		return
	}
	// The first argument that is not an option names the app.
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			e.Script = fs.abs(a, e.workdir)
			e.ScriptOK = fs.Exists(e.Script)
			if !e.ScriptOK {
				e.Problems = append(e.Problems, e.Lang+" script "+e.Script+" not found")
			}
			return
		}
	}
}

func langName(base string) string {
	switch {
	case strings.HasPrefix(base, "node"):
		return "node"
	case strings.HasPrefix(base, "python"):
		return "python"
	case strings.HasPrefix(base, "perl"):
		return "perl"
	case strings.HasPrefix(base, "ruby"):
		return "ruby"
	case strings.HasPrefix(base, "php"):
		return "php"
	}
	return ""
}

func (fs *FS) abs(p, dir string) string {
	if strings.HasPrefix(p, "/") {
		return path.Clean(p)
	}
	return path.Join("/", dir, p)
}

// lookPath finds name as execve after a PATH search would.
func (fs *FS) lookPath(name string, e *Entry) (string, *Node, string, []*Node) {
	if strings.Contains(name, "/") {
		p := fs.abs(name, e.workdir)
		n, real, links := fs.Resolve(p)
		return p, n, real, links
	}
	for _, d := range e.pathEnv {
		if d == "" {
			d = "."
		}
		p := fs.abs(path.Join(d, name), e.workdir)
		n, real, links := fs.Resolve(p)
		if n != nil && n.Type != tar.TypeDir && n.Mode&0o111 != 0 {
			return p, n, real, links
		}
	}
	return "", nil, "", nil
}

func (fs *FS) program(name string, e *Entry, imageArch string, depth int) *Program {
	pr := &Program{Name: name, Kind: "missing"}
	p, n, real, links := fs.lookPath(name, e)
	pr.Path, pr.Real, pr.links, pr.node = p, real, links, n
	if n == nil || n.Type == tar.TypeDir {
		return pr
	}
	pr.Found, pr.Size = true, n.Size
	if n.src != nil {
		pr.Size = n.src.Size
	}
	switch {
	case n.ELF != nil:
		pr.Kind = "elf"
		pr.Arch = elfArch[n.ELF.Machine]
		if n.ELF.Interp == "" {
			pr.Linkage = "static"
		} else {
			pr.Linkage = "dynamic"
			pr.Closure = fs.LoadClosure(real, n.ELF, e.ldPath)
			pr.Libc = "glibc"
			if pr.Closure.Musl {
				pr.Libc = "musl"
			}
		}
	case n.Shebang != "":
		pr.Kind, pr.Shebang = "script", n.Shebang
		f := strings.Fields(n.Shebang)
		if len(f) > 0 && depth < 4 {
			interp := f[0]
			// `#!/usr/bin/env X` executes X found on PATH; env itself must exist too.
			if path.Base(interp) == "env" && len(f) > 1 {
				envProg := fs.program(interp, e, imageArch, depth+1)
				arg := f[1]
				if arg == "-S" && len(f) > 2 {
					arg = f[2]
				}
				pr.Interpreter = fs.program(arg, e, imageArch, depth+1)
				if !envProg.Found {
					pr.Interpreter = envProg
				} else {
					pr.Interpreter.links = append(pr.Interpreter.links, envProg.links...)
					pr.Interpreter.envProg = envProg
				}
			} else {
				pr.Interpreter = fs.program(interp, e, imageArch, depth+1)
			}
		}
	default:
		pr.Kind = "other"
	}
	return pr
}

// collect lists what keeps the entrypoint from starting.
func (e *Entry) collect(p *Program) {
	if p == nil {
		return
	}
	switch {
	case !p.Found:
		e.Problems = append(e.Problems, p.Name+": not found in the image: exec fails with \"no such file or directory\"")
	case p.node.Mode&0o111 == 0:
		e.Problems = append(e.Problems, p.Real+": not executable: exec fails with \"permission denied\"")
	case p.Kind == "other":
		e.Problems = append(e.Problems, p.Real+": neither ELF nor a #! script: exec fails with \"exec format error\"")
	case p.Kind == "elf" && e.arch != "" && p.Arch != e.arch:
		e.Problems = append(e.Problems, p.Real+": built for "+p.Arch+" but the image config says "+e.arch)
	case p.Kind == "elf" && p.Arch != goruntime.GOARCH:
		e.Problems = append(e.Problems, p.Real+": built for "+p.Arch+", host is "+goruntime.GOARCH+": needs a binfmt handler (qemu-user-static)")
	}
	if p.Closure != nil {
		for _, m := range p.Closure.Missing {
			e.Problems = append(e.Problems, m.Error+" (needed by "+m.NeededBy+")")
		}
	}
	if p.envProg != nil {
		e.collect(p.envProg)
	}
	e.collect(p.Interpreter)
}
