package runtime

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berthproject/berth/runtime/cgroup"
	"github.com/berthproject/berth/runtime/initproc"
	"github.com/berthproject/berth/runtime/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Create sets up the container id from a bundle; its process waits for Start.
func (r *Runtime) Create(id string, o CreateOpts) error {
	_, p, err := r.create(id, o)
	if err == nil {
		// The init is our child: reap it when it ends, so that a
		// long-lived caller (the engine) does not collect zombies and a
		// dying pid namespace is not held up by one.
		go p.Wait()
	}
	return err
}

// CreateChild is Create for a caller that reaps the init itself, as the
// engine's monitor does: the init stays this process's child, so its exit
// status is the caller's to wait for (no helper process in between).
func (r *Runtime) CreateChild(id string, o CreateOpts) (*os.Process, error) {
	_, p, err := r.create(id, o)
	return p, err
}

// needCgroup: runc always makes a cgroup; berth skips it when the spec
// asks for no resources and names no cgroupsPath, because on cgroup v1
// joining one costs an RCU grace period per migration (~9 ms here), more
// than the rest of the start. Ps, kill --all and delete then find the
// processes through the container's pid namespace; pause needs a cgroup.
//
// The same holds when the only resource is runc's default "deny every
// device" rule and the device policy can be had without a cgroup: no
// CAP_MKNOD (no new nodes), /dev its own mount where berth makes only
// allowed nodes, and the rootfs and every bind mount nodev (no other
// node can be opened). See nodevInstead.
func needCgroup(s *specs.Spec) bool {
	if s.Linux.CgroupsPath != "" || writableCgroupMount(s) {
		return true
	}
	r := s.Linux.Resources
	if r == nil || reflect.DeepEqual(*r, specs.LinuxResources{}) {
		return false
	}
	return !nodevInstead(s)
}

// writableCgroupMount reports whether s mounts a cgroup filesystem the
// container may write to. Without a cgroup of its own that mount would
// show berth's cgroup, often the host's root, with every other cgroup
// below it: the container could raise their limits or move into them.
func writableCgroupMount(s *specs.Spec) bool {
	for _, m := range s.Mounts {
		if m.Type != "cgroup" && m.Type != "cgroup2" {
			continue
		}
		ro := false
		for _, o := range m.Options {
			switch o {
			case "ro":
				ro = true
			case "rw":
				ro = false
			}
		}
		if !ro {
			return true
		}
	}
	return false
}

// nodevInstead reports whether s's resources are only a deny-all device
// rule that nodev mounts can enforce (see needCgroup).
func nodevInstead(s *specs.Spec) bool {
	r := s.Linux.Resources
	if r == nil {
		return true
	}
	only := specs.LinuxResources{Devices: r.Devices}
	if !reflect.DeepEqual(*r, only) || len(r.Devices) != 1 {
		return false
	}
	d := r.Devices[0]
	if d.Allow || (d.Type != "" && d.Type != "a") || d.Major != nil || d.Minor != nil || (d.Access != "rwm" && d.Access != "") {
		return false
	}
	// CAP_MKNOD would make new nodes; CAP_SYS_ADMIN could mount a devtmpfs
	// (every host node, on a mount that is not nodev) or remount one dev.
	if p := s.Process.Capabilities; p == nil || initproc.CapMask(p.Bounding)&(1<<capMknod|1<<capSysAdmin) != 0 {
		return false
	}
	// Binds are made nodev; of the other filesystems only those that hold
	// no device nodes (devpts: the pty nodes every container may use), so
	// that no devtmpfs, say, brings the host's.
	devTmpfs := false
	for _, m := range s.Mounts {
		if m.Type != "bind" && !nodeFreeFS[m.Type] {
			return false
		}
		if filepath.Clean(m.Destination) == "/dev" && m.Type == "tmpfs" {
			devTmpfs = true
		}
	}
	return devTmpfs
}

var nodeFreeFS = map[string]bool{"proc": true, "sysfs": true, "tmpfs": true, "devpts": true, "mqueue": true, "cgroup": true, "cgroup2": true}

const (
	capSysAdmin = 21
	capMknod    = 27
)

