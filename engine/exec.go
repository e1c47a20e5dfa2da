package engine

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/runtime"
)

// ExecOptions are `berth exec`'s flags.
type ExecOptions struct {
	Args        []string
	Env         []string
	EnvFiles    []string // read before Env, as run's --env-file
	User        string
	Workdir     string
	Tty         bool
	Interactive bool
	Detach      bool
	Privileged  bool
}

// Exec runs a new process in a running container, with the container's
// environment, user, capabilities and security settings unless overridden,
// and returns its exit status.
func (e *Engine) Exec(ref string, o ExecOptions, a Attach) (int, error) {
	c, err := e.Lookup(ref)
	if err != nil {
		return 125, err
	}
	if !c.State.Running {
		return 125, fmt.Errorf("container %s is not running", c.Name)
	}
	if c.State.Paused {
		return 125, fmt.Errorf("container %s is paused, unpause it first", c.Name)
	}
	if len(o.Args) == 0 {
		return 125, errors.New("exec: no command given")
	}
	for _, kv := range o.Env {
		if k, _, _ := strings.Cut(kv, "="); k == "" || strings.ContainsRune(kv, 0) {
			return 125, fmt.Errorf("invalid environment variable %q: want NAME=VALUE or NAME", kv)
		}
	}
	s, err := readBundleSpec(e.dir(c.ID))
	if err != nil {
		return 125, err
	}
	rootfs := filepath.Join(e.dir(c.ID), "rootfs")
	p := *s.Process
	p.Args = o.Args
	p.Terminal = o.Tty
	p.ConsoleSize = nil
	for _, f := range o.EnvFiles {
		fe, err := readEnvFile(f)
		if err != nil {
			return 125, err
		}
		p.Env = mergeEnv(p.Env, fe...)
	}
	p.Env = mergeEnv(p.Env, o.Env...)
	if o.Tty {
		p.Env = mergeEnv(p.Env, "TERM=xterm")
	}
	if o.Workdir != "" {
		if !path.IsAbs(o.Workdir) {
			return 125, fmt.Errorf("working directory %q must be absolute", o.Workdir)
		}
		p.Cwd = o.Workdir
	}
	if o.User != "" {
		u, err := resolveUser(rootfs, o.User, nil)
		if err != nil {
			return 125, err
		}
		p.User = specs.User{UID: u.UID, GID: u.GID, AdditionalGids: u.Groups}
		if p.Capabilities != nil && u.UID != 0 {
			caps := *p.Capabilities
			caps.Effective, caps.Permitted = nil, nil
			p.Capabilities = &caps
		} else if p.Capabilities != nil && u.UID == 0 && len(p.Capabilities.Effective) == 0 {
			caps := *p.Capabilities
			caps.Effective, caps.Permitted = caps.Bounding, caps.Bounding
			p.Capabilities = &caps
		}
	}
	if o.Privileged {
		all := hostCaps()
		p.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
	}
	exe, err := resolveExecutable(rootfs, p.Args[0], p.Cwd, p.Env)
	if err != nil && !underMount(p.Args[0], p.Env, s.Mounts) {
		return exitFor(err), err
	}
	if err == nil {
		if err := checkInterpreter(rootfs, exe); err != nil {
			return exitFor(err), err
		}
	}

	// The runtime passes the signals berth gets (^C, TERM...) to the process.
	eo := runtime.ExecOpts{Detach: o.Detach, ForwardSignals: !o.Detach}
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	var restore func()
	var copies sync.WaitGroup
	if o.Tty {
		l, sock, err := consoleListener()
		if err != nil {
			return 125, err
		}
		defer os.Remove(sock)
		eo.ConsoleSocket = sock
		masterc := make(chan *os.File, 1)
		go func() {
			m, err := receiveMaster(l, 30*time.Second)
			l.Close()
			if err != nil {
				m = nil
			}
			masterc <- m
		}()
		type result struct {
			code int
			err  error
		}
		resc := make(chan result, 1)
		go func() {
			code, err := e.Runtime.Exec(c.ID, &p, eo)
			resc <- result{code, err}
		}()
		var res result
		select {
		case m := <-masterc:
			if m != nil && !o.Detach {
				opts := c.Opts
				opts.Interactive = o.Interactive
				restore = e.attachTTY(m, &Container{Opts: opts}, &a, nil, &copies, nil)
			}
			res = <-resc
		case res = <-resc:
			l.Close()
		}
		if restore != nil {
			// Give the last output a moment to drain before restoring.
			done := make(chan struct{})
			go func() { copies.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(time.Second):
			}
			restore()
		}
		if res.err != nil {
			return 126, res.err
		}
		return res.code, nil
	}
	stdin := devnull
	if o.Interactive && a.Stdin != nil {
		stdin = a.Stdin
	}
	out, errw := a.Stdout, a.Stderr
	if o.Detach {
		out, errw = devnull, devnull
	}
	eo.Stdio = []*os.File{stdin, out, errw}
	code, err := e.Runtime.Exec(c.ID, &p, eo)
	if err != nil {
		return 126, err
	}
	return code, nil
}

func exitFor(err error) int {
	var se *StartError
	if errors.As(err, &se) {
		return se.Code
	}
	return 125
}
