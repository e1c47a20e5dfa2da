package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/berthproject/berth/runtime/cgroup"
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
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	if p.Terminal && o.ConsoleSocket == "" {
		return nil, errors.New("exec: a terminal needs --console-socket")
	}
	for _, ns := range []string{"user", "time"} {
		mine, err1 := nsInode(os.Getpid(), ns)
		theirs, err2 := nsInode(c.Pid, ns)
		if err1 == nil && err2 == nil && mine != theirs {
			return nil, fmt.Errorf("exec into container %q: joining its %s namespace is not supported", c.ID, ns)
		}
	}
	pidS := strconv.Itoa(c.Pid)
	cfg := &initConfig{ID: c.ID, Bundle: c.Bundle, Rootfs: c.Rootfs, Spec: trimSpec(c.spec(), p), Exec: true, JoinMnt: true, LastCap: lastCap()}
	l := &launch{cfg: cfg, stdio: stdio(o.Stdio), preserve: o.PreserveFDs, sys: &syscall.SysProcAttr{}}
	if l.mntNS, err = os.Open("/proc/" + pidS + "/ns/mnt"); err != nil {
		return nil, err
	}
	defer l.mntNS.Close()
	// Re-check that the pid is still our init now that we hold its ns.
	if !c.alive() {
		return nil, fmt.Errorf("container %q is not running", c.ID)
	}
	for _, t := range execJoin {
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
	child, sc, err := l.start(r)
	if err != nil {
		return nil, err
	}
	defer sc.f.Close()
	defer func() {
		// (every error return sets proc to nil: use child)
		if err != nil {
			child.Kill()
			child.Wait()
		}
	}()
	proc = child
	if c.CgroupPath != "" {
		cg, err := cgroup.Load(c.CgroupPath)
		if err != nil {
			return nil, err
		}
		if err := cg.Apply(proc.Pid); err != nil {
			return nil, err
		}
	} else if err := joinCgroupsOf(c.Pid, proc.Pid); err != nil {
		return nil, err
	}
	if p.OOMScoreAdj != nil {
		if err := os.WriteFile("/proc/"+strconv.Itoa(proc.Pid)+"/oom_score_adj", []byte(strconv.Itoa(*p.OOMScoreAdj)), 0); err != nil {
			return nil, fmt.Errorf("oomScoreAdj: %w", err)
		}
	}
	if err := sc.send(msg{T: msgGo, Pid: proc.Pid}); err != nil {
		return nil, r.initFailed(proc, sc, err)
	}
	if _, err := sc.expect(msgReady); err != nil {
		return nil, err
	}
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, proc.Pid); err != nil {
			return nil, err
		}
	}
	return proc, nil
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
