package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/runtime"
	"github.com/berthproject/berth/runtime/cgroup"
)

// prepare mounts the container's rootfs, writes its /etc files and bundle
// config.json, and checks that its command can run (126/127 with a reason
// rather than a bare ENOENT from inside the container).
func (e *Engine) prepare(c *Container) (*specs.Spec, error) {
	d := e.dir(c.ID)
	if err := checkPlatform(c.Platform); err != nil {
		return nil, err
	}
	for _, l := range c.Lowers {
		if _, err := os.Stat(l); err != nil {
			// The store may have dropped a snapshot (system check --repair):
			// unpack the image's layers again.
			if err := e.reunpack(c); err != nil {
				return nil, fmt.Errorf("image %s: layer snapshot %s is gone and cannot be remade: %w", c.Image, l, err)
			}
			break
		}
	}
	rootfs := filepath.Join(d, "rootfs")
	if _, err := os.Stat(e.initLayerDir(c.ID)); err != nil {
		if err := makeInitLayer(e.initLayerDir(c.ID), c.Lowers, mountStubs(c.MountPoints)); err != nil {
			return nil, err
		}
	}
	if !isMountpoint(rootfs) {
		if err := mountOverlay(e.lowers(c), filepath.Join(d, "upper"), filepath.Join(d, "work"), rootfs, c.Opts.AutoRemove); err != nil {
			return nil, err
		}
	}
	hostname := containerHostname(c)
	if err := writeEtcFiles(d, hostname, &c.Opts); err != nil {
		return nil, err
	}
	mounts, err := e.specMounts(c, rootfs)
	if err != nil {
		return nil, err
	}
	in := specInput{ID: c.ID, Image: c.ImageConfig, Opts: &c.Opts, Rootfs: rootfs, Dir: d,
		Mounts: mounts, Hostname: hostname}
	if kind, _ := networkMode(c.Opts.Network); kind == netContainer {
		if in.Netns, err = e.containerNetns(c.Opts.Network); err != nil {
			return nil, err
		}
	}
	if in.Joins, err = e.joinedNamespaces(&c.Opts); err != nil {
		return nil, err
	}
	if in.ShmDir, err = e.shmDir(c); err != nil {
		return nil, err
	}
	if c.Opts.Init {
		if in.InitBin, err = e.initBinary(); err != nil {
			return nil, err
		}
	}
	s, err := buildSpec(in)
	if err != nil {
		return nil, err
	}
	// A missing working directory is made, as docker does (root-owned);
	// one inside a volume is left to the runtime.
	if !underMount(s.Process.Cwd+"/x", nil, mounts) {
		if err := pathrs.MkdirAll(rootfs, s.Process.Cwd, 0o755); err != nil {
			return nil, fmt.Errorf("working directory %s: %w", s.Process.Cwd, err)
		}
	}
	// The command must exist and be runnable in the image.
	args := s.Process.Args
	if c.Opts.Init {
		args = args[3:]
	}
	p, err := resolveExecutable(rootfs, args[0], s.Process.Cwd, s.Process.Env)
	if err != nil && !underMount(args[0], s.Process.Env, mounts) {
		return nil, err
	}
	if err == nil {
		if err := checkInterpreter(rootfs, p); err != nil {
			return nil, err
		}
	}
	s.Root.Path = "rootfs"
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(d, "config.json"), b, 0o600); err != nil {
		return nil, err
	}
	return s, nil
}

// reunpack asks the store for the container's image layers again and
// records where they are now.
func (e *Engine) reunpack(c *Container) error {
	h, err := v1.NewHash(c.ImageDigest)
	if err != nil {
		return err
	}
	img, err := e.Store.ImageByDigest(h)
	if err != nil {
		return err
	}
	lowers, err := e.Store.Snapshots(img)
	if err != nil {
		return err
	}
	c.Lowers = lowers
	return e.save(c)
}

