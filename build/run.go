package build

import (
	"archive/tar"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/layer"
)

// runArgs is the argv of a RUN: the shell form runs in SHELL; a heredoc
// is run as a script (with its own interpreter when it has a #! line) or
// handed to the shell whole, as BuildKit does.
func (st *state) runArgs(c *instructions.RunCommand) (args []string, script []byte, err error) {
	args = c.CmdLine
	if len(c.Files) > 0 {
		if len(args) != 1 || !c.PrependShell {
			return nil, nil, errors.New("heredoc RUN must use the shell form")
		}
		if h := parser.MustParseHeredoc(args[0]); h != nil {
			data := c.Files[0].Data
			if c.Files[0].Chomp {
				data = parser.ChompHeredocContent(data)
			}
			if strings.HasPrefix(data, "#!") {
				return []string{"/dev/pipes/" + c.Files[0].Name}, []byte(data), nil
			}
			args = []string{data}
		} else {
			var b strings.Builder
			b.WriteString(args[0])
			for _, f := range c.Files {
				b.WriteByte('\n')
				b.WriteString(f.Data)
				b.WriteString(f.Name)
			}
			args = []string{b.String()}
		}
	}
	if c.PrependShell {
		args = append(st.shell(), strings.Join(args, " "))
	}
	return args, nil, nil
}

func (st *state) run(line int, text string, c *instructions.RunCommand) error {
	b := st.s.b
	fail := func(err error) error { return &StepError{File: b.df.name, Line: line, Instruction: text, Err: err} }
	if sec := instructions.GetSecurity(c); sec == instructions.SecurityInsecure {
		return fail(errors.New("--security=insecure is not supported"))
	}
	network := instructions.GetNetwork(c)
	if n, ok := b.df.runNets[line]; ok {
		network = n
	}
	if network == "" || network == instructions.NetworkDefault {
		network = b.o.Network
	}
	if err := checkNetwork(b.o.StoreRoot, network); err != nil {
		return fail(err)
	}
	args, script, err := st.runArgs(c)
	if err != nil {
		return fail(err)
	}
	env := st.runEnv()
	wd := st.cfg.Config.WorkingDir
	if wd == "" {
		wd = "/"
	}
	key := []string{"RUN", strings.Join(args, "\x00"), string(script), strings.Join(env, "\x00"), st.cfg.Config.User, wd, network}
	mounts := instructions.GetMounts(c)
	for _, m := range mounts {
		key = append(key, fmt.Sprintf("mount %s from=%s src=%s dst=%s ro=%v id=%s", m.Type, m.From, m.Source, m.Target, m.ReadOnly, m.CacheID))
		switch m.Type {
		case instructions.MountTypeBind:
			if m.From == "" {
				// A bind of the context reads its files: their content is part of the key.
				src := &copySource{view: b.ctx.view, ctx: b.ctx, what: "the build context"}
				es, _, err := st.collect(src, copySpec{SourcesAndDest: instructions.SourcesAndDest{SourcePaths: []string{orDot(m.Source)}}}, "x", true, nil, false)
				if err != nil {
					return fail(fmt.Errorf("--mount source: %w", err))
				}
				h, err := b.cache.hashEntries(es)
				if err != nil {
					return fail(err)
				}
				key = append(key, h)
			} else if s := b.stageByName(m.From, st.s.idx); s != nil {
				if _, err := s.wait(); err != nil {
					return fmt.Errorf("stage %s: %w", st.s.name, errDepFailed)
				}
				key = append(key, s.key)
			} else {
				img, err := b.o.Store.Image(m.From, platformString(st.platform))
				if err != nil {
					return fail(fmt.Errorf("--mount from=%s: no stage or image of that name (%v)", m.From, err))
				}
				d, _ := img.Digest()
				key = append(key, d.String())
			}
		case instructions.MountTypeCache, instructions.MountTypeTmpfs:
		case instructions.MountTypeSecret:
			// (its content is not in the key, as under BuildKit: a new
			// token must not rebuild every step that uses it)
		default:
			return fail(fmt.Errorf("--mount=type=%s is not supported", m.Type))
		}
	}
	return st.runStep(line, stepOpts{text: text, key: key, stream: true, make: func() (*fileLayer, error) {
		return st.execRun(args, script, env, wd, network, mounts)
	}})
}