// withDefaultDevices returns the resources with device cgroup rules that
// let the container make and use its default devices and linux.devices,
// after the spec's own rules (a deny-all usually), as runc does.
func withDefaultDevices(s *specs.Spec) *specs.LinuxResources {
	if s.Linux.Resources == nil {
		return nil
	}
	r := *s.Linux.Resources
	if len(r.Devices) == 0 {
		return &r
	}
	i64 := func(v int64) *int64 { return &v }
	rules := append([]specs.LinuxDeviceCgroup{}, r.Devices...)
	rules = append(rules,
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Access: "m"},
		specs.LinuxDeviceCgroup{Allow: true, Type: "b", Access: "m"},
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(136), Access: "rwm"},                 // /dev/pts/*
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(5), Minor: i64(2), Access: "rwm"},    // ptmx
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(5), Minor: i64(1), Access: "rwm"},    // console
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(10), Minor: i64(200), Access: "rwm"}, // tun
	)
	for _, d := range append(initproc.DefaultDevices(), s.Linux.Devices...) {
		t := d.Type
		if t == "u" {
			t = "c"
		}
		if t == "p" {
			continue
		}
		rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: t, Major: i64(d.Major), Minor: i64(d.Minor), Access: "rwm"})
	}
	r.Devices = rules
	return &r
}

type nsJoin struct {
	typ  specs.LinuxNamespaceType
	path string
}

// launch is what create and exec share: start the init with its fds and
// namespaces and hand it its config.
type launch struct {
	cfg        *initproc.Config
	stdio      []*os.File
	preserve   int
	stateDir   *os.File
	console    *os.File
	mntNS      *os.File
	joins      []nsJoin
	sys        *syscall.SysProcAttr
	wrapper    []string // a program that enters the namespaces and runs the init (nsenter)
	relay      bool     // the wrapper runs the relay (initproc.RelayArg), which forks the init
	relayFlags uintptr  // the namespaces the relay makes for the init
	relayArgs  initproc.RelayArgs
	cg         *cgroup.Cgroup // the init is born in it
	cgSelfJoin bool           // only in cg's v2 part: the init joins the v1 hierarchies itself
	forker     *forker        // the thread to fork from, if started early
	jail       bool           // exec: the init starts in an initproc.Jail, not the host's root
	debug      bool           // tell the init when it was forked, to time its phases
	forked     time.Time
}

