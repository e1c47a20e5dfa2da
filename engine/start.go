package engine

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"
)

// Attach is the terminal side of a container run in the foreground.
type Attach struct {
	Stdin          *os.File // used with -i
	Stdout, Stderr *os.File
}

// StartAttached runs the container in this process (no monitor, for
// speed): it supervises it until it exits and returns its exit status.
// The container's output goes to a and, unless --rm, to its log.
func (e *Engine) StartAttached(c *Container, a Attach) (int, error) {
	return e.superviseRestarting(c, &a, nil)
}

// StartDetached starts the container under a new monitor process that
// outlives this one, and returns once the container runs (or failed to).
func (e *Engine) StartDetached(c *Container) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	cmd := exec.Command("/proc/self/exe", "container-monitor", e.Root, c.ID)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/" // hold no caller's directory busy for the container's life
	cmd.ExtraFiles = []*os.File{pw}
	cmd.Env = append(os.Environ(), "BERTH_ROOT="+e.Root)
	if err := cmd.Start(); err != nil {
		pw.Close()
		return fmt.Errorf("starting the container's monitor: %w", err)
	}
	pw.Close()
	msg, _ := io.ReadAll(pr)
	cmd.Process.Release()
	s := strings.TrimSpace(string(msg))
	if s == "ok" {
		return nil
	}
	if rest, ok := strings.CutPrefix(s, "err "); ok {
		codeStr, text, _ := strings.Cut(rest, " ")
		code, _ := strconv.Atoi(codeStr)
		return &StartError{Code: code, Msg: text}
	}
	return errors.New("the container's monitor died before the container started")
}

// MonitorMain is the body of the per-container monitor (berth re-executed
// as "container-monitor ROOT ID", in its own session): it starts the
// container, tells its parent on fd 3, then stays as its parent and
// subreaper to log its output and record its exit.
func MonitorMain(args []string) int {
	ready := os.NewFile(3, "ready")
	report := func(err error) {
		if err == nil {
			fmt.Fprint(ready, "ok")
		} else {
			code := 125
			var se *StartError
			if errors.As(err, &se) {
				code = se.Code
			}
			fmt.Fprintf(ready, "err %d %s", code, strings.ReplaceAll(err.Error(), "\n", " "))
		}
		ready.Close()
	}
	if len(args) != 2 {
		report(errors.New("monitor: want ROOT ID"))
		return 125
	}
	e, err := Open(args[0])
	if err != nil {
		report(err)
		return 125
	}
	c, err := e.loadID(args[1])
	if err != nil {
		report(err)
		return 125
	}
	// Caught, not ignored: an ignored signal stays ignored across exec and
	// the container would inherit it.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGHUP, unix.SIGINT, unix.SIGPIPE)
	code, _ := e.superviseRestarting(c, nil, report)
	return code
}

// errRestartCancelled ends a restart that stop, kill or rm overtook.
var errRestartCancelled = errors.New("restart cancelled")

// superviseRestarting supervises c, then starts it again for as long as
// its --restart policy asks: after each exit that stop, kill or rm did not
// ask for, with docker's back-off (100 ms, doubling, at most 10 s).
func (e *Engine) superviseRestarting(c *Container, a *Attach, ready func(error)) (int, error) {
	began := time.Now()
	code, err := e.supervise(c, a, ready, false)
	backoff := 0
	for restarts := 0; err == nil; restarts++ {
		if time.Since(began) >= 10*time.Second {
			backoff = 0 // it ran a while: start over, as docker does
		}
		if !e.restartDue(c.ID, code, restarts) {
			break
		}
		time.Sleep(min(100*time.Millisecond<<min(backoff, 7), 10*time.Second))
		backoff++
		if !e.restartStill(c.ID) {
			break
		}
		began = time.Now()
		next, serr := e.supervise(c, a, nil, true)
		if errors.Is(serr, errRestartCancelled) {
			return code, nil // stopped while it waited: its last exit stands
		}
		code, err = next, serr
	}
	return code, err
}

// restartDue reports whether the policy of the container that exited with
// code restarts it now (after restarts restarts), and records it as
// restarting if so.
func (e *Engine) restartDue(id string, code, restarts int) bool {
	return e.modify(id, func(c *Container) bool {
		if c.State.StopRequested || c.State.Running {
			return false
		}
		switch policy, max, _ := restartPolicy(c.Opts.Restart); policy {
		case "always", "unless-stopped":
		case "on-failure":
			if code == 0 || max > 0 && restarts >= max {
				return false
			}
		default:
			return false
		}
		c.State.Status, c.State.Restarting = StatusRestarting, true
		// Still ours while it waits: start, rm and prune see it owned.
		c.State.MonitorPid, c.State.MonitorStart = os.Getpid(), procStart(os.Getpid())
		c.RestartCount++
		return true
	})
}

