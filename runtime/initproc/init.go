package initproc

import (
	"fmt"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"strconv"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Init is the container side of create and exec: berth re-executed as
// `berth runtime-init <preserved-fds>` inside the new (or joined)
// namespaces. It sets up the rootfs and the process, reports to the parent
// over the sync socket, waits for start, and execs the user's program.
// It only returns (with an exit status) when something failed.
func Main(args []string) int {
	// Namespace changes (setns, unshare of the cgroup ns), capset and the
	// final execve are per thread: keep all of them on this one.
	goruntime.LockOSThread()
	// No GC for the short-lived init; set here, not through GOGC in our
	// environment, which hooks and nsenter would inherit.
	debug.SetGCPercent(-1)
	entered := time.Now()
	preserve := 0
	if len(args) > 0 {
		preserve, _ = strconv.Atoi(args[0])
	}
	if len(args) >= 3 && args[1] == RelayArg {
		return relay(preserve, args[2:])
	}
	base := 3 + preserve
	unix.Close(base + FdExe)
	// Our comm is the fd number we were run from; name us for ps.
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&initName[0])), 0, 0, 0)
	// Other processes of the container must not reach our host fds through
	// /proc/<pid>/fd while we still hold them; execve makes us dumpable again.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)

	sc := NewSync(os.NewFile(uintptr(base+FdSync), "sync"))
	cfg, err := sc.RecvConfig()
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth init: reading config: %v\n", err)
		return 1
	}
	in := &initProc{cfg: cfg, sc: sc, base: base, preserve: preserve}
	if cfg.Debug != 0 {
		in.t0 = time.UnixMicro(cfg.Debug)
		in.mark("init entered (exec + Go runtime and package init)", entered)
		in.mark("config read", time.Now())
	}
	err = in.run()
	// run only returns on failure (success ends in execve).
	if in.readySent {
		fmt.Fprintf(os.Stderr, "berth init: %v\n", err)
		return 127
	}
	_ = sc.Send(Msg{T: MsgError, Msg: err.Error()})
	return 1
}

var initName = []byte("berth-init\x00")

type initProc struct {
	cfg       *Config
	sc        *Sync
	base      int
	preserve  int
	gotGo     bool
	hostPid   int
	readySent bool
	t0        time.Time // Debug: the parent's fork
}

// mark prints, with --debug, a phase of the init's start.
func (in *initProc) mark(phase string, at time.Time) {
	if !in.t0.IsZero() {
		fmt.Fprintf(os.Stderr, "berth init:    %7.2f ms  %s\n", float64(at.Sub(in.t0).Microseconds())/1000, phase)
	}
}

func (in *initProc) fd(i int) int { return in.base + i }

// waitGo blocks until the parent has put us into the cgroup. Only then
// may we unshare the cgroup namespace (its root is our cgroup at that
// moment) or exec; the rootfs work before overlaps the cgroup migration.
func (in *initProc) waitGo() error {
	if in.gotGo {
		return nil
	}
	m, err := in.sc.Expect(MsgGo)
	if err != nil {
		return err
	}
	in.gotGo, in.hostPid = true, m.Pid
	if in.cfg.CgroupNS {
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("unshare cgroup namespace: %w", err)
		}
	}
	return nil
}

func (in *initProc) state(status specs.ContainerState) *specs.State {
	return &specs.State{Version: specs.Version, ID: in.cfg.ID, Status: status, Pid: in.hostPid,
		Bundle: in.cfg.Bundle, Annotations: in.cfg.Spec.Annotations}
}