// lowers are the overlay's lower dirs: the image's, then the init layer.
func (e *Engine) lowers(c *Container) []string {
	l := append([]string(nil), c.Lowers...)
	if _, err := os.Stat(e.initLayerDir(c.ID)); err == nil {
		l = append(l, e.initLayerDir(c.ID))
	}
	return l
}

// underMount reports whether the command may live in a volume, bind or
// tmpfs, which are only mounted inside the container: then berth cannot
// look for it beforehand and leaves the verdict to the exec.
func underMount(arg0 string, env []string, mounts []specs.Mount) bool {
	dirs := []string{path.Dir(arg0)}
	if !strings.Contains(arg0, "/") {
		pathEnv, _ := envLookup(env, "PATH")
		dirs = strings.Split(pathEnv, ":")
	}
	for _, d := range dirs {
		for _, m := range mounts {
			if d == m.Destination || strings.HasPrefix(d, m.Destination+"/") || arg0 == m.Destination {
				return true
			}
		}
	}
	return false
}

// containerHostname is the hostname berth gives the container: -h, else
// its short ID (the host's with --network host). The /etc/hostname file
// is the container's to rewrite, so this, not the file, is what berth
// goes by.
func containerHostname(c *Container) string {
	if c.Opts.Hostname != "" {
		return c.Opts.Hostname
	}
	if c.Opts.Network == netHost || c.Opts.UtsMode == "host" {
		return hostHostname()
	}
	return c.ShortID()
}

// checkEtcValues refuses a --hostname or --add-host that is not one
// token of a hosts file: a newline or blank in one wrote lines of the
// caller's choosing (6.6.6.6 bank.example) into /etc/hosts, and the
// hostname also went to sethostname and /etc/hostname as given.
func checkEtcValues(hostname string, addHosts []string) error {
	if hostname != "" && (len(hostname) > 64 || !nameRe.MatchString(hostname)) {
		return fmt.Errorf("invalid --hostname %q: at most 64 of [a-zA-Z0-9][a-zA-Z0-9_.-]", hostname)
	}
	for _, h := range addHosts {
		name, ip, ok := strings.Cut(h, ":")
		if !ok || name == "" || ip == "" {
			return fmt.Errorf("invalid --add-host %q: want HOST:IP", h)
		}
		if !nameRe.MatchString(name) {
			return fmt.Errorf("invalid --add-host %q: host %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", h, name)
		}
		if ip != "host-gateway" && net.ParseIP(ip) == nil {
			return fmt.Errorf("invalid --add-host %q: %q is not an IP address", h, ip)
		}
	}
	return nil
}

// writeEtcFiles writes hosts, hostname and resolv.conf into the container
// directory; they are bind-mounted over the image's.
func writeEtcFiles(d, hostname string, o *Options) error {
	// Records made before checkEtcValues existed are checked again.
	if err := checkEtcValues(hostname, o.AddHosts); err != nil {
		return err
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
	switch kind, _ := networkMode(o.Network); kind {
	case netHost:
		if b, err := os.ReadFile("/etc/hosts"); err == nil {
			hosts = string(b)
		}
	case netNone:
		hosts += "127.0.1.1\t" + hostname + "\n"
	}
	// (on a bridge network the attachment adds the container's address,
	// and host-gateway names, see attachNetwork)
	bridged := false
	if kind, _ := networkMode(o.Network); kind == netBridge {
		bridged = true
	}
	for _, h := range o.AddHosts {
		name, ip, _ := strings.Cut(h, ":")
		if ip == "host-gateway" {
			if bridged {
				continue
			}
			ip = "127.0.0.1" // the host's own loopback under --network host
		}
		hosts += ip + "\t" + name + "\n"
	}
	resolv := resolvConf(hostResolvConf(o.Network == netHost), o)
	files := map[string]string{"hosts": hosts, "hostname": hostname + "\n", "resolv.conf": resolv}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// resolvConf is base with --dns, --dns-search and --dns-option in place
// of its nameserver, search and options lines, as docker does.
func resolvConf(base string, o *Options) string {
	repl := map[string][]string{"nameserver": o.DNS, "search": o.DNSSearch, "options": o.DNSOptions}
	var out []string
	for _, line := range strings.Split(strings.TrimRight(base, "\n"), "\n") {
		if f := strings.Fields(line); len(f) > 0 && len(repl[f[0]]) > 0 {
			continue
		}
		out = append(out, line)
	}
	for _, ns := range o.DNS {
		out = append(out, "nameserver "+ns)
	}
	if len(o.DNSSearch) > 0 {
		out = append(out, "search "+strings.Join(o.DNSSearch, " "))
	}
	if len(o.DNSOptions) > 0 {
		out = append(out, "options "+strings.Join(o.DNSOptions, " "))
	}
	return strings.Join(out, "\n") + "\n"
}

// hostResolvConf is the host's resolv.conf, without loopback nameservers
// unless the container shares the host's network (docker's filtering).
func hostResolvConf(hostNet bool) string {
	b, _ := os.ReadFile("/etc/resolv.conf")
	if hostNet {
		return string(b)
	}
	var out []string
	ns := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if strings.HasPrefix(f[1], "127.") || f[1] == "::1" {
				continue
			}
			ns++
		}
		if strings.TrimSpace(line) != "" {
			out = append(out, line)
		}
	}
	if ns == 0 {
		out = append(out, "nameserver 8.8.8.8", "nameserver 8.8.4.4")
	}
	return strings.Join(out, "\n") + "\n"
}