func (l *launch) start(r *Runtime) (*os.Process, *initproc.Sync, error) {
	exe, err := sealedExe()
	r.mark("sealed exe")
	if err != nil {
		return nil, nil, err
	}
	defer exe.Close()
	var jail *os.File
	if l.jail {
		if jail, err = initproc.Jail(exe); err != nil {
			return nil, nil, err
		}
		defer jail.Close()
	}
	parent, child, err := initproc.SocketPair()
	if err != nil {
		return nil, nil, err
	}
	defer child.Close()
	files := make([]*os.File, 0, 3+l.preserve+initproc.FdCount)
	files = append(files, l.stdio...)
	for i := 0; i < l.preserve; i++ {
		files = append(files, os.NewFile(uintptr(3+i), "preserved"))
	}
	files = append(files, child, l.stateDir, l.console, l.mntNS, exe)
	exeFd := 3 + l.preserve + initproc.FdExe
	attr := &os.ProcAttr{
		Dir: "/",
		// Our environment, unchanged: hooks run by the init inherit it, as
		// under runc (the container's process gets only its spec's env).
		// The init turns its own GC off (initproc.Main).
		Env:   os.Environ(),
		Files: files,
		Sys:   l.sys,
	}
	argv := []string{"berth", initproc.Arg, strconv.Itoa(l.preserve)}
	exePath := "/proc/self/fd/" + strconv.Itoa(exeFd)
	enterJail := jail != nil && l.wrapper == nil
	if enterJail {
		exePath = "/" + initproc.JailExe
	}
	if l.wrapper != nil {
		wrapper := l.wrapper
		if jail != nil && l.mntNS == nil {
			// nsenter opens its --wd before entering the namespaces, and
			// execs the init from there. The jail goes in the unused mount
			// namespace slot, which the init closes.
			mnt := 3 + l.preserve + initproc.FdMntNS
			files[mnt] = jail
			exePath = "./" + initproc.JailExe
			wrapper = append([]string{wrapper[0], "--wd=/proc/self/fd/" + strconv.Itoa(mnt)}, wrapper[1:]...)
		}
		argv = append(append(append([]string{}, wrapper...), exePath), argv[1:]...)
		exePath = l.wrapper[0]
		if l.relay {
			argv = append(argv, l.relayArgs.Encode()...)
		}
	}
	if l.cg != nil {
		dir, err := l.cg.OpenDir()
		if err != nil {
			parent.Close()
			return nil, nil, err
		}
		if dir != nil {
			defer dir.Close()
			sys := *l.sys
			sys.UseCgroupFD, sys.CgroupFD = true, int(dir.Fd())
			attr.Sys = &sys
		}
	}
	var p *os.Process
	if l.forker == nil && len(l.joins) == 0 && l.cg == nil && !enterJail {
		p, err = os.StartProcess(exePath, argv, attr)
	} else {
		if l.forker == nil {
			l.forker = newForker(0, "")
		}
		join := l.cg
		if l.cgSelfJoin {
			join = nil
		}
		p, err = l.forker.fork(join, l.joins, func() (*os.Process, error) {
			if enterJail {
				if err := initproc.EnterJail(jail); err != nil {
					return nil, err
				}
			}
			return os.StartProcess(exePath, argv, attr)
		})
	}
	if err != nil {
		parent.Close()
		return nil, nil, fmt.Errorf("starting container init: %w", err)
	}
	r.mark("forked")
	l.forked = time.Now()
	sc := initproc.NewSync(parent)
	if l.cfg == nil {
		return p, sc, nil // the caller sends it
	}
	if err := l.sendConfig(sc, l.cfg); err != nil {
		p.Kill()
		p.Wait()
		parent.Close()
		return nil, nil, err
	}
	return p, sc, nil
}

// sendConfig hands the init its config, the first value on the socket.
func (l *launch) sendConfig(sc *initproc.Sync, cfg *initproc.Config) error {
	if l.debug {
		cfg.Debug = l.forked.UnixMicro()
	}
	if err := sc.SendConfig(cfg); err != nil {
		return fmt.Errorf("sending config to init: %w", err)
	}
	return nil
}

// prepare decodes and validates b's whole spec in the background, and
// compiles its seccomp profile; the returned function waits for that.
// Forking the init needs neither: they overlap with the fork and the
// init's start.
func prepare(b *bundleFile) func() (*specs.Spec, *seccomp.Filter, error) {
	type res struct {
		s   *specs.Spec
		f   *seccomp.Filter
		err error
	}
	ch := make(chan res, 1)
	go func() {
		var r res
		r.s, r.err = b.decode()
		if r.err == nil {
			r.f, r.err = compileSeccomp(r.s.Linux.Seccomp)
		}
		ch <- r
	}()
	var once sync.Once
	var r res
	return func() (*specs.Spec, *seccomp.Filter, error) {
		once.Do(func() { r = <-ch })
		return r.s, r.f, r.err
	}
}

// compileSeccomp compiles a profile for the init to install (nil: none).
func compileSeccomp(s *specs.LinuxSeccomp) (*seccomp.Filter, error) {
	if s == nil {
		return nil, nil
	}
	f, err := seccomp.NewFilter(s)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	return f, nil
}

// cgroupJob is the container's cgroup (if head asks for one, see
// needCgroup), made in the background while the init is forked and starts.
type cgroupJob struct {
	path string // "": no cgroup
	// fork, if not nil, is what the fork may use before the cgroup is
	// made: a v1 cgroup whose v2 part (hybrid host) exists already and
	// whose v1 hierarchies the init joins by itself (Config.CgroupTasks).
	fork *cgroup.Cgroup
	wait func() (*cgroup.Cgroup, error)
}

// selfJoin reports whether the init joins the cgroup itself (see fork).
func (j *cgroupJob) selfJoin() bool { return j.fork != nil }