// filteredContext makes dir a copy of the build context without what
// .dockerignore excludes: the tree COPY . would take, files hardlinked
// where the file system allows (the bind is read-only, or under an
// overlay when rw, so the context's files are never written).
func (st *state) filteredContext(dir string) error {
	src := &copySource{view: st.s.b.ctx.view, ctx: st.s.b.ctx, what: "the build context"}
	es, _, err := st.collect(src, copySpec{SourcesAndDest: instructions.SourcesAndDest{SourcePaths: []string{"."}}}, "x", true, nil, false)
	if err != nil {
		return err
	}
	at := func(dst string) string {
		return filepath.Join(dir, strings.TrimPrefix(strings.TrimPrefix(dst, "x"), "/"))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Hardlinks last: they name another entry, maybe sorted after them.
	sort.SliceStable(es, func(i, j int) bool { return !es[i].hard && es[j].hard })
	for _, e := range es {
		p := at(e.dst)
		if e.mkdir || e.mode.IsDir() {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			if !e.mkdir {
				if err := os.Chmod(p, e.mode&(fs.ModePerm|fs.ModeSetgid|fs.ModeSticky)); err != nil {
					return err
				}
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		switch {
		case e.mode&fs.ModeSymlink != 0:
			err = os.Symlink(e.link, p)
		case e.hard:
			err = os.Link(at(e.link), p)
		case e.mode.IsRegular():
			if err = os.Link(e.host, p); err != nil {
				err = copyRegular(e.host, p, e.mode.Perm())
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// copyRegular copies file src to a new file dst with mode perm.
func copyRegular(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func orDot(s string) string {
	if s == "" {
		return "."
	}
	return s
}

// execRun runs one RUN in berth's runtime over an overlay of the stage's
// snapshots and returns the changes as a layer.
func (st *state) execRun(args []string, script []byte, env []string, wd, network string, mounts []*instructions.Mount) (*fileLayer, error) {
	b := st.s.b
	prefix := st.prefix()
	lower, err := st.lowerView()
	if err != nil {
		return nil, err
	}
	uid, gid, extra, err := resolveUser(st.cfg.Config.User, lower)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(b.work, "run-")
	if err != nil {
		return nil, err
	}
	var unmounts []string
	defer func() {
		for i := len(unmounts) - 1; i >= 0; i-- {
			unix.Unmount(unmounts[i], unix.MNT_DETACH)
		}
		os.RemoveAll(tmp)
	}()
	upper, work, rootfs := filepath.Join(tmp, "upper"), filepath.Join(tmp, "work"), filepath.Join(tmp, "rootfs")
	for _, d := range []string{upper, work, rootfs} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := mountOverlay(rootfs, lower.layers, upper, work, tmp); err != nil {
		return nil, err
	}
	unmounts = append(unmounts, rootfs)

	// Paths the runtime creates as mount points: removed from the diff
	// afterwards when the image did not have them.
	var created []string
	mountpoint := func(p string) {
		if _, _, err := lower.Lstat(p); err != nil {
			created = append(created, p)
		}
	}
	for _, p := range []string{"proc", "sys", "dev", "etc/hosts", "etc/resolv.conf", "etc/hostname", "etc"} {
		mountpoint(p)
	}
	spec := buildSpec(args, env, wd, uid, gid, extra, network)
	// RUN gets Docker's default seccomp profile, as under BuildKit.
	if spec.Linux.Seccomp, err = seccomp.GetDefaultProfile(spec); err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	var hostsFile string
	if bridged(network) {
		// A hosts file of the step's own, which the attachment fills
		// with its address (and, on a user-defined network, the names
		// of the containers there).
		hostsFile = filepath.Join(tmp, "hosts")
		if err := os.WriteFile(hostsFile, []byte("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"), 0o644); err != nil {
			return nil, err
		}
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/etc/hosts", Type: "bind", Source: hostsFile, Options: []string{"rbind", "ro", "nosuid", "nodev"}})
	}
	id := "berth-build-" + randHex(6)
	if bridged(network) {
		spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{netHook(b.o.StoreRoot, network, id, hostsFile)}}
	}
	if network != "none" {
		for _, f := range []string{"/etc/resolv.conf", "/etc/hosts"} {
			if f == "/etc/hosts" && hostsFile != "" {
				continue
			}
			if _, err := os.Stat(f); err == nil {
				spec.Mounts = append(spec.Mounts, specs.Mount{Destination: f, Type: "bind", Source: f, Options: []string{"rbind", "ro", "nosuid", "nodev"}})
			}
		}
	}
	if script != nil {
		pipes := filepath.Join(tmp, "pipes")
		if err := os.Mkdir(pipes, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(pipes, path.Base(args[0])), script, 0o755); err != nil {
			return nil, err
		}
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/dev/pipes", Type: "bind", Source: pipes, Options: []string{"rbind", "ro"}})
	}
	for i, m := range mounts {
		if m.Type == instructions.MountTypeSecret {
			if err := st.secretMount(spec, m, tmp, i, mountpoint); err != nil {
				return nil, err
			}
			continue
		}
		target := m.Target
		if !path.IsAbs(target) {
			target = path.Join(wd, target)
		}
		mountpoint(strings.TrimPrefix(path.Clean(target), "/"))
		for d := path.Dir(path.Clean(target)); d != "/"; d = path.Dir(d) {
			mountpoint(strings.TrimPrefix(d, "/"))
		}
		opts := []string{"rbind"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		switch m.Type {
		case instructions.MountTypeCache:
			id := m.CacheID
			if id == "" {
				id = target
			}
			dir, err := b.cache.mountDir(id)
			if err != nil {
				return nil, err
			}
			if m.UID != nil || m.GID != nil {
				u, g := -1, -1
				if m.UID != nil {
					u = int(*m.UID)
				}
				if m.GID != nil {
					g = int(*m.GID)
				}
				os.Chown(dir, u, g)
			}
			if m.Mode != nil {
				os.Chmod(dir, fs.FileMode(*m.Mode))
			}
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: target, Type: "bind", Source: dir, Options: opts})
		case instructions.MountTypeTmpfs:
			o := []string{"nosuid", "nodev"}
			if m.SizeLimit > 0 {
				o = append(o, "size="+strconv.FormatInt(m.SizeLimit, 10))
			}
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: target, Type: "tmpfs", Source: "tmpfs", Options: o})
		case instructions.MountTypeBind:
			var root string
			if m.From == "" {
				root = b.ctx.dir
				if b.ctx.ignore != nil {
					// The context itself would show the step the files
					// .dockerignore keeps out of the build: bind what
					// COPY would take instead.
					root = filepath.Join(tmp, "ctx-"+strconv.Itoa(i))
					if err := st.filteredContext(root); err != nil {
						return nil, fmt.Errorf("--mount=type=bind of the context: %w", err)
					}
				}
			} else {
				var v *fsView
				if s := b.stageByName(m.From, st.s.idx); s != nil {
					v, err = viewOf(b, s.img)
				} else {
					img, e := b.o.Store.Image(m.From, platformString(st.platform))
					if e != nil {
						return nil, e
					}
					v, err = viewOf(b, img)
				}
				if err != nil {
					return nil, err
				}
				root = filepath.Join(tmp, "bind-"+strconv.Itoa(i))
				if err := os.Mkdir(root, 0o755); err != nil {
					return nil, err
				}
				if err := mountReadOnly(root, v.layers, tmp); err != nil {
					return nil, err
				}
				unmounts = append(unmounts, root)
			}
			src, err := securejoin.SecureJoin(root, m.Source)
			if err != nil {
				return nil, err
			}
			if !m.ReadOnly {
				// A writable bind must not change its source: give the step a copy-on-write overlay of it.
				ow := filepath.Join(tmp, "bindrw-"+strconv.Itoa(i))
				for _, d := range []string{ow + "/u", ow + "/w", ow + "/m"} {
					if err := os.MkdirAll(d, 0o755); err != nil {
						return nil, err
					}
				}
				if err := unix.Mount("overlay", ow+"/m", "overlay", 0, "lowerdir="+src+",upperdir="+ow+"/u,workdir="+ow+"/w"); err != nil {
					return nil, fmt.Errorf("writable bind mount of %s: %w", m.Source, err)
				}
				unmounts = append(unmounts, ow+"/m")
				src = ow + "/m"
			}
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: target, Type: "bind", Source: src, Options: opts})
		}
	}
	cfgJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "config.json"), cfgJSON, 0o600); err != nil {
		return nil, err
	}
	out := b.pr.output(prefix)
	rd, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	copied := make(chan struct{})
	go func() { io.Copy(out, rd); rd.Close(); close(copied) }()
	null, err := os.Open(os.DevNull)
	if err != nil {
		wr.Close()
		return nil, err
	}
	if b.o.Runtime == nil {
		wr.Close()
		null.Close()
		return nil, errors.New("no container runtime to execute RUN with")
	}
	status, err := b.o.Runtime.RunBundle(id, tmp, []*os.File{null, wr, wr})
	if bridged(network) {
		// Also when the step failed or its hook did: detaching what is
		// not attached is no error.
		if derr := detachRun(b.o.StoreRoot, id); derr != nil && err == nil {
			err = derr
		}
	}
	wr.Close()
	null.Close()
	<-copied
	out.Close()
	if err != nil {
		return nil, &StepError{Err: fmt.Errorf("run in berth's runtime: %w", err), Tail: out.Tail()}
	}
	if status != 0 {
		return nil, &StepError{Err: fmt.Errorf("the command exited with status %d", status), Tail: out.Tail()}
	}
	for _, u := range unmounts[1:] {
		unix.Unmount(u, unix.MNT_DETACH)
	}
	unmounts = unmounts[:1]
	if err := unix.Unmount(rootfs, 0); err != nil {
		unix.Unmount(rootfs, unix.MNT_DETACH)
	}
	unmounts = nil
	// Drop the mount points the runtime made, deepest first, when empty.
	for i := len(created) - 1; i >= 0; i-- {
		p := filepath.Join(upper, created[i])
		if fi, err := os.Lstat(p); err == nil && (fi.IsDir() || (fi.Mode().IsRegular() && fi.Size() == 0)) {
			os.Remove(p) // fails harmlessly on a non-empty dir
		}
	}
	l, err := st.diffLayer(upper)
	if err != nil {
		return nil, err
	}
	// The upper dir is this layer unpacked in overlay form: later steps of
	// this build stack it as a lowerdir instead of waiting for the store
	// to unpack the layer again.
	keep := filepath.Join(b.work, "upper-"+randHex(8))
	if err := os.Rename(upper, keep); err == nil {
		st.pendingView = &fsView{layers: append(append([]string(nil), lower.layers...), keep)}
	}
	return l, nil
}

