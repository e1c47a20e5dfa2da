package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/berthproject/berth/runtime/cgroup"
	"github.com/berthproject/berth/runtime/initproc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Run creates and starts id, then (unless Detach) waits for it and returns
// its exit status (128+N for a signal) after deleting it.
func (r *Runtime) Run(id string, o CreateOpts) (int, error) {
	o.proxyTTY = !o.Detach
	o.startNow = true
	c, proc, err := r.create(id, o)
	if err != nil {
		return 0, err
	}
	fail := func(err error) (int, error) {
		c.unlock()
		if fd := c.takeFifo(); fd >= 0 {
			unix.Close(fd)
		}
		_ = r.Delete(id, true)
		return 0, err
	}
	if c.tty != nil {
		stop, err := c.tty.serve()
		if err != nil {
			return fail(err)
		}
		defer func() { <-c.tty.done; stop() }()
	}
	if !o.Detach && o.ForwardSignals {
		defer forwardSignals(proc)()
	}
	// Start what we hold (create kept the lock) rather than reload it.
	err = r.start(c)
	c.unlock()
	if err != nil {
		_ = r.Delete(id, true)
		return 0, err
	}
	if o.Detach {
		go proc.Wait()
		return 0, nil
	}
	ps, err := proc.Wait()
	if err != nil {
		return 0, err
	}
	code := exitCode(ps)
	r.mark("exited")
	// Reload: while it ran, others may have paused it, for one.
	if err := r.Delete(id, true); err != nil {
		return code, err
	}
	r.mark("deleted")
	return code, nil
}

// forwardSignals relays our signals to p until the returned stop is called.
// Stop returns at once: signal.Stop waits for the signal machinery to go
// idle, about a millisecond, which a caller about to exit (the CLI after
// its container) should not wait for. A signal in between goes to p, which
// has been waited for by then, so it reaches nobody.
func forwardSignals(p *os.Process) (stop func()) {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH)
	go func() {
		for s := range sigs {
			_ = p.Signal(s)
		}
	}()
	return func() {
		go func() { signal.Stop(sigs); close(sigs) }()
	}
}

func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// pids lists the container's processes: from its cgroup, else (no cgroup
// was made) every process in its pid namespace, else just the init.
func (c *container) pids() ([]int, error) {
	if c.CgroupPath != "" {
		if cg, err := cgroup.Load(c.CgroupPath); err == nil {
			return cg.Pids()
		}
	}
	if !c.alive() {
		return nil, nil
	}
	if !newNS(c.spec(), specs.PIDNamespace) {
		return []int{c.Pid}, nil
	}
	want, err := nsInode(c.Pid, "pid")
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ino, err := nsInode(pid, "pid"); err == nil && ino == want {
			out = append(out, pid)
		}
	}
	return out, nil
}