// makeCgroup starts making head's cgroup. selfJoin asks for the init to
// join it itself, which lets the fork go on while the cgroup is made (1 to
// 2 ms of mkdirs and limit writes here): possible on cgroup v1, when the
// init's writes to cgroupfs are allowed (no new user namespace).
func makeCgroup(head *specs.Spec, id string, selfJoin bool) *cgroupJob {
	if !needCgroup(head) {
		return &cgroupJob{wait: func() (*cgroup.Cgroup, error) { return nil, nil }}
	}
	j := &cgroupJob{path: head.Linux.CgroupsPath}
	if j.path == "" {
		j.path = "/berth/" + id
	}
	res := withDefaultDevices(head)
	type result struct {
		cg  *cgroup.Cgroup
		err error
	}
	ch := make(chan result, 1)
	var cg *cgroup.Cgroup
	var err error
	if selfJoin {
		if cg, err = cgroup.Prepare(j.path); err == nil && cg.V2() {
			cg = nil // its directory must exist before the fork: New below
		}
	}
	switch {
	case err != nil:
		ch <- result{nil, err}
	case cg != nil:
		j.fork = cg
		go func() { ch <- result{cg, cg.Make(res)} }()
	default:
		go func() {
			cg, err := cgroup.New(j.path, res)
			ch <- result{cg, err}
		}()
	}
	var once sync.Once
	var r result
	j.wait = func() (*cgroup.Cgroup, error) {
		once.Do(func() { r = <-ch })
		return r.cg, r.err
	}
	return j
}

// forker is the thread a container's init is forked from: setns, the
// cgroup join (see cgroup.JoinThread) and unshare are per thread, and the
// child inherits the thread's. The thread is locked and never unlocked,
// so Go ends it afterwards.
type forker struct {
	job     chan func()
	unshare error // of the early namespaces
	once    sync.Once
}

// newForker starts the thread and makes there, at once, the new
// namespaces in early (unshare), while the caller goes on with the rest
// of create: a network namespace takes about 0.5 ms to make. A new time
// namespace gets offsets (see timensOffsets) before the init enters it.
func newForker(early uintptr, offsets string) *forker {
	f := &forker{job: make(chan func(), 1)}
	go onThread(func() {
		if early != 0 {
			f.unshare = unix.Unshare(int(early))
		}
		if f.unshare == nil && early&unix.CLONE_NEWTIME != 0 && offsets != "" {
			f.unshare = initproc.SetTimeOffsets(offsets)
		}
		// Go checks, once per process, that pidfds work, with a test
		// fork (0.2 ms) at the first StartProcess or FindProcess: now.
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			p.Release()
		}
		if j, ok := <-f.job; ok {
			j()
		}
	})
	return f
}

// stop ends the thread unless it forked (or is about to).
func (f *forker) stop() { f.once.Do(func() { close(f.job) }) }

// fork joins cg (if any) and the namespaces in joins on the thread, then
// runs start there.
func (f *forker) fork(cg *cgroup.Cgroup, joins []nsJoin, start func() (*os.Process, error)) (*os.Process, error) {
	type res struct {
		p   *os.Process
		err error
	}
	ch := make(chan res, 1)
	sent := false
	f.once.Do(func() {
		sent = true
		f.job <- func() {
			if f.unshare != nil {
				ch <- res{err: fmt.Errorf("new namespaces: %w", f.unshare)}
				return
			}
			if cg != nil {
				if err := cg.JoinThread(); err != nil {
					ch <- res{err: err}
					return
				}
			}
			for _, j := range joins {
				nf, err := os.Open(j.path)
				if err != nil {
					ch <- res{err: fmt.Errorf("namespace %s: %w", j.typ, err)}
					return
				}
				err = unix.Setns(int(nf.Fd()), int(nsFlags[j.typ]))
				nf.Close()
				if err != nil {
					ch <- res{err: fmt.Errorf("join %s namespace %s: %w", j.typ, j.path, err)}
					return
				}
			}
			p, err := start()
			ch <- res{p, err}
		}
		close(f.job)
	})
	if !sent {
		return nil, errors.New("fork thread already stopped")
	}
	r := <-ch
	return r.p, r.err
}