// initBinary returns a read-only copy of berth for --init, made once per
// berth build: the container never sees the host's binary itself, so it
// cannot be overwritten from inside (CVE-2019-5736).
func (e *Engine) initBinary() (string, error) {
	self, err := os.Open("/proc/self/exe")
	if err != nil {
		return "", err
	}
	defer self.Close()
	st, err := self.Stat()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(e.containersDir(), ".init")
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return "", err
	}
	sys := st.Sys().(*syscall.Stat_t)
	p := filepath.Join(dir, fmt.Sprintf("berth-%x-%x-%x", sys.Ino, st.Size(), st.ModTime().UnixNano()))
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	// Copies for older berth builds go; containers still using one keep
	// it alive through their bind mount.
	if old, _ := filepath.Glob(filepath.Join(dir, "berth-*")); len(old) > 0 {
		for _, o := range old {
			if !strings.Contains(o, ".tmp") {
				os.Remove(o)
			}
		}
	}
	tmp := p + ".tmp" + strconv.Itoa(os.Getpid())
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o555)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, self); err != nil {
		out.Close()
		os.Remove(tmp)
		return "", err
	}
	out.Close()
	return p, os.Rename(tmp, p)
}

// launch creates and starts the container in the runtime with the given
// stdio (or console socket) and returns its init's host pid. The init is
// the caller's child (runtime.CreateChild): the caller reaps it.
func (e *Engine) launch(c *Container, stdio []*os.File, consoleSocket string) (int, error) {
	e.Runtime.Delete(c.ID, true) // leftovers of a crashed run
	o := runtime.CreateOpts{Bundle: e.dir(c.ID), ConsoleSocket: consoleSocket}
	if len(stdio) == 3 {
		o.Stdio = stdio
	}
	_, err := e.Runtime.CreateChild(c.ID, o)
	if err != nil {
		e.Runtime.Delete(c.ID, true)
		// The runtime finds the program only inside the container (one in
		// a volume berth could not check): keep docker's 127/126 for it.
		msg := err.Error()
		if strings.Contains(msg, "exec ") {
			switch {
			case strings.Contains(msg, "no such file or directory"), strings.Contains(msg, "not found"):
				return 0, &StartError{127, msg}
			case strings.Contains(msg, "permission denied"):
				return 0, &StartError{126, msg}
			}
		}
		return 0, fmt.Errorf("creating container: %w", err)
	}
	st, err := e.Runtime.State(c.ID)
	if err != nil {
		e.Runtime.Delete(c.ID, true)
		return 0, err
	}
	if kind, _ := networkMode(c.Opts.Network); kind == netContainer {
		if err := e.checkJoinedNetns(c.Opts.Network, st.Pid); err != nil {
			e.Runtime.Delete(c.ID, true)
			return 0, err
		}
	}
	if err := e.checkJoinedNamespaces(&c.Opts, st.Pid); err != nil {
		e.Runtime.Delete(c.ID, true)
		return 0, err
	}
	// lo up (none), or a veth into a bridge network with its ports.
	if err := e.attachNetwork(c, st.Pid, c.Opts.Publish, c.Opts.PublishAll, c.Opts.NetAliases); err != nil {
		e.Runtime.Delete(c.ID, true)
		e.detachIfAttached(c.ID)
		return 0, err
	}
	if err := e.Runtime.Start(c.ID); err != nil {
		e.Runtime.Delete(c.ID, true)
		return 0, fmt.Errorf("starting container: %w", err)
	}
	return st.Pid, nil
}

