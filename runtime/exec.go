package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berthproject/berth/runtime/cgroup"
	"github.com/berthproject/berth/runtime/initproc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// joinable namespaces of a running container that exec enters on the
// parent's thread before forking (mnt is entered by the child itself, so
// that the berth binary is still reachable for the fork's exec).
var execJoin = []specs.LinuxNamespaceType{
	specs.IPCNamespace, specs.UTSNamespace, specs.NetworkNamespace, specs.PIDNamespace, specs.CgroupNamespace,
}

// Exec runs process p inside the running container id and returns its
// exit status (0 when detached).
func (r *Runtime) Exec(id string, p *specs.Process, o ExecOpts) (int, error) {
	c, err := r.load(id)
	if err != nil {
		return 0, err
	}
	proc, err := r.execStart(c, p, o)
	c.unlock()
	if err != nil {
		return 0, err
	}
	if o.Detach {
		go proc.Wait()
		return 0, nil
	}
	if o.ForwardSignals {
		defer forwardSignals(proc)()
	}
	ps, err := proc.Wait()
	if err != nil {
		return 0, err
	}
	return exitCode(ps), nil
}

func (r *Runtime) execStart(c *container, p *specs.Process, o ExecOpts) (proc *os.Process, err error) {
	if st := c.status(); st != specs.StateRunning && st != specs.StateCreated {
		return nil, fmt.Errorf("cannot exec in container %q: it is %s", c.ID, st)
	}
	if p == nil || len(p.Args) == 0 {
		return nil, errors.New("exec: no process args")
	}
	if err := checkUser(p.User); err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	if p.Terminal && o.ConsoleSocket == "" {
		return nil, errors.New("exec: a terminal needs --console-socket")
	}
	// A multi-threaded Go process can setns into neither a user nor a time
	// namespace: util-linux's nsenter (single-threaded) enters those and
	// runs the init, which then finds itself inside already.
	mineT, err1 := nsInode(os.Getpid(), "time")
	theirsT, err2 := nsInode(c.Pid, "time")
	joinTime := err1 == nil && err2 == nil && mineT != theirsT
	pidS := strconv.Itoa(c.Pid)
	cfg := &initproc.Config{ID: c.ID, Bundle: c.Bundle, Rootfs: c.Rootfs, Spec: initproc.TrimSpec(c.spec(), p), Exec: true, JoinMnt: true, LastCap: lastCap()}
	// Without a device cgroup the container's device policy is nodev
	// mounts and no CAP_MKNOD or CAP_SYS_ADMIN (see nodevInstead): a
	// process with either could make or mount host device nodes and open them.
	_, userns := hasNS(c.spec(), specs.UserNamespace)
	if pc := cfg.Spec.Process.Capabilities; c.CgroupPath == "" && !userns && nodevInstead(c.spec()) &&
		(pc == nil || initproc.CapMask(pc.Bounding)&(1<<capMknod|1<<capSysAdmin) != 0) {
		return nil, fmt.Errorf("exec: container %q has no device cgroup (its devices are kept by nodev mounts), so its processes cannot have CAP_MKNOD or CAP_SYS_ADMIN", c.ID)
	}
	if cfg.Seccomp, err = compileSeccomp(cfg.Spec.Linux.Seccomp); err != nil {
		return nil, err
	}
	if cfg.Seccomp != nil {
		cfg.Spec.Linux.Seccomp = nil
	}
	l := &launch{cfg: cfg, stdio: stdio(o.Stdio), preserve: o.PreserveFDs, sys: &syscall.SysProcAttr{}, debug: r.Debug}
	mineU, _ := nsInode(os.Getpid(), "user")
	theirsU, err := nsInode(c.Pid, "user")
	if err != nil {
		return nil, fmt.Errorf("container %q: user namespace: %w", c.ID, err)
	}
	// nsenter enters every namespace: the mount namespace before it forks
	// into the pid namespace, so that nothing with the host's root is ever
	// in the container's pid namespace (see initproc.Jail).
	allByNsenter := mineU != theirsU || joinTime
	if allByNsenter {
		ns, err := exec.LookPath("nsenter")
		if err != nil {
			return nil, fmt.Errorf("exec into container %q with its own user or time namespace needs nsenter (util-linux): %w", c.ID, err)
		}
		l.wrapper = []string{ns, "--target", pidS}
		if mineU != theirsU {
			l.wrapper = append(l.wrapper, "--user")
		}
		// --root: the init's root, which is not its mount namespace's
		// when it only chrooted (no mount namespace of its own).
		l.wrapper = append(l.wrapper, "--mount", "--root", "--pid", "--net", "--ipc", "--uts", "--cgroup")
		cfg.JoinMnt = false
		if joinTime {
			l.wrapper = append(l.wrapper, "--time")
		}
		l.wrapper = append(l.wrapper, "--")
	} else {
		if l.mntNS, err = os.Open("/proc/" + pidS + "/ns/mnt"); err != nil {
			return nil, err
		}
		defer l.mntNS.Close()
	}
	// The init is in the container's pid namespace from birth: it must
	// never have the host's root there, nor be exec'd by a path the
	// container's /proc resolves (see initproc.Jail).
	l.jail = true
	// Re-check that the pid is still our init now that we hold its ns.
	if !c.alive() {
		return nil, fmt.Errorf("container %q is not running", c.ID)
	}
	for _, t := range execJoin {
		if allByNsenter {
			break // nsenter joins them
		}
		n := nsProcName[t]
		mine, err1 := nsInode(os.Getpid(), n)
		theirs, err2 := nsInode(c.Pid, n)
		if err2 != nil {
			return nil, fmt.Errorf("container %q: %s namespace: %w", c.ID, n, err2)
		}
		if err1 == nil && mine == theirs {
			continue
		}
		l.joins = append(l.joins, nsJoin{t, "/proc/" + pidS + "/ns/" + n})
	}
	if p.Terminal {
		if l.console, err = dialConsole(o.ConsoleSocket); err != nil {
			return nil, err
		}
		defer l.console.Close()
		cfg.Console = true
	}
	if c.CgroupPath != "" {
		// The process is born in the container's cgroup (see cgroup.JoinThread).
		if l.cg, err = cgroup.Load(c.CgroupPath); err != nil {
			return nil, err
		}
	}
	child, sc, err := l.start(r)
	if err != nil {
		return nil, err
	}
	defer sc.Close()
	defer func() {
		// (every error return sets proc to nil: use child)
		if err != nil {
			child.Kill()
			child.Wait()
		}
	}()
	proc = child
	pid := proc.Pid // the process that becomes the user's
	if allByNsenter {
		// nsenter forks it (to enter the pid namespace) and waits for it.
		if pid, err = childOf(proc.Pid); err != nil {
			return nil, err
		}
	}
	if c.CgroupPath == "" {
		if err := joinCgroupsOf(c.Pid, pid); err != nil {
			return nil, err
		}
	}
	if p.OOMScoreAdj != nil {
		if err := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/oom_score_adj", []byte(strconv.Itoa(*p.OOMScoreAdj)), 0); err != nil {
			return nil, fmt.Errorf("oomScoreAdj: %w", err)
		}
	}
	if err := sc.Send(initproc.Msg{T: initproc.MsgGo, Pid: pid}); err != nil {
		return nil, r.initFailed(proc, sc, err)
	}
	if _, err := sc.Expect(initproc.MsgReady); err != nil {
		return nil, err
	}
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, pid); err != nil {
			return nil, err
		}
	}
	return proc, nil
}

