package inspect

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"github.com/berthproject/berth/store"
	"github.com/containerd/console"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultToolbox is the image berth makes from busybox-static when
// `berth debug` is given no --toolbox.
const DefaultToolbox = "berth.local/toolbox:busybox"

// busyboxPath is where Debian's busybox-static installs its binary.
const busyboxPath = "/bin/busybox"

// ToolboxImage returns the toolbox image ref, making the default one from
// the host's static busybox the first time it is asked for.
func ToolboxImage(s *store.Store, ref string) (v1.Image, error) {
	if ref != "" && ref != DefaultToolbox {
		img, err := s.Image(ref, "")
		if err != nil {
			return nil, fmt.Errorf("toolbox image %s: %w", ref, err)
		}
		return img, nil
	}
	if img, err := s.Image(DefaultToolbox, ""); err == nil {
		return img, nil
	}
	img, err := MakeToolbox(busyboxPath)
	if err != nil {
		return nil, err
	}
	if _, err := s.Write(img, DefaultToolbox); err != nil {
		return nil, fmt.Errorf("storing %s: %w", DefaultToolbox, err)
	}
	return s.Image(DefaultToolbox, "")
}

// MakeToolbox builds a one-layer busybox image from a static busybox
// binary: the binary, a symlink per applet, passwd and group.
func MakeToolbox(bin string) (v1.Image, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("toolbox: %w (install busybox-static)", err)
	}
	if info := parseELF(data); info == nil || info.Interp != "" {
		return nil, fmt.Errorf("toolbox: %s is not a static ELF binary: install busybox-static", bin)
	}
	out, err := exec.Command(bin, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("toolbox: %s --list-full: %w", bin, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	dirs := map[string]bool{}
	dir := func(d string) {
		if !dirs[d] {
			dirs[d] = true
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime})
		}
	}
	for _, d := range []string{"bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "proc", "sys", "dev", "tmp"} {
		dir(d)
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(data)), ModTime: mtime})
	tw.Write(data)
	for _, applet := range strings.Fields(string(out)) {
		if applet == "bin/busybox" || strings.Contains(applet, "..") {
			continue
		}
		d := filepath.Dir(applet)
		dir(d)
		rel, _ := filepath.Rel(d, "bin/busybox")
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: applet, Linkname: rel, ModTime: mtime})
	}
	for name, content := range map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":  "root:x:0:\n",
	} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(content)), ModTime: mtime})
		io.WriteString(tw, content)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerData := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerData)), nil })
	if err != nil {
		return nil, err
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: goruntime.GOARCH, RootFS: v1.RootFS{Type: "layers"},
		Config: v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}}})
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: "berth debug: busybox-static toolbox", Created: v1.Time{Time: mtime}}})
}

// Runner runs the OCI bundle in dir as container id to its end, removes
// the container, and returns its exit status: berth's runtime Run.
// With a console socket the process gets a terminal whose master the
// runtime sends there.
type Runner func(id, dir string, stdio []*os.File, consoleSocket string) (int, error)

// DebugOptions say what to attach to and what to run.
type DebugOptions struct {
	Pid     int      // host pid of the target container's init
	Cmd     []string // command in the toolbox (default: the toolbox's cmd, sh)
	Stdio   []*os.File
	Tty     bool   // give the toolbox a terminal, wired to Stdio (a terminal)
	WorkDir string // where bundles and the toolbox rootfs are staged
	// Forget drops the runtime state of a toolbox container id whose
	// berth died mid-session (found when the next debug starts).
	Forget func(id string)
}

// toolboxCaps are docker's default capabilities plus ptrace, so that
// strace and /proc/<pid>/ of the target's processes work.
var toolboxCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE", "CAP_SYS_PTRACE",
}

func randomID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// DebugSpec is the toolbox container's config: it joins the target's
// pid, net, ipc and uts namespaces (by /proc/<pid>/ns path) and gets a
// mount namespace of its own whose root is the toolbox image.
//
// The target's root is reached through /target, a symlink to
// /proc/1/root: pid 1 of the shared pid namespace is the target's init,
// and the kernel resolves that link into the target's mount namespace,
// volumes included. A bind mount of /proc/<pid>/root cannot do this: the
// kernel refuses to bind a mount that belongs to another mount namespace.
func DebugSpec(rootfs string, pid int, args, env []string) *specs.Spec {
	ns := func(t specs.LinuxNamespaceType, name string) specs.LinuxNamespace {
		return specs.LinuxNamespace{Type: t, Path: fmt.Sprintf("/proc/%d/ns/%s", pid, name)}
	}
	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: rootfs, Readonly: true},
		Process: &specs.Process{
			Args: args, Env: env, Cwd: "/",
			Capabilities: &specs.LinuxCapabilities{Bounding: toolboxCaps, Effective: toolboxCaps, Permitted: toolboxCaps},
			Rlimits:      []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
			{Destination: "/root", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=700"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				ns(specs.PIDNamespace, "pid"), ns(specs.NetworkNamespace, "net"),
				ns(specs.IPCNamespace, "ipc"), ns(specs.UTSNamespace, "uts"),
				{Type: specs.MountNamespace},
			},
			MaskedPaths:   []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
}