func nsInode(pid int, ns string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/"+ns, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// Kill sends sig to the init process, or to every process with all.
func (r *Runtime) Kill(id string, sig unix.Signal, all bool) error {
	c, err := r.load(id)
	if err != nil {
		return err
	}
	defer c.unlock()
	st := c.status()
	if st == specs.StateStopped {
		return fmt.Errorf("container %q is not running", id)
	}
	if !all {
		return unix.Kill(c.Pid, sig)
	}
	return c.killAll(sig)
}

func (c *container) killAll(sig unix.Signal) error {
	pids, err := c.pids()
	if err != nil {
		return err
	}
	// Frozen processes would not act on the signal until thawed.
	if c.CgroupPath != "" && c.Paused && sig == unix.SIGKILL {
		defer func() {
			if cg, err := cgroup.Load(c.CgroupPath); err == nil {
				_ = cg.Thaw()
			}
		}()
	}
	for _, p := range pids {
		if err := unix.Kill(p, sig); err != nil && err != unix.ESRCH {
			return err
		}
	}
	return nil
}

// Delete removes a stopped container (any container with force) and
// everything it holds: state, cgroup, mounts.
func (r *Runtime) Delete(id string, force bool) error {
	c, err := r.load(id)
	if err != nil {
		if force && errors.Is(err, os.ErrNotExist) {
			return nil
		}
		// State is unreadable (a create killed half way): with force, drop
		// it, and the default cgroup that create may have made.
		if force && checkID(id) == nil {
			if _, serr := os.Stat(r.dir(id)); serr == nil {
				if cg, cerr := cgroup.Load("/berth/" + id); cerr == nil {
					if pids, _ := cg.Pids(); len(pids) > 0 {
						for _, p := range pids {
							_ = unix.Kill(p, unix.SIGKILL)
						}
						time.Sleep(50 * time.Millisecond)
					}
					_ = cg.Destroy()
				}
				return os.RemoveAll(r.dir(id))
			}
		}
		return err
	}
	defer c.unlock()
	return r.remove(c, force)
}

// remove is Delete on a loaded (locked) container.
func (r *Runtime) remove(c *container, force bool) error {
	id := c.ID
	switch st := c.status(); st {
	case specs.StateStopped:
	case specs.StateCreated:
		// Like runc: a created container's init only waits; end it.
		if err := c.stop(); err != nil {
			return err
		}
	default:
		if !force {
			return fmt.Errorf("cannot delete container %q: it is %s (use --force)", id, st)
		}
		if err := c.stop(); err != nil {
			return err
		}
	}
	if h := c.spec().Hooks; h != nil && len(h.Poststop) > 0 {
		s := c.ociState()
		s.Status = specs.StateStopped
		if err := initproc.RunHooks(h.Poststop, s); err != nil {
			fmt.Fprintf(os.Stderr, "berth: poststop hook: %v\n", err)
		}
	}
	if c.CgroupPath != "" {
		if cg, err := cgroup.Load(c.CgroupPath); err == nil {
			if err := cg.Destroy(); err != nil {
				return fmt.Errorf("container %q: %w", id, err)
			}
		}
	}
	return os.RemoveAll(c.dir)
}

// stop kills every process of the container and waits until they are gone.
func (c *container) stop() error {
	if err := c.killAll(unix.SIGKILL); err != nil {
		return err
	}
	if c.alive() {
		_ = unix.Kill(c.Pid, unix.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		pids, _ := c.pids()
		live := false
		for _, p := range pids {
			if _, st, ok := procStart(p); ok && st != 'Z' {
				live = true
				break
			}
		}
		if !live && !c.alive() {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("container %q: processes still alive 10s after SIGKILL", c.ID)
}

// Ps lists the host pids of the container's processes.
func (r *Runtime) Ps(id string) ([]int, error) {
	c, err := r.load(id)
	if err != nil {
		return nil, err
	}
	defer c.unlock()
	return c.pids()
}

// Pause freezes every process of the container.
func (r *Runtime) Pause(id string) error { return r.freeze(id, true) }

// Resume thaws a paused container.
func (r *Runtime) Resume(id string) error { return r.freeze(id, false) }

func (r *Runtime) freeze(id string, freeze bool) error {
	c, err := r.load(id)
	if err != nil {
		return err
	}
	defer c.unlock()
	st := c.status()
	if freeze && st != specs.StateRunning && st != specs.StateCreated {
		return fmt.Errorf("cannot pause container %q: it is %s", id, st)
	}
	if !freeze && st != StatePaused {
		return fmt.Errorf("cannot resume container %q: it is %s", id, st)
	}
	if c.CgroupPath == "" {
		return fmt.Errorf("container %q has no cgroup (no resources or cgroupsPath in its config): cannot freeze it", id)
	}
	cg, err := cgroup.Load(c.CgroupPath)
	if err != nil {
		return err
	}
	if freeze {
		err = cg.Freeze()
	} else {
		err = cg.Thaw()
	}
	if err != nil {
		return err
	}
	c.Paused = freeze
	return c.save()
}

// Update changes the resource limits of a running container (runc update).
func (r *Runtime) Update(id string, res *specs.LinuxResources) error {
	c, err := r.load(id)
	if err != nil {
		return err
	}
	defer c.unlock()
	if st := c.status(); st == specs.StateStopped {
		return fmt.Errorf("cannot update container %q: it is stopped", id)
	}
	if c.CgroupPath == "" {
		return fmt.Errorf("container %q has no cgroup (no resources or cgroupsPath in its config): cannot update its limits", id)
	}
	cg, err := cgroup.Load(c.CgroupPath)
	if err != nil {
		return err
	}
	return cg.Set(res)
}