// loopbackUp brings lo up in the network namespace of pid, as docker's
// "none" network does (a new netns has lo down).
func loopbackUp(pid int) error {
	errc := make(chan error, 1)
	go func() {
		// The thread enters the container's netns and is thrown away
		// afterwards (no UnlockOSThread), so no other goroutine runs there.
		goruntime.LockOSThread()
		ns, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(ns)
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(s)
		ifr, err := unix.NewIfreq("lo")
		if err != nil {
			errc <- err
			return
		}
		if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
			errc <- err
			return
		}
		ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
		errc <- unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr)
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("bringing up lo in the container: %w", err)
	}
	return nil
}

// waitPid reaps pid and returns its exit status the shell's way (128+N
// for a signal). If another waiter took it, it polls until pid is gone.
func waitPid(pid int) int {
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			for unix.Kill(pid, 0) == nil {
				time.Sleep(20 * time.Millisecond)
			}
			return 255
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}

// markStarted records the container as running under this supervisor.
func (e *Engine) markStarted(c *Container, pid int) error {
	c.State = State{Status: StatusRunning, Running: true, Pid: pid, PidStart: procStart(pid), StartedAt: time.Now().UTC(),
		MonitorPid: os.Getpid(), MonitorStart: procStart(os.Getpid())}
	return e.save(c)
}

// markFailed records a start failure (the container stays created).
func (e *Engine) markFailed(c *Container, err error) {
	code := 125
	var se *StartError
	if errors.As(err, &se) {
		code = se.Code
	}
	c.State.Status = StatusCreated
	if c.State.StartedAt.IsZero() == false {
		c.State.Status = StatusExited
	}
	c.State.Running = false
	c.State.ExitCode = code
	c.State.Error = err.Error()
	c.State.MonitorPid = 0
	e.save(c)
	e.unmountRootfs(c.ID)
}

// finish tears the container down after its init exited: OOM status from
// its cgroup, then runtime state, cgroup and rootfs mount go; with --rm
// everything goes.
func (e *Engine) finish(c *Container, code int) {
	oom := false
	if cg, err := cgroup.Load(cgroupsPath(c.ID)); err == nil {
		oom, _ = cg.OOMKilled()
	}
	// Removing the veth waits on the kernel's RCU grace periods (~15 ms,
	// more for a bridge); the rest of the teardown overlaps it. Detach
	// takes the network lock itself.
	detached := make(chan struct{})
	go func() {
		defer close(detached)
		e.detachIfAttached(c.ID)
	}()
	e.Runtime.Kill(c.ID, unix.SIGKILL, true)
	e.Runtime.Delete(c.ID, true)
	e.destroyCgroup(c.ID)
	e.unmountRootfs(c.ID)
	<-detached
	unlock, err := e.lock(c.ID)
	if err != nil {
		return
	}
	cur, err := e.loadID(c.ID)
	if err == nil {
		cur.State.Running = false
		cur.State.Paused = false
		cur.State.Status = StatusExited
		cur.State.ExitCode = code
		cur.State.OOMKilled = oom
		cur.State.FinishedAt = time.Now().UTC()
		cur.State.MonitorPid = 0
		cur.State.MonitorStart = 0
		e.save(cur)
		*c = *cur
	}
	unlock()
	if c.Opts.AutoRemove {
		e.Remove(c.ID, RemoveOpts{Force: true, Volumes: true})
	}
}

