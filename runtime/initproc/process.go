package initproc

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/berthproject/berth/runtime/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

type execProc struct {
	path    string
	args    []string
	env     []string
	rlimits []specs.POSIXRlimit
}

func (p *execProc) exec() error {
	for _, rl := range p.rlimits {
		// syscall.Setrlimit (not prlimit) so that Go does not put back its
		// saved RLIMIT_NOFILE at exec.
		if err := syscall.Setrlimit(rlimitResources[rl.Type], &syscall.Rlimit{Cur: rl.Soft, Max: rl.Hard}); err != nil {
			return fmt.Errorf("rlimit %s: %w", rl.Type, err)
		}
	}
	err := syscall.Exec(p.path, p.args, p.env)
	return fmt.Errorf("exec %s: %w", p.path, err)
}

// prepareProcess applies process: rlimits, umask, cwd, user, caps,
// no_new_privs, seccomp, and marks every fd we hold close-on-exec. What is
// left is the execve, which prepareProcess has made sure will find its
// program.
func (in *initProc) prepareProcess() (*execProc, error) {
	p := in.cfg.Spec.Process
	resetIgnoredSignals()
	// Rlimits are set right before execve (a small RLIMIT_AS would starve
	// the Go runtime before); here only check what cannot work.
	for _, rl := range p.Rlimits {
		var cur syscall.Rlimit
		if err := syscall.Getrlimit(rlimitResources[rl.Type], &cur); err == nil && rl.Hard > cur.Max && !hasCap(unix.CAP_SYS_RESOURCE) {
			return nil, fmt.Errorf("rlimit %s: cannot raise the hard limit from %d to %d without CAP_SYS_RESOURCE", rl.Type, cur.Max, rl.Hard)
		}
		if rl.Soft > rl.Hard {
			return nil, fmt.Errorf("rlimit %s: soft limit %d above hard limit %d", rl.Type, rl.Soft, rl.Hard)
		}
	}
	umask := 0o022
	if p.User.Umask != nil {
		umask = int(*p.User.Umask)
	}
	unix.Umask(umask)
	if err := chdirInside(p.Cwd); err != nil {
		return nil, err
	}
	env := p.Env
	path, err := lookPath(p.Args[0], env)
	if err != nil {
		return nil, err
	}
	// CVE-2024-21626: nothing of ours may survive the exec. Before any
	// seccomp filter, which may not allow close_range.
	if err := cloexecFrom(3 + in.preserve); err != nil {
		return nil, err
	}
	if err := execLabels(p.ApparmorProfile, p.SelinuxLabel); err != nil {
		return nil, err
	}
	sc, filter := in.cfg.Spec.Linux.Seccomp, in.cfg.Seccomp
	loadSeccomp := func() error {
		if filter != nil {
			return filter.Load()
		}
		return seccomp.Load(sc)
	}
	hasSeccomp := filter != nil || sc != nil
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return nil, fmt.Errorf("no_new_privs: %w", err)
		}
	} else if hasSeccomp {
		// Without no_new_privs a filter needs CAP_SYS_ADMIN: load it while
		// we still have it (the profile must allow what follows).
		if err := loadSeccomp(); err != nil {
			return nil, fmt.Errorf("seccomp: %w", err)
		}
	}
	var caps capSets
	if p.Capabilities != nil {
		caps = capsOf(p.Capabilities)
		if err := dropBounding(caps.bounding, in.cfg.LastCap); err != nil {
			return nil, err
		}
	}
	if err := setUser(p.User, p.Capabilities != nil); err != nil {
		return nil, err
	}
	if p.Capabilities != nil {
		if err := applyCaps(caps); err != nil {
			return nil, err
		}
	}
	if p.NoNewPrivileges && hasSeccomp {
		if err := loadSeccomp(); err != nil {
			return nil, fmt.Errorf("seccomp: %w", err)
		}
	}
	return &execProc{path: path, args: p.Args, env: env, rlimits: p.Rlimits}, nil
}

// hasCap reports whether this thread has capability c in its effective set.
func hasCap(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[c/32].Effective&(1<<uint(c%32)) != 0
}