// Debug runs the toolbox beside the container whose init is o.Pid and
// returns the toolbox command's exit status. Everything it makes (the
// runtime's container, the overlay, the staging dir) is gone when it
// returns; the target is never written to.
func Debug(s *store.Store, run Runner, toolbox v1.Image, o DebugOptions) (int, error) {
	if o.Pid <= 0 {
		return 125, errors.New("debug: target container is not running")
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/ns/pid", o.Pid)); err != nil {
		return 125, fmt.Errorf("debug: target pid %d: %w", o.Pid, err)
	}
	pinned, unpin, err := pinTarget(o.Pid)
	if err != nil {
		return 125, err
	}
	defer unpin()
	cfg, err := toolbox.ConfigFile()
	if err != nil {
		return 125, err
	}
	lowers, err := s.Snapshots(toolbox)
	if err != nil {
		return 125, fmt.Errorf("toolbox snapshots: %w", err)
	}
	args := o.Cmd
	if len(args) == 0 {
		args = append(append([]string{}, cfg.Config.Entrypoint...), cfg.Config.Cmd...)
	}
	if len(args) == 0 {
		args = []string{"sh"}
	}
	env := cfg.Config.Env
	if _, ok := envValue(env, "PATH"); !ok {
		env = append(env, "PATH="+defaultPath)
	}
	env = append(env, "HOME=/root", "PS1=debug:\\w\\$ ")
	if o.WorkDir == "" {
		o.WorkDir = "/run/berth/debug"
	}
	reapStale(o.WorkDir, o.Forget)
	id := "berth-debug-" + randomID()
	dir := filepath.Join(o.WorkDir, id)
	if err := os.MkdirAll(o.WorkDir, 0o700); err != nil {
		return 125, err
	}
	// The lock marks the session alive (taken before its directory exists);
	// a berth killed mid-session leaves it free for the next debug to reap.
	lock, err := os.OpenFile(filepath.Join(o.WorkDir, id+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return 125, err
	}
	defer func() {
		os.Remove(lock.Name())
		lock.Close()
	}()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return 125, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return 125, err
	}
	defer os.RemoveAll(dir)
	// The toolbox rootfs is a read-only overlay: the image's snapshots
	// under a small top layer holding /target and the mount points.
	top, rootfs := filepath.Join(dir, "top"), filepath.Join(dir, "rootfs")
	for _, d := range []string{"proc", "sys", "dev", "tmp", "root", "etc"} {
		if err := os.MkdirAll(filepath.Join(top, d), 0o755); err != nil {
			return 125, err
		}
	}
	// A target sharing berth's pid namespace (run with the host's) is not
	// pid 1 there: its root is then reached by its host pid.
	link := "/proc/1/root"
	if a, b := nsInode("self", "pid"), nsInode(strconv.Itoa(o.Pid), "pid"); a != 0 && a == b {
		link = fmt.Sprintf("/proc/%d/root", o.Pid)
	}
	if err := os.Symlink(link, filepath.Join(top, "target")); err != nil {
		return 125, err
	}
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return 125, err
	}
	ldirs := []string{top}
	for i := len(lowers) - 1; i >= 0; i-- {
		ldirs = append(ldirs, lowers[i])
	}
	if err := unix.Mount("overlay", rootfs, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(ldirs, ":")); err != nil {
		return 125, fmt.Errorf("debug: mounting the toolbox rootfs: %w", err)
	}
	defer unix.Unmount(rootfs, unix.MNT_DETACH)
	spec := DebugSpec(rootfs, o.Pid, args, env)
	for i, ns := range spec.Linux.Namespaces {
		if p, ok := pinned[ns.Type]; ok {
			spec.Linux.Namespaces[i].Path = p
		}
	}
	var sock string
	var done <-chan struct{}
	if o.Tty && len(o.Stdio) == 3 {
		spec.Process.Terminal = true
		sock = filepath.Join(dir, "console.sock")
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			return 125, err
		}
		defer l.Close()
		done = attachTerminal(l, o.Stdio)
	}
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return 125, err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
		return 125, err
	}
	stdio := o.Stdio
	if sock != "" {
		stdio = nil
	}
	code, err := run(id, dir, stdio, sock)
	if done != nil {
		// Let the last output drain: the master reads EIO once the
		// toolbox's side is closed.
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	}
	if err != nil {
		return 125, fmt.Errorf("debug: running the toolbox: %w", err)
	}
	return code, nil
}