// onThread runs f on a locked thread that ends with it. That thread must
// not be the process's main thread, which Go parks forever instead of
// ending (it would stay in whatever cgroup f joined): holding the main
// thread, the goroutine hands f to another one.
func onThread(f func()) {
	done := make(chan struct{})
	go func() {
		goruntime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			onThread(f)
			goruntime.UnlockOSThread()
		} else {
			f()
		}
		close(done)
	}()
	<-done
}

// earlyNS are the namespaces a thread can make for the init it forks.
var earlyNS = map[specs.LinuxNamespaceType]bool{specs.NetworkNamespace: true, specs.IPCNamespace: true, specs.UTSNamespace: true}

func (r *Runtime) create(id string, o CreateOpts) (c *container, proc *os.Process, err error) {
	r.mark("create")
	if err := checkID(id); err != nil {
		return nil, nil, err
	}
	// What forking the init needs first; the whole spec and the cgroup
	// (prepare, below) while the init is forked and starts.
	b, err := readBundle(o.Bundle)
	if err != nil {
		return nil, nil, err
	}
	head, raw, rootfs, bundle := b.head, b.raw, b.rootfs, b.dir
	r.mark("bundle read")
	if head.Process.Terminal && o.ConsoleSocket == "" && !o.proxyTTY {
		return nil, nil, errors.New("process.terminal is true: --console-socket is required")
	}
	// The new network, ipc and uts namespaces are made on the thread the
	// init will be forked from, while the rest is set up. Not under a new
	// user namespace, which must own them.
	userPath, timePath := joinedByPath(head)
	relay := userPath != "" || timePath != ""
	var early uintptr
	_, user := hasNS(head, specs.UserNamespace)
	if !user && !relay {
		for _, ns := range head.Linux.Namespaces {
			if ns.Path == "" && earlyNS[ns.Type] {
				early |= nsFlags[ns.Type]
			}
		}
	}
	// A new time namespace gets its clock offsets before anything enters
	// it, so it is made on the fork thread too (the init enters it with its
	// execve), or by the relay. Under a new user namespace without offsets
	// it is unshared in the child instead, so that the user namespace owns it.
	offsets, _ := timensOffsets(head) // checked by readBundle
	if newNS(head, specs.TimeNamespace) && !relay && (!user || offsets != "") {
		early |= unix.CLONE_NEWTIME
	}
	fk := newForker(early, offsets)
	defer fk.stop()
	dir := r.dir(id)
	err = os.Mkdir(dir, 0o711)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(r.Root, 0o711); err != nil {
			return nil, nil, err
		}
		err = os.Mkdir(dir, 0o711)
	}
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, nil, fmt.Errorf("container %q already exists", id)
		}
		return nil, nil, err
	}
	prep := prepare(b)
	// Only now that the id is ours may a cgroup be made for it.
	mkcg := makeCgroup(head, id, !newNS(head, specs.UserNamespace) && !relay)
	var child *os.Process // proc is nil on every error return
	defer func() {
		if err == nil {
			return
		}
		if child != nil {
			child.Kill()
			child.Wait()
		}
		prep()
		if cg, _ := mkcg.wait(); cg != nil {
			cg.Discard() // after the init is gone (see Cgroup.Make)
		}
		os.RemoveAll(dir)
	}()
	lock, err := os.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	// Run keeps the lock through start, so that nobody sees the container
	// before its process is the user's (it has no exec fifo to show it is
	// only created, see status).
	defer func() {
		if err != nil || !o.startNow {
			lock.Close()
		}
	}()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return nil, nil, err
	}
	l := &launch{stdio: stdio(o.Stdio), preserve: o.PreserveFDs, debug: r.Debug, forker: fk}
	fifo := -1 // run: the start pipe's read end
	if o.startNow {
		// Start follows at once: a pipe stands in for the exec fifo (one
		// inode less to allocate, which costs 0.5 ms on a busy ext4), its
		// reader open already, so the init goes on to exec without
		// waiting (Start still returns only once it has).
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return nil, nil, fmt.Errorf("start pipe: %w", err)
		}
		fifo, l.stateDir = p[0], os.NewFile(uintptr(p[1]), "start-pipe")
		defer func() {
			if err != nil {
				unix.Close(fifo)
			}
		}()
	} else {
		// 0622 (not cut by our umask): an init that dropped to another
		// user still opens it for writing.
		if err := unix.Mkfifo(filepath.Join(dir, fifoFile), 0o622); err != nil {
			return nil, nil, fmt.Errorf("exec fifo: %w", err)
		}
		if err := os.Chmod(filepath.Join(dir, fifoFile), 0o622); err != nil {
			return nil, nil, err
		}
		if l.stateDir, err = os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return nil, nil, err
		}
	}
	defer l.stateDir.Close()
	r.mark("state dir made")
	var tty *ttyProxy
	if head.Process.Terminal && o.ConsoleSocket == "" {
		if tty, l.console, err = newTTYProxy(); err != nil {
			return nil, nil, err
		}
		defer l.console.Close()
	} else if head.Process.Terminal {
		if l.console, err = dialConsole(o.ConsoleSocket); err != nil {
			return nil, nil, err
		}
		defer l.console.Close()
	}
	sys := &syscall.SysProcAttr{}
	for _, ns := range head.Linux.Namespaces {
		switch {
		case ns.Path != "" && (ns.Type == specs.UserNamespace || ns.Type == specs.TimeNamespace):
			// entered by nsenter, see below
		case relay && ns.Path == "" && ns.Type != specs.CgroupNamespace:
			// made by the relay, inside the joined user namespace
			l.relayFlags |= nsFlags[ns.Type]
		case ns.Path != "" && ns.Type == specs.MountNamespace:
			if l.mntNS, err = os.Open(ns.Path); err != nil {
				return nil, nil, fmt.Errorf("mount namespace %s: %w", ns.Path, err)
			}
			defer l.mntNS.Close()
		case ns.Path != "":
			l.joins = append(l.joins, nsJoin{ns.Type, ns.Path})
		case ns.Type == specs.CgroupNamespace:
			// unshared by the init once it is in its cgroup
		case early&nsFlags[ns.Type] != 0:
			// made already, on the fork thread
		case ns.Type == specs.TimeNamespace:
			// CLONE_NEWTIME shares bits with the exit signal of clone(2);
			// unshare it: it applies from the init's execve of berth on.
			sys.Unshareflags |= unix.CLONE_NEWTIME
		default:
			sys.Cloneflags |= nsFlags[ns.Type]
		}
	}
	if newNS(head, specs.UserNamespace) && !relay {
		for _, m := range head.Linux.UIDMappings {
			sys.UidMappings = append(sys.UidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
		}
		for _, m := range head.Linux.GIDMappings {
			sys.GidMappings = append(sys.GidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
		}
		sys.GidMappingsEnableSetgroups = true
		// A new user namespace does not change our ids: become its root
		// (the mapped uid 0) so that the init has its capabilities.
		sys.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	}
	if relay {
		ns, lerr := exec.LookPath("nsenter")
		if lerr != nil {
			return nil, nil, fmt.Errorf("joining a user or time namespace by path needs nsenter (util-linux): %w", lerr)
		}
		l.wrapper = []string{ns}
		if userPath != "" {
			l.wrapper = append(l.wrapper, "--user="+userPath)
		}
		if timePath != "" {
			l.wrapper = append(l.wrapper, "--time="+timePath)
		}
		l.wrapper, l.relay = append(l.wrapper, "--"), true
		l.relayArgs = initproc.RelayArgs{Flags: l.relayFlags, Offsets: offsets}
		if newNS(head, specs.UserNamespace) {
			// (a joined time namespace): the relay maps the new one's ids
			l.relayArgs.UIDMappings, l.relayArgs.GIDMappings = head.Linux.UIDMappings, head.Linux.GIDMappings
		}
	}
	l.sys = sys
	cgPath := mkcg.path
	if mkcg.selfJoin() {
		l.cg, l.cgSelfJoin = mkcg.fork, true
	} else {
		if l.cg, err = mkcg.wait(); err != nil {
			return nil, nil, err
		}
		r.mark("cgroup made")
	}
	p, sc, err := l.start(r)
	if err != nil {
		if _, cerr := mkcg.wait(); cerr != nil {
			return nil, nil, cerr // the cause, if the fork failed for want of the cgroup
		}
		return nil, nil, err
	}
	child = p
	defer sc.Close()
	// The pid the container is known by: the init's, which under a relay
	// is not our child (p, which passes the init's exit status on, is).
	initPid := p.Pid
	if relay {
		m, rerr := sc.Recv()
		if rerr != nil {
			return nil, nil, r.initFailed(p, sc, rerr)
		}
		if m.T != initproc.MsgPid {
			return nil, nil, fmt.Errorf("container init: %s", m.Msg)
		}
		initPid = m.Pid
	}
	spec, filter, err := prep()
	if err == nil {
		err = initproc.CheckSysctls(spec)
	}
	if err != nil {
		return nil, nil, err
	}
	var tasks []string
	if mkcg.selfJoin() {
		cg, err := mkcg.wait()
		if err != nil {
			return nil, nil, err
		}
		r.mark("cgroup made")
		tasks = cg.TaskFiles()
	}
	cfg := &initproc.Config{CgroupTasks: tasks, ID: id, Bundle: bundle, Rootfs: rootfs, Spec: initproc.TrimSpec(spec, spec.Process), NoPivot: o.NoPivot,
		LastCap: lastCap(), CgroupNS: newNS(spec, specs.CgroupNamespace), NoDev: cgPath == "" && nodevInstead(spec),
		Console: l.console != nil, JoinMnt: l.mntNS != nil, Seccomp: filter, StartPipe: o.startNow}
	if filter != nil {
		cfg.Spec.Linux.Seccomp = nil // compiled: the init need not decode it
	}
	cfg.Hooks = spec.Hooks != nil && (len(spec.Hooks.CreateRuntime) > 0 || len(spec.Hooks.Prestart) > 0 || len(spec.Hooks.CreateContainer) > 0) //nolint:staticcheck // prestart is deprecated but honoured
	if err = l.sendConfig(sc, cfg); err != nil {
		return nil, nil, err
	}
	r.mark("config sent")
	if spec.Process.OOMScoreAdj != nil {
		if err = os.WriteFile("/proc/"+strconv.Itoa(initPid)+"/oom_score_adj", []byte(strconv.Itoa(*spec.Process.OOMScoreAdj)), 0); err != nil {
			return nil, nil, fmt.Errorf("oomScoreAdj: %w", err)
		}
	}
	if err = sc.Send(initproc.Msg{T: initproc.MsgGo, Pid: initPid}); err != nil {
		return nil, nil, r.initFailed(p, sc, err)
	}
	// The state is written while the init sets up, not after: nobody else
	// sees it before we let go of the lock, and on failure the directory
	// goes.
	start, _, ok := procStart(initPid)
	if !ok {
		return nil, nil, r.initFailed(p, sc, errors.New("container init died during create"))
	}
	st := specs.State{Version: specs.Version, ID: id, Status: specs.StateCreated, Pid: initPid, Bundle: bundle, Annotations: spec.Annotations}
	c = &container{State: st, Created: time.Now().UTC(), InitStart: start, Rootfs: rootfs, CgroupPath: cgPath, Config: raw, cfg: spec, dir: dir, tty: tty, fifo: fifo}
	if o.startNow {
		c.lock = lock
	}
	if err = c.save(); err != nil {
		return nil, nil, err
	}
	r.mark("state saved")
	st.Status = specs.StateCreating // for the hooks
	for {
		m, derr := sc.Recv()
		if derr != nil {
			return nil, nil, r.initFailed(p, sc, derr)
		}
		if m.T == initproc.MsgError {
			return nil, nil, errors.New(m.Msg)
		}
		if m.T == initproc.MsgReady {
			break
		}
		if m.T == initproc.MsgHooks {
			herr := initproc.RunHooks(spec.Hooks.CreateRuntime, &st)
			if herr == nil {
				herr = initproc.RunHooks(spec.Hooks.Prestart, &st) //nolint:staticcheck // deprecated, still honoured
			}
			if herr != nil {
				_ = sc.Send(initproc.Msg{T: initproc.MsgError, Msg: herr.Error()})
				return nil, nil, fmt.Errorf("createRuntime hook: %w", herr)
			}
			if err = sc.Send(initproc.Msg{T: initproc.MsgHooked}); err != nil {
				return nil, nil, r.initFailed(p, sc, err)
			}
		}
	}
	r.mark("init ready")
	if o.PidFile != "" {
		if err = writePidFile(o.PidFile, initPid); err != nil {
			return nil, nil, err
		}
	}
	return c, p, nil
}

// initFailed turns a broken sync stream into the init's own error or its
// exit status.
func (r *Runtime) initFailed(p *os.Process, sc *initproc.Sync, err error) error {
	if m, derr := sc.Recv(); derr == nil && m.T == initproc.MsgError {
		return errors.New(m.Msg)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		if ps, werr := p.Wait(); werr == nil {
			return fmt.Errorf("container init exited early: %v", ps)
		}
	}
	return err
}

func stdio(s []*os.File) []*os.File {
	out := []*os.File{os.Stdin, os.Stdout, os.Stderr}
	for i := 0; i < len(s) && i < 3; i++ {
		if s[i] != nil {
			out[i] = s[i]
		}
	}
	return out
}

func dialConsole(path string) (*os.File, error) {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("console socket %s: %w", path, err)
	}
	defer conn.Close()
	return conn.File()
}