// cloexecFrom marks every fd from first on close-on-exec: close_range in
// one call, or fd by fd where the kernel lacks it.
func cloexecFrom(first int) error {
	if err := unix.CloseRange(uint(first), math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return nil
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("listing fds: %w", err)
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= first {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}

// chdirInside changes to cwd and makes sure it is inside the container's
// root: a cwd like /proc/self/fd/N could name a host directory through a
// leaked fd (CVE-2024-21626); the kernel then reports it as unreachable.
func chdirInside(cwd string) error {
	if err := unix.Chdir(cwd); err != nil {
		return fmt.Errorf("cwd %s: %w", cwd, err)
	}
	buf := make([]byte, 4096)
	n, err := unix.Getcwd(buf)
	if err != nil {
		return fmt.Errorf("cwd %s: %w", cwd, err)
	}
	if n == 0 || buf[0] != '/' {
		return fmt.Errorf("cwd %s is outside the container", cwd)
	}
	return nil
}

// setUser switches this thread to the process user. Only the thread that
// will execve matters, so raw per-thread syscalls are enough; keepcaps
// keeps the permitted set across the uid change for applyCaps.
func setUser(u specs.User, keepCaps bool) error {
	if keepCaps {
		if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("keepcaps: %w", err)
		}
	}
	groups := make([]uint32, len(u.AdditionalGids))
	copy(groups, u.AdditionalGids)
	var e syscall.Errno
	if len(groups) > 0 {
		_, _, e = unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(unsafe.Pointer(&groups[0])), 0)
	} else {
		_, _, e = unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0)
	}
	if e != 0 {
		// A user namespace with setgroups denied cannot change groups;
		// fine when none are asked for.
		if !(e == unix.EPERM && len(groups) == 0) {
			return fmt.Errorf("setgroups: %w", e)
		}
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(u.GID), uintptr(u.GID), uintptr(u.GID)); e != 0 {
		return fmt.Errorf("setgid %d: %w", u.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(u.UID), uintptr(u.UID), uintptr(u.UID)); e != 0 {
		return fmt.Errorf("setuid %d: %w", u.UID, e)
	}
	if keepCaps {
		_ = unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0)
	}
	return nil
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookPath finds name in the container's PATH (from its env, not ours).
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		if err := executable(name); err != nil {
			return "", fmt.Errorf("exec %s: %w", name, err)
		}
		return name, nil
	}
	path := defaultPath
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec %q: executable file not found in $PATH", name)
}

func executable(p string) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return unix.EISDIR
	}
	if st.Mode&0o111 == 0 {
		return unix.EACCES
	}
	return nil
}

// kernelSigaction is the kernel's struct sigaction on amd64 and arm64
// (handler first); only the handler is read or set.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// resetIgnoredSignals gives the container's process default dispositions:
// an ignored signal survives execve, so whatever ignored it in berth's own
// ancestry (nohup, a CI harness, a shell's background job) would leak into
// the container. Signals Go handles are reset by execve itself.
func resetIgnoredSignals() {
	const sigIgn = 1
	for sig := 1; sig <= 64; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		var old kernelSigaction
		if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 {
			continue
		}
		if old.handler == sigIgn {
			var def kernelSigaction
			unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&def)), 0, 8, 0, 0)
		}
	}
}

// execLabels asks the LSM to confine the process from its execve on: an
// AppArmor profile or SELinux label the spec names is applied, or the
// process does not start (running it unconfined would fail open). The
// attr file is checked to be procfs's: an exec'd init resolves /proc in
// the container, which could have covered it.
func execLabels(apparmor, selinux string) error {
	for _, l := range []struct{ name, value, file, data string }{
		{"apparmorProfile", apparmor, "apparmor/exec", "exec " + apparmor},
		{"selinuxLabel", selinux, "exec", selinux},
	} {
		if l.value == "" {
			continue
		}
		fd, err := unix.Open("/proc/thread-self/attr/"+l.file, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil {
			var fs unix.Statfs_t
			if err = unix.Fstatfs(fd, &fs); err == nil && fs.Type != unix.PROC_SUPER_MAGIC {
				err = errors.New("not on procfs")
			}
			if err == nil {
				_, err = unix.Write(fd, []byte(l.data))
			}
			unix.Close(fd)
		}
		if err != nil {
			return fmt.Errorf("%s %q: cannot be applied (is the LSM enabled on this host?): %w", l.name, l.value, err)
		}
	}
	return nil
}
