package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/runtime"
	"github.com/berthproject/berth/runtime/cgroup"
)

var signalNames = map[string]unix.Signal{
	"HUP": unix.SIGHUP, "INT": unix.SIGINT, "QUIT": unix.SIGQUIT, "ILL": unix.SIGILL, "TRAP": unix.SIGTRAP,
	"ABRT": unix.SIGABRT, "BUS": unix.SIGBUS, "FPE": unix.SIGFPE, "KILL": unix.SIGKILL, "USR1": unix.SIGUSR1,
	"SEGV": unix.SIGSEGV, "USR2": unix.SIGUSR2, "PIPE": unix.SIGPIPE, "ALRM": unix.SIGALRM, "TERM": unix.SIGTERM,
	"STKFLT": unix.SIGSTKFLT, "CHLD": unix.SIGCHLD, "CONT": unix.SIGCONT, "STOP": unix.SIGSTOP,
	"TSTP": unix.SIGTSTP, "TTIN": unix.SIGTTIN, "TTOU": unix.SIGTTOU, "URG": unix.SIGURG, "XCPU": unix.SIGXCPU,
	"XFSZ": unix.SIGXFSZ, "VTALRM": unix.SIGVTALRM, "PROF": unix.SIGPROF, "WINCH": unix.SIGWINCH,
	"IO": unix.SIGIO, "PWR": unix.SIGPWR, "SYS": unix.SIGSYS,
}

// ParseSignal reads a signal as a number, NAME or SIGNAME.
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal %q", s)
		}
		return unix.Signal(n), nil
	}
	if sig, ok := signalNames[strings.TrimPrefix(strings.ToUpper(s), "SIG")]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("invalid signal %q", s)
}

// stopSignal is --stop-signal, else the image's STOPSIGNAL, else SIGTERM.
func (c *Container) stopSignal() unix.Signal {
	for _, s := range []string{c.Opts.StopSignal, imageConfig(c.ImageConfig).StopSignal} {
		if s != "" {
			if sig, err := ParseSignal(s); err == nil {
				return sig
			}
		}
	}
	return unix.SIGTERM
}

// Kill sends sig to the container's main process.
func (e *Engine) Kill(ref string, sig unix.Signal) error {
	c, err := e.Lookup(ref)
	if err != nil {
		return err
	}
	if !c.State.Running {
		return fmt.Errorf("container %s is not running", c.Name)
	}
	switch sig {
	case unix.SIGKILL, unix.SIGTERM, unix.SIGINT, unix.SIGQUIT, c.stopSignal():
		e.requestStop(c.ID)
	}
	return e.Runtime.Kill(c.ID, sig, false)
}

// requestStop records that the user ends the container: its --restart
// policy must not start it again.
func (e *Engine) requestStop(id string) {
	e.modify(id, func(c *Container) bool {
		if c.State.StopRequested && !c.State.Restarting {
			return false
		}
		c.State.StopRequested = true
		if c.State.Restarting && !c.State.Running {
			// Waiting out a back-off: it is stopped now, as docker has it.
			c.State.Status, c.State.Restarting = StatusExited, false
		}
		return true
	})
}