// diffLayer turns an overlay upper dir into a normalized layer.
func (st *state) diffLayer(upper string) (*fileLayer, error) {
	b := st.s.b
	lw, err := b.cache.newLayer(b.o.Timestamp)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(layer.Diff(upper, pw)) }()
	tr := tar.NewReader(pr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			pr.CloseWithError(err)
			lw.Abort()
			return nil, fmt.Errorf("diff: %w", err)
		}
		if err := lw.WriteHeader(h); err != nil {
			pr.CloseWithError(err)
			lw.Abort()
			return nil, err
		}
		if _, err := io.Copy(lw, tr); err != nil {
			pr.CloseWithError(err)
			lw.Abort()
			return nil, err
		}
	}
	return lw.Commit()
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// mountOverlay mounts layers (lowest first) with upper/work at target.
// Long lower lists are given relative to a common directory so the mount
// options stay under the kernel's page-size limit.
func mountOverlay(target string, layers []string, upper, work, tmp string) error {
	lowers := layers
	if len(lowers) == 0 {
		empty := filepath.Join(tmp, "empty")
		if err := os.Mkdir(empty, 0o755); err != nil {
			return err
		}
		lowers = []string{empty}
	}
	rev := make([]string, len(lowers))
	for i, l := range lowers {
		rev[len(lowers)-1-i] = l
	}
	opts := "lowerdir=" + strings.Join(rev, ":") + ",upperdir=" + upper + ",workdir=" + work
	if len(opts) >= 4000 {
		return fmt.Errorf("too many layers (%d) for one overlay mount", len(layers))
	}
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay for RUN: %w", err)
	}
	return nil
}