func (in *initProc) run() error {
	cfg, s := in.cfg, in.cfg.Spec
	// The thread that will exec the user's program (this one, locked)
	// moves itself: the kernel does that without the grace period that
	// moving a whole process costs. (runtime/cgroup does the same for a
	// fork thread; it is not imported here, see the package doc.)
	for _, f := range cfg.CgroupTasks {
		if err := os.WriteFile(f, []byte("0"), 0); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	if cfg.JoinMnt {
		// setns into a mount namespace needs an unshared fs_struct, which a
		// single thread can have even in a multi-threaded process.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			return fmt.Errorf("unshare fs: %w", err)
		}
		if err := unix.Setns(in.fd(FdMntNS), unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("join mount namespace: %w", err)
		}
		// A container without a mount namespace shares ours, where / is
		// the host's: its init only chrooted. Exec must too, at once, or
		// the process would be in the host's filesystem.
		if cfg.Exec && !s.hasNS(specs.MountNamespace) {
			if err := unix.Chroot(cfg.Rootfs); err != nil {
				return fmt.Errorf("chroot %s: %w", cfg.Rootfs, err)
			}
			if err := unix.Chdir("/"); err != nil {
				return err
			}
		}
	}
	unix.Close(in.fd(FdMntNS))
	if !cfg.Exec {
		// In a joined mount namespace too, as runc: the bundle's rootfs
		// becomes the root there. Without a mount namespace nothing may be
		// mounted (it would be the host's): only chroot into the rootfs.
		if !s.hasNS(specs.MountNamespace) {
			if err := in.chrootOnly(); err != nil {
				return err
			}
		} else if err := in.setupRootfs(); err != nil {
			return err
		}
		if err := in.afterRootfs(); err != nil {
			return err
		}
	} else if err := in.waitGo(); err != nil {
		return err
	}
	if cfg.Console {
		if err := in.setupTerminal(); err != nil {
			return err
		}
	}
	if !cfg.Exec && s.Root.Readonly && s.hasNS(specs.MountNamespace) {
		if err := remountReadonlyRoot(); err != nil {
			return err
		}
	}
	in.mark("rootfs ready", time.Now())
	p, err := in.prepareProcess()
	if err != nil {
		return err
	}
	in.mark("process prepared", time.Now())
	if err := in.sc.Send(Msg{T: MsgReady}); err != nil {
		return err
	}
	in.readySent = true
	if !cfg.Exec {
		// Block until `start` opens the fifo for reading (run: a pipe
		// whose reader is there already).
		fd := in.fd(FdState) // close-on-exec since prepareProcess
		if !cfg.StartPipe {
			var err error
			if fd, err = unix.Openat(in.fd(FdState), FifoFile, unix.O_WRONLY|unix.O_CLOEXEC, 0); err != nil {
				return fmt.Errorf("open exec fifo: %w", err)
			}
		}
		if _, err := unix.Write(fd, []byte{0}); err != nil {
			return fmt.Errorf("write exec fifo: %w", err)
		}
		// fd stays open (close-on-exec): `start` waits for its EOF, so it
		// returns, and runs poststart, only once the process has exec'd.
		if len(s.Hooks.StartContainer) > 0 {
			if err := RunHooks(s.Hooks.StartContainer, in.state(specs.StateRunning)); err != nil {
				return fmt.Errorf("startContainer hook: %w", err)
			}
		}
	}
	return p.exec()
}

func (in *initProc) setupTerminal() error {
	sock := os.NewFile(uintptr(in.fd(FdConsole)), "console-socket")
	slave, err := SetupConsole(sock)
	sock.Close()
	if err != nil {
		return err
	}
	sfd := int(slave.Fd())
	if _, err := unix.Setsid(); err != nil {
		return fmt.Errorf("setsid: %w", err)
	}
	if err := unix.IoctlSetInt(sfd, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("set controlling terminal: %w", err)
	}
	for i := 0; i < 3; i++ {
		if err := unix.Dup3(sfd, i, 0); err != nil {
			return err
		}
	}
	if !in.cfg.Exec {
		// /dev/console is the pty too, as runc makes it.
		if err := bindConsole(slave.Name()); err != nil {
			return err
		}
	}
	slave.Close()
	return nil
}