func lastCap() int {
	data, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			return n
		}
	}
	return unix.CAP_LAST_CAP
}

func writePidFile(path string, pid int) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	// A new file only: whoever can write to the directory (a /tmp, a
	// volume) must not have us write through a symlink put there.
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	_, err = f.WriteString(strconv.Itoa(pid))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pid file: %w", err)
	}
	return os.Rename(tmp, path)
}

// Start runs the user process of a created container.
func (r *Runtime) Start(id string) error {
	c, err := r.load(id)
	if err != nil {
		return err
	}
	defer c.unlock()
	return r.start(c)
}

// What awaitFifo saw on the exec fifo.
const (
	fifoByte   = iota // the init's byte: it is about to exec
	fifoClosed        // the init's end closed: it exec'd or died
	initGone          // the init is dead
)

// awaitFifo waits, polling, until the exec fifo fd has something to say or
// the init is gone.
func awaitFifo(fd int, c *container) (int, error) {
	buf := make([]byte, 1)
	for {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, 100)
		if err != nil && err != unix.EINTR {
			return 0, err
		}
		if n > 0 {
			k, _ := unix.Read(fd, buf)
			if k == 1 {
				return fifoByte, nil
			}
			if k == 0 || pfd[0].Revents&unix.POLLHUP != 0 {
				return fifoClosed, nil
			}
		}
		if !c.alive() {
			return initGone, nil
		}
	}
}