// mountReadOnly shows layers (lowest first) read-only at target.
func mountReadOnly(target string, layers []string, tmp string) error {
	switch len(layers) {
	case 0:
		return nil
	case 1:
		return unix.Mount(layers[0], target, "", unix.MS_BIND|unix.MS_REC, "")
	}
	rev := make([]string, len(layers))
	for i, l := range layers {
		rev[len(layers)-1-i] = l
	}
	return unix.Mount("overlay", target, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(rev, ":"))
}

// defaultCaps is Docker's default capability set, which RUN gets too.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// buildSpec is the OCI config of a RUN step: its own mount, pid, ipc and
// uts namespaces (and network unless host: a bridge network's veth is
// put in by a createRuntime hook), Docker's default mounts,
// capabilities and masked paths.
func buildSpec(args, env []string, wd string, uid, gid uint32, extra []uint32, network string) *specs.Spec {
	caps := append([]string(nil), defaultCaps...)
	ns := []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace}}
	if network != "host" {
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args: args, Env: env, Cwd: wd,
			User:         specs.User{UID: uid, GID: gid, AdditionalGids: extra},
			Capabilities: &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
		},
		Root:     &specs.Root{Path: "rootfs"},
		Hostname: runHostname,
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			Namespaces: ns,
			MaskedPaths: []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
}