// restartStill reports whether a restarting container is still to be
// started (no stop, kill or rm came during the back-off); if not, it is
// recorded as exited.
func (e *Engine) restartStill(id string) bool {
	still := false
	e.modify(id, func(c *Container) bool {
		switch {
		case c.State.Running:
			return false // started meanwhile, by someone else
		case c.State.StopRequested || !c.State.Restarting:
			c.State.Status, c.State.Restarting = StatusExited, false
			return true
		}
		still = true
		return false
	})
	return still
}

// supervise starts c and stays with it until it exits: with a (a
// foreground run) output goes there, without it (a monitor) only to the
// log; ready, if set, is told when the container runs or failed to start.
func (e *Engine) supervise(c *Container, a *Attach, ready func(error), restart bool) (int, error) {
	if ready == nil {
		ready = func(error) {}
	}
	// The container's init is our child (the runtime forks it), or is
	// reparented to us if the runtime double-forks.
	// Not with --pid host: every orphan of the container would become
	// ours, and we wait only for its init (the host's init reaps them).
	subreaper := 1
	if c.Opts.PidMode == "host" {
		subreaper = 0
	}
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, uintptr(subreaper), 0, 0, 0)
	fail := func(err error) (int, error) {
		ready(err)
		code := 125
		var se *StartError
		if errors.As(err, &se) {
			code = se.Code
		}
		return code, err
	}
	if a != nil {
		// A reader that goes away (berth run ... | head) must not kill
		// berth and orphan the container, even before it is recorded as
		// started: handled (not ignored, which the container would
		// inherit), SIGPIPE turns into EPIPE on write.
		pipes := make(chan os.Signal, 1)
		signal.Notify(pipes, unix.SIGPIPE)
		defer signal.Stop(pipes)
	}
	unlock, err := e.lock(c.ID)
	if err != nil {
		return fail(err)
	}
	cur, err := e.loadID(c.ID)
	if err != nil {
		unlock()
		return fail(err)
	}
	*c = *cur
	if c.State.Running && (c.monitorAlive() || c.initAlive()) {
		unlock()
		return fail(fmt.Errorf("container %s is already running", c.Name))
	}
	switch {
	case restart && (!c.State.Restarting || c.State.StopRequested):
		unlock()
		return fail(errRestartCancelled) // stopped during the back-off
	case !restart && c.State.Restarting && c.monitorAlive():
		unlock()
		return fail(fmt.Errorf("container %s is restarting (--restart): stop it first", c.Name))
	}
	if _, err := e.prepare(c); err != nil {
		e.markFailed(c, err)
		unlock()
		if c.Opts.AutoRemove {
			e.Remove(c.ID, RemoveOpts{Force: true, Volumes: true})
		}
		return fail(err)
	}

	var log *jsonLog
	if (a == nil || !c.Opts.AutoRemove) && c.Opts.LogDriver != "none" {
		if log, err = openJSONLog(e.logPath(c.ID), &c.Opts); err != nil {
			e.markFailed(c, err)
			unlock()
			return fail(err)
		}
		defer log.Close()
	}
	var (
		stdio     []*os.File
		parentEnd []*os.File // our copies of the child's ends, closed after launch
		copies    sync.WaitGroup
		sockPath  string
		listener  *net.UnixListener
		masterc   = make(chan *os.File, 1)
		holdStdin *os.File // a monitor keeps -i stdin open (nobody attaches yet)
	)
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		e.markFailed(c, err)
		unlock()
		return fail(err)
	}
	defer devnull.Close()
	var h *hub // a monitor's: berth attach's way in
	if a == nil {
		h = newHub(c.ID)
		defer h.close()
	}
	if c.Opts.Tty {
		if listener, sockPath, err = consoleListener(); err != nil {
			e.markFailed(c, err)
			unlock()
			return fail(err)
		}
		defer os.Remove(sockPath)
		go func() {
			m, err := receiveMaster(listener, 30*time.Second)
			listener.Close()
			if err != nil {
				m = nil
			}
			masterc <- m
		}()
	} else {
		stdin := devnull
		if c.Opts.Interactive {
			if a != nil && a.Stdin != nil {
				stdin = a.Stdin
			} else if a == nil {
				r, w, err := os.Pipe()
				if err == nil {
					stdin, holdStdin = r, w
					parentEnd = append(parentEnd, r)
				}
			}
		}
		stdio = []*os.File{stdin, nil, nil}
		for i, stream := range []string{"stdout", "stderr"} {
			var tee io.Writer
			if a != nil {
				tee = a.Stdout
				if i == 1 {
					tee = a.Stderr
				}
			} else if h != nil {
				tee = h.writer(frameStdout + byte(i))
			}
			if log == nil && a != nil {
				stdio[i+1] = tee.(*os.File)
				continue
			}
			r, w, err := os.Pipe()
			if err != nil {
				e.markFailed(c, err)
				unlock()
				return fail(err)
			}
			stdio[i+1] = w
			parentEnd = append(parentEnd, w)
			copies.Add(1)
			go func() {
				defer copies.Done()
				defer r.Close()
				log.copyLines(stream, r, tee)
			}()
		}
	}
	pid, err := e.launch(c, stdio, sockPath)
	for _, f := range parentEnd {
		f.Close()
	}
	if err != nil {
		if listener != nil {
			listener.Close()
		}
		e.markFailed(c, err)
		e.destroyCgroup(c.ID)
		unlock()
		copies.Wait()
		if c.Opts.AutoRemove {
			e.Remove(c.ID, RemoveOpts{Force: true, Volumes: true})
		}
		return fail(err)
	}
	if err := e.markStarted(c, pid); err != nil {
		unlock()
		e.Runtime.Kill(c.ID, unix.SIGKILL, true)
		waitPid(pid)
		e.finish(c, 137)
		return fail(err)
	}
	unlock()
	ready(nil)
	if holdStdin != nil {
		defer holdStdin.Close()
		h.setInput(holdStdin, nil)
	}
	stopHealth := e.startHealth(c)

	var restore func()
	if c.Opts.Tty {
		master := <-masterc
		if master != nil {
			restore = e.attachTTY(master, c, a, log, &copies, h)
		}
	}
	stopSignals := make(chan os.Signal, 8)
	if a != nil {
		signal.Notify(stopSignals, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2)
		go func() {
			for s := range stopSignals {
				if s != unix.SIGUSR1 && s != unix.SIGUSR2 {
					e.requestStop(c.ID) // ^C ends a --restart container too
				}
				e.Runtime.Kill(c.ID, s.(syscall.Signal), false)
			}
		}()
	}
	code := waitPid(pid)
	stopHealth()
	if a != nil {
		signal.Stop(stopSignals)
		close(stopSignals)
	}
	// Output still in flight: the pipes close once every process holding
	// them is gone; do not wait forever on a daemonized straggler.
	done := make(chan struct{})
	go func() { copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	if restore != nil {
		restore()
	}
	h.exit(code)
	e.finish(c, code)
	return code, nil
}