// detachIfAttached takes the container off its networks, if the network
// state names it at all: detaching re-applies the firewall rules, which
// costs tens of milliseconds a container on none or host need not pay.
func (e *Engine) detachIfAttached(id string) {
	b, err := os.ReadFile(filepath.Join(e.Root, "networks", "networks.json"))
	if err != nil || !strings.Contains(string(b), id) {
		return
	}
	e.detachNetwork(id)
}

// destroyCgroup removes the container's cgroup if the runtime left it.
func (e *Engine) destroyCgroup(id string) {
	if cg, err := cgroup.Load(cgroupsPath(id)); err == nil {
		if pids, _ := cg.Pids(); len(pids) > 0 {
			for _, p := range pids {
				unix.Kill(p, unix.SIGKILL)
			}
			time.Sleep(10 * time.Millisecond)
		}
		cg.Destroy()
	}
}

func (e *Engine) unmountRootfs(id string) error {
	unmountAll(filepath.Join(e.dir(id), "shm")) // --ipc shareable's
	return unmountAll(filepath.Join(e.dir(id), "rootfs"))
}

// shmDir is the host directory c's /dev/shm binds: with --ipc shareable
// its own tmpfs (mounted here, so that others can join it), with --ipc
// container:NAME that of NAME if NAME is shareable; "" for a /dev/shm of
// its own in its mount namespace.
func (e *Engine) shmDir(c *Container) (string, error) {
	if name, ok := strings.CutPrefix(c.Opts.IpcMode, "container:"); ok {
		other, err := e.Lookup(name)
		if err != nil {
			return "", fmt.Errorf("--ipc %s: %w", c.Opts.IpcMode, err)
		}
		if other.Opts.IpcMode != "shareable" {
			return "", nil // its SysV IPC only: its /dev/shm is in its own mount namespace
		}
		d := filepath.Join(e.dir(other.ID), "shm")
		if !isMountpoint(d) {
			return "", fmt.Errorf("--ipc %s: its /dev/shm is gone", c.Opts.IpcMode)
		}
		return d, nil
	}
	if c.Opts.IpcMode != "shareable" {
		return "", nil
	}
	d := filepath.Join(e.dir(c.ID), "shm")
	if isMountpoint(d) {
		return d, nil
	}
	size := int64(64 << 20)
	if n, err := parseSize(c.Opts.ShmSize); err == nil && n > 0 {
		size = n
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	if err := unix.Mount("shm", d, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size="+strconv.FormatInt(size, 10)); err != nil {
		return "", fmt.Errorf("--ipc shareable: mounting its /dev/shm: %w", err)
	}
	return d, nil
}

// consoleListener makes a unix socket for the runtime to send the pty
// master over (runc's --console-socket protocol); short path under /run
// because sun_path holds only 108 bytes.
func consoleListener() (*net.UnixListener, string, error) {
	dir := "/run/berth/console"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	p := filepath.Join(dir, newID()[:16]+".sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		return nil, "", err
	}
	return l, p, nil
}

// receiveMaster accepts one connection on l and returns the pty master fd
// sent over it with SCM_RIGHTS.
func receiveMaster(l *net.UnixListener, timeout time.Duration) (*os.File, error) {
	l.SetDeadline(time.Now().Add(timeout))
	conn, err := l.AcceptUnix()
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	defer conn.Close()
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		return nil, errors.New("console socket: no pty master received")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		return nil, errors.New("console socket: no pty master received")
	}
	for _, fd := range fds[1:] {
		unix.Close(fd)
	}
	unix.CloseOnExec(fds[0])
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}