// mkdirLayer is WORKDIR's layer: the directory and missing parents, or
// nothing when it exists.
func (st *state) mkdirLayer(p string) (*fileLayer, error) {
	lower, err := st.lowerView()
	if err != nil {
		return nil, err
	}
	rel := strings.Trim(p, "/")
	if rel == "" {
		return nil, nil
	}
	r, _, err := lower.resolve(rel, true)
	if err != nil {
		return nil, err
	}
	if _, fi, err := lower.Lstat(r); err == nil && fi.IsDir() {
		return nil, nil
	}
	e := &copyEntry{dst: r, mode: fs.ModeDir | 0o755, mtime: st.s.b.now()}
	return st.writeCopyLayer([]*copyEntry{e}, lower, [2]int{0, 0}, copySpec{})
}

// binfmtName maps a GOARCH to the qemu binfmt_misc handler's name.
var binfmtName = map[string]string{
	"arm64": "aarch64", "arm": "arm", "386": "i386", "amd64": "x86_64", "ppc64le": "ppc64le",
	"s390x": "s390x", "riscv64": "riscv64", "mips64le": "mips64el", "loong64": "loongarch64",
}

// binfmtDir is where the kernel lists binfmt_misc handlers.
var binfmtDir = "/proc/sys/fs/binfmt_misc"

// checkEmulation fails, before anything is built, when a needed stage
// has RUN steps for a CPU this host cannot execute.
func (b *builder) checkEmulation() error {
	host := hostPlatform()
	for _, s := range b.needed() {
		p := b.platform
		if s.st.Platform != "" {
			ps, err := newLex(b.df.escape).expand(s.st.Platform, mapEnv(b.metaEnv))
			if err == nil {
				if pp, err := v1.ParsePlatform(ps); err == nil {
					p = *pp
				}
			}
		}
		if p.Architecture == host.Architecture || (host.Architecture == "amd64" && p.Architecture == "386") {
			continue
		}
		hasRun := false
		for _, c := range s.st.Commands {
			if _, ok := c.(*instructions.RunCommand); ok {
				hasRun = true
			}
		}
		if !hasRun {
			continue
		}
		name := binfmtName[p.Architecture]
		if name == "" {
			name = p.Architecture
		}
		f := filepath.Join(binfmtDir, "qemu-"+name)
		data, err := os.ReadFile(f)
		if err != nil || !strings.HasPrefix(string(data), "enabled") {
			return fmt.Errorf("stage %s for %s has RUN steps but this %s host has no binfmt_misc handler for %s (%s missing or disabled): install qemu-user-static and run `update-binfmts --enable qemu-%s`, or build without RUN for that platform",
				s.name, platformString(p), platformString(host), name, f, name)
		}
	}
	return nil
}

// secretMount gives a RUN step the --secret its mount names: a file (by
// default /run/secrets/ID, mode 0400, owned by root or the mount's
// uid/gid) bound read-only, or an environment variable (env=NAME). A
// secret the build was not given fails a required mount and is left out
// otherwise, as under BuildKit.
func (st *state) secretMount(spec *specs.Spec, m *instructions.Mount, tmp string, i int, mountpoint func(string)) error {
	id := m.CacheID
	if id == "" {
		id = m.Source
	}
	if id == "" {
		id = path.Base(m.Target)
	}
	data, ok := st.s.b.o.Secrets[id]
	if !ok {
		if m.Required {
			return fmt.Errorf("--mount=type=secret,id=%s: no such secret (berth build --secret id=%s,src=FILE)", id, id)
		}
		return nil
	}
	if m.Env != nil {
		name := *m.Env
		if name == "" {
			name = id
		}
		spec.Process.Env = append(spec.Process.Env, name+"="+string(data))
		if m.Target == "" {
			return nil
		}
	}
	target := m.Target
	if target == "" {
		target = "/run/secrets/" + id
	}
	if !path.IsAbs(target) {
		target = path.Join("/run/secrets", target)
	}
	target = path.Clean(target)
	mode, uid, gid := uint64(0o400), uint64(0), uint64(0)
	if m.Mode != nil {
		mode = *m.Mode
	}
	if m.UID != nil {
		uid = *m.UID
	}
	if m.GID != nil {
		gid = *m.GID
	}
	f := filepath.Join(tmp, "secret-"+strconv.Itoa(i))
	if err := os.WriteFile(f, data, 0o400); err != nil {
		return err
	}
	if err := os.Chown(f, int(uid), int(gid)); err != nil {
		return err
	}
	if err := os.Chmod(f, os.FileMode(mode&0o7777)); err != nil {
		return err
	}
	for p := target; p != "/"; p = path.Dir(p) {
		mountpoint(strings.TrimPrefix(p, "/"))
	}
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: target, Type: "bind", Source: f, Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}})
	return nil
}