// attachTTY wires the pty master: output to the log and the terminal,
// the terminal's input (raw, so ^C and ^D reach the container's line
// discipline) to the master, window size kept in sync. It returns the
// function that restores the terminal.
func (e *Engine) attachTTY(master *os.File, c *Container, a *Attach, log *jsonLog, copies *sync.WaitGroup, h *hub) func() {
	var tee io.Writer = io.Discard
	if a != nil {
		tee = a.Stdout
	} else if h != nil {
		tee = h.writer(frameStdout)
		in := io.Writer(nil)
		if c.Opts.Interactive {
			in = master
		}
		h.setInput(in, master)
	}
	copies.Add(1)
	go func() {
		defer copies.Done()
		br := bufio.NewReader(master)
		if log == nil {
			io.Copy(tee, br)
			return
		}
		log.copyLines("stdout", br, tee)
	}()
	if a == nil {
		return func() { master.Close() }
	}
	var con console.Console
	if a.Stdin != nil {
		if cc, err := console.ConsoleFromFile(a.Stdin); err == nil {
			con = cc
		}
	}
	resize := func() {
		if con == nil {
			return
		}
		if sz, err := con.Size(); err == nil && sz.Height > 0 {
			unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Height, Col: sz.Width})
		}
	}
	resize()
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	go func() {
		for range winch {
			resize()
		}
	}()
	if con != nil && c.Opts.Interactive {
		con.SetRaw()
	}
	if c.Opts.Interactive && a.Stdin != nil {
		go func() {
			io.Copy(master, a.Stdin)
			// Input ended (not a terminal): send EOF as a typed ^D would.
			master.Write([]byte{4})
		}()
	}
	return func() {
		signal.Stop(winch)
		close(winch)
		if con != nil {
			con.Reset()
		}
		master.Close()
	}
}