// waitExit polls c's record until it is no longer running or timeout
// passes; it reports whether it stopped.
func (e *Engine) waitExit(c *Container, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		cur, err := e.loadID(c.ID)
		if err != nil {
			return true // removed (--rm)
		}
		e.refresh(cur)
		*c = *cur
		if !cur.State.Running {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop sends the stop signal, then SIGKILL to every process of the
// container after timeout seconds (-1: the container's --stop-timeout,
// else 10), as docker stop does.
func (e *Engine) Stop(ref string, timeout int) error {
	c, err := e.Lookup(ref)
	if err != nil {
		return err
	}
	e.requestStop(c.ID)
	if !c.State.Running {
		e.cleanupRuntime(c.ID)
		return nil
	}
	if timeout < 0 {
		timeout = c.Opts.StopTimeout
		if timeout <= 0 {
			timeout = 10
		}
	}
	if c.State.Paused {
		e.Runtime.Resume(c.ID)
	}
	// With its supervisor dead (kill -9), nobody tears it down but us.
	orphan := !c.monitorAlive()
	stopped := func() error {
		if orphan {
			e.cleanupRuntime(c.ID)
		}
		return nil
	}
	if err := e.Runtime.Kill(c.ID, c.stopSignal(), false); err == nil {
		if e.waitExit(c, time.Duration(timeout)*time.Second) {
			return stopped()
		}
	}
	e.Runtime.Kill(c.ID, unix.SIGKILL, true)
	if e.waitExit(c, 10*time.Second) {
		return stopped()
	}
	return fmt.Errorf("container %s did not stop after SIGKILL", c.Name)
}

// cleanupRuntime removes what a dead supervisor left: runtime state (and
// any process still in the container), cgroup, rootfs mount.
func (e *Engine) cleanupRuntime(id string) {
	e.Runtime.Kill(id, unix.SIGKILL, true)
	e.Runtime.Delete(id, true)
	e.detachIfAttached(id)
	e.destroyCgroup(id)
	e.unmountRootfs(id)
}

// RemoveOpts are rm's flags.
type RemoveOpts struct {
	Force   bool // kill a running container first
	Volumes bool // remove its anonymous volumes too
}

// Remove deletes a container and everything it holds.
func (e *Engine) Remove(ref string, o RemoveOpts) error {
	c, err := e.Lookup(ref)
	if err != nil {
		return err
	}
	if c.State.Restarting && !c.State.Running {
		if !o.Force {
			return fmt.Errorf("cannot remove restarting container %s: stop it first or use rm -f", c.Name)
		}
		e.requestStop(c.ID) // its back-off ends in exited
	}
	if c.State.Running {
		if !o.Force {
			return fmt.Errorf("cannot remove running container %s: stop it first or use rm -f", c.Name)
		}
		e.requestStop(c.ID)
		if c.State.Paused {
			e.Runtime.Resume(c.ID)
		}
		e.Runtime.Kill(c.ID, unix.SIGKILL, true)
		e.waitExit(c, 10*time.Second)
	}
	unlock, err := e.lock(c.ID)
	if err != nil {
		return nil // already gone (removed by its monitor with --rm)
	}
	defer unlock()
	if cur, err := e.loadID(c.ID); err == nil {
		// (no refresh here: it takes the lock we hold)
		if cur.State.Running && (cur.monitorAlive() || cur.initAlive()) {
			return fmt.Errorf("container %s is still running", c.Name)
		}
	}
	e.cleanupRuntime(c.ID)
	if isMountpoint(filepath.Join(e.dir(c.ID), "rootfs")) {
		return fmt.Errorf("container %s: rootfs is still mounted", c.Name)
	}
	if o.Volumes {
		for _, m := range c.MountPoints {
			if m.Type == "volume" {
				// Not one another container mounts too (--volumes-from).
				others := slices.DeleteFunc(e.volumeUsers(m.Name), func(n string) bool { return n == c.Name })
				if v, err := e.VolumeInspect(m.Name); err == nil && v.Anonymous && len(others) == 0 {
					e.VolumeRemove(v.Name, true)
				}
			}
		}
	}
	// Rename first so a half-removed container never shows up in ps.
	trash := filepath.Join(e.containersDir(), ".rm-"+c.ID)
	if err := os.Rename(e.dir(c.ID), trash); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // removed meanwhile (its monitor, for --rm)
		}
		return err
	}
	if e.Runtime.Root != runtime.DefaultRoot {
		// A store of its own (a test's, say) keeps its runtime state
		// under /run/berth/runtime-<hash>: gone with its last container
		// (rmdir fails while another holds it; create makes it again).
		os.Remove(e.Runtime.Root)
	}
	return os.RemoveAll(trash)
}