// pinTarget holds the target's namespaces open and returns paths to
// them (/proc/<berth>/fd/N) for the toolbox to join. Joined by pid, a
// target that exited before the toolbox started left its pid to any new
// process: a host process's, and the toolbox (root, CAP_SYS_PTRACE)
// joined the host's pid and net namespaces with /target the host's root.
// The namespaces are opened while a pidfd proves the process is the one
// asked for, and a process whose root is berth's own is no container.
func pinTarget(pid int) (map[specs.LinuxNamespaceType]string, func(), error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("debug: target pid %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	var files []*os.File
	unpin := func() {
		for _, f := range files {
			f.Close()
		}
	}
	paths := map[specs.LinuxNamespaceType]string{}
	for t, name := range map[specs.LinuxNamespaceType]string{specs.PIDNamespace: "pid", specs.NetworkNamespace: "net", specs.IPCNamespace: "ipc", specs.UTSNamespace: "uts"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", pid, name))
		if err != nil {
			unpin()
			return nil, nil, fmt.Errorf("debug: target pid %d: %w", pid, err)
		}
		files = append(files, f)
		paths[t] = fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd())
	}
	var root, own unix.Stat_t
	err = unix.Stat(fmt.Sprintf("/proc/%d/root", pid), &root)
	if err == nil {
		err = unix.Stat("/", &own)
	}
	if err == nil && root.Dev == own.Dev && root.Ino == own.Ino {
		err = errors.New("its root is the host's: not a container (did it exit and its pid go to another process?)")
	}
	if err == nil {
		// Still alive, so the pid was not reused while we looked.
		err = unix.PidfdSendSignal(pidfd, 0, nil, 0)
	}
	if err != nil {
		unpin()
		return nil, nil, fmt.Errorf("debug: target pid %d: %w", pid, err)
	}
	return paths, unpin, nil
}

// nsInode identifies a process's namespace (0 if unreadable).
func nsInode(pid, ns string) uint64 {
	var st unix.Stat_t
	if unix.Stat("/proc/"+pid+"/ns/"+ns, &st) != nil {
		return 0
	}
	return st.Ino
}

// attachTerminal takes the pty master the runtime sends on l and copies
// between it and the user's terminal (raw mode, window size kept).
func attachTerminal(l *net.UnixListener, stdio []*os.File) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := l.AcceptUnix()
		if err != nil {
			return
		}
		oob := make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := conn.ReadMsgUnix(make([]byte, 1024), oob)
		conn.Close()
		if err != nil {
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) == 0 {
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) == 0 {
			return
		}
		master := os.NewFile(uintptr(fds[0]), "pty-master")
		defer master.Close()
		if con, err := console.ConsoleFromFile(stdio[0]); err == nil {
			if sz, err := con.Size(); err == nil {
				unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Height, Col: sz.Width})
			}
			con.SetRaw()
			defer con.Reset()
		}
		go io.Copy(master, stdio[0])
		io.Copy(stdio[1], master)
	}()
	return done
}

// reapStale removes the sessions under dir whose berth is gone: their
// lock is free. Their toolbox died with the target's namespaces or is
// killed by forget; the overlay is detached before anything is removed,
// so a removal never reaches into a mounted tree.
func reapStale(dir string, forget func(string)) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, ent := range ents {
		id := ent.Name()
		if !ent.IsDir() || !strings.HasPrefix(id, "berth-debug-") {
			continue
		}
		lock, err := os.OpenFile(filepath.Join(dir, id+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			continue
		}
		if unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			lock.Close()
			continue // alive
		}
		if forget != nil {
			forget(id)
		}
		rootfs := filepath.Join(dir, id, "rootfs")
		unix.Unmount(rootfs, unix.MNT_DETACH)
		var st, parent unix.Stat_t
		if unix.Lstat(rootfs, &st) == nil && unix.Lstat(filepath.Join(dir, id), &parent) == nil && st.Dev != parent.Dev {
			lock.Close() // still a mount point: leave it
			continue
		}
		os.RemoveAll(filepath.Join(dir, id))
		os.Remove(lock.Name())
		lock.Close()
	}
}