// childOf waits (briefly) for the one child nsenter forks and returns it.
func childOf(pid int) (int, error) {
	p := "/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children"
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		data, err := os.ReadFile(p)
		if err != nil {
			return 0, fmt.Errorf("nsenter: %w", err)
		}
		if f := strings.Fields(string(data)); len(f) > 0 {
			return strconv.Atoi(f[0])
		}
		time.Sleep(time.Millisecond)
	}
	return 0, errors.New("nsenter did not start the process")
}

// joinCgroupsOf moves pid into every v1 cgroup (and the v2 one) that
// init is in and we are not: a container without a cgroup of its own
// still keeps its exec'd processes beside its init.
func joinCgroupsOf(init, pid int) error {
	theirs, err := os.ReadFile("/proc/" + strconv.Itoa(init) + "/cgroup")
	if err != nil {
		return err
	}
	mine, _ := os.ReadFile("/proc/self/cgroup")
	have := map[string]bool{}
	for _, l := range strings.Split(string(mine), "\n") {
		have[l] = true
	}
	for _, l := range strings.Split(string(theirs), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 || have[l] {
			continue
		}
		dir := "/sys/fs/cgroup/unified"
		if f[1] != "" {
			name := strings.TrimPrefix(f[1], "name=")
			dir = "/sys/fs/cgroup/" + name
		} else if _, err := os.Stat(dir); err != nil {
			dir = "/sys/fs/cgroup"
		}
		procs := filepath.Join(dir, filepath.Clean("/"+f[2]), "cgroup.procs")
		if err := os.WriteFile(procs, []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("joining the init's cgroup %s: %w", procs, err)
		}
	}
	return nil
}