// Wait blocks until the container stops and returns its exit code.
func (e *Engine) Wait(ref string) (int, error) {
	c, err := e.Lookup(ref)
	if err != nil {
		return 0, err
	}
	for {
		cur, err := e.loadID(c.ID)
		if err != nil {
			return c.State.ExitCode, nil
		}
		e.refresh(cur)
		c = cur
		if !cur.State.Running {
			return cur.State.ExitCode, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Prune removes every stopped container and whatever a killed berth left
// half-made; it returns the IDs removed.
func (e *Engine) Prune() ([]string, error) {
	all, err := e.List()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, c := range all {
		if c.State.Running || c.State.Restarting {
			continue
		}
		if err := e.Remove(c.ID, RemoveOpts{}); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, c.ID)
	}
	// Directories without a record are creations interrupted by a kill;
	// the names lock keeps a creation in progress out of the way.
	if unlock, err := e.lockNames(); err == nil {
		ents, _ := os.ReadDir(e.containersDir())
		for _, ent := range ents {
			n := ent.Name()
			p := filepath.Join(e.containersDir(), n)
			switch {
			case strings.HasPrefix(n, ".rm-"):
				id := strings.TrimPrefix(n, ".rm-")
				e.cleanupRuntime(id)
				unmountAll(filepath.Join(p, "rootfs"))
				os.RemoveAll(p)
			case ent.IsDir() && len(n) == 64:
				if _, err := os.Stat(filepath.Join(p, "container.json")); errors.Is(err, os.ErrNotExist) {
					e.cleanupRuntime(n)
					os.RemoveAll(p)
					removed = append(removed, n)
				}
			}
		}
		unlock()
	}
	// Endpoints of containers that died without detaching (kill -9).
	if err := e.Networks().Collect(); err != nil {
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}

// Restart stops the container (if running) and starts it detached.
func (e *Engine) Restart(ref string, timeout int) error {
	if err := e.Stop(ref, timeout); err != nil {
		return err
	}
	c, err := e.Lookup(ref)
	if err != nil {
		return err
	}
	c.RestartCount++
	if unlock, err := e.lock(c.ID); err == nil {
		if cur, err := e.loadID(c.ID); err == nil {
			cur.RestartCount++
			e.save(cur)
		}
		unlock()
	}
	return e.StartDetached(c)
}

// Pause freezes the container's processes; Unpause thaws them.
func (e *Engine) Pause(ref string, pause bool) error {
	c, err := e.Lookup(ref)
	if err != nil {
		return err
	}
	if !c.State.Running {
		return fmt.Errorf("container %s is not running", c.Name)
	}
	// docker's words, not the runtime's (which name the container by ID).
	if st, serr := e.Runtime.State(c.ID); serr == nil {
		if pause && st.Status == runtime.StatePaused {
			return fmt.Errorf("container %s is already paused", c.Name)
		}
		if !pause && st.Status != runtime.StatePaused {
			return fmt.Errorf("container %s is not paused", c.Name)
		}
	}
	if pause {
		err = e.Runtime.Pause(c.ID)
	} else {
		err = e.Runtime.Resume(c.ID)
	}
	if err != nil {
		return err
	}
	unlock, err := e.lock(c.ID)
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := e.loadID(c.ID)
	if err != nil {
		return err
	}
	cur.State.Paused = pause
	cur.State.Status = StatusRunning
	if pause {
		cur.State.Status = StatusPaused
	}
	return e.save(cur)
}

// Pids lists the host pids of the container's processes.
func (e *Engine) Pids(ref string) ([]int, error) {
	c, err := e.Lookup(ref)
	if err != nil {
		return nil, err
	}
	if !c.State.Running {
		return nil, fmt.Errorf("container %s is not running", c.Name)
	}
	if pids, err := e.Runtime.Ps(c.ID); err == nil {
		return pids, nil
	}
	cg, err := cgroup.Load(cgroupsPath(c.ID))
	if err != nil {
		return nil, err
	}
	return cg.Pids()
}

// Top runs the host's ps (with psArgs, default -ef) and keeps the lines
// of the container's processes, as docker top does.
func (e *Engine) Top(ref string, psArgs []string, w io.Writer) error {
	pids, err := e.Pids(ref)
	if err != nil {
		return err
	}
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	out, err := exec.Command("ps", psArgs...).Output()
	if err != nil {
		return fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	col := -1
	for i, h := range strings.Fields(lines[0]) {
		if h == "PID" {
			col = i
		}
	}
	if col < 0 {
		return fmt.Errorf("ps %s: output has no PID column", strings.Join(psArgs, " "))
	}
	in := map[string]bool{}
	for _, p := range pids {
		in[strconv.Itoa(p)] = true
	}
	fmt.Fprintln(w, lines[0])
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > col && in[f[col]] {
			fmt.Fprintln(w, l)
		}
	}
	return nil
}

// UpdateOptions are docker update's resource flags; nil fields are left
// as they are.
type UpdateOptions struct {
	Memory, MemorySwap, CPUs *string
	CPUShares, PidsLimit     *int64
}

// Update changes a container's limits: in its cgroup at once if it runs,
// and in its record for its next starts.
func (e *Engine) Update(ref string, u UpdateOptions) error {
	c, err := e.Lookup(ref)
	if err != nil {
		return err
	}
	unlock, err := e.lock(c.ID)
	if err != nil {
		return err
	}
	defer unlock()
	if c, err = e.loadID(c.ID); err != nil {
		return err
	}
	o := c.Opts
	if u.Memory != nil {
		o.Memory = *u.Memory
		if u.MemorySwap == nil && c.Opts.MemorySwap != "-1" {
			o.MemorySwap = "" // docker's default again: twice the new memory
		}
	}
	if u.MemorySwap != nil {
		o.MemorySwap = *u.MemorySwap
	}
	if u.CPUs != nil {
		o.CPUs = *u.CPUs
	}
	if u.CPUShares != nil {
		o.CPUShares = *u.CPUShares
	}
	if u.PidsLimit != nil {
		o.PidsLimit = *u.PidsLimit
	}
	r := &specs.LinuxResources{}
	if err := resources(r, &o); err != nil {
		return err
	}
	if c.State.Running {
		if err := e.Runtime.Update(c.ID, r); err != nil {
			return fmt.Errorf("container %s: %w", c.Name, err)
		}
	}
	c.Opts = o
	return e.save(c)
}