// start is Start on a loaded (locked) container.
func (r *Runtime) start(c *container) error {
	id := c.ID
	fifo := filepath.Join(c.dir, fifoFile)
	// Run's container went on without waiting (see startNow): it may have
	// exec'd, and even exited, by now.
	fd := c.takeFifo()
	if fd < 0 {
		if st := c.status(); st != specs.StateCreated {
			return fmt.Errorf("cannot start container %q: it is %s", id, st)
		}
		var err error
		if fd, err = unix.Open(fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err != nil {
			return fmt.Errorf("exec fifo: %w", err)
		}
	}
	defer unix.Close(fd)
	switch got, err := awaitFifo(fd, c); {
	case err != nil:
		return err
	case got != fifoByte:
		return fmt.Errorf("container %q: init exited before start", id)
	}
	// The init closes its end at execve (or by dying): wait for that, so
	// that startContainer hooks ran and the process is the user's before
	// poststart hooks run or a signal is sent.
	for {
		got, err := awaitFifo(fd, c)
		if err != nil {
			return err
		}
		if got != fifoByte {
			break
		}
	}
	os.Remove(fifo)
	r.mark("started")
	if h := c.spec().Hooks; h != nil && len(h.Poststart) > 0 {
		if err := initproc.RunHooks(h.Poststart, c.ociState()); err != nil {
			fmt.Fprintf(os.Stderr, "berth: poststart hook: %v\n", err)
		}
	}
	return nil
}
