package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/runtime"
)

// Health is docker's State.Health: the result of the container's health
// checks, which its supervisor runs while it runs.
type Health struct {
	Status        string // starting, healthy or unhealthy
	FailingStreak int
	Log           []HealthResult // the last five
}

// HealthResult is one check.
type HealthResult struct {
	Start, End time.Time
	ExitCode   int
	Output     string
}

// Health statuses, as docker names them.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// docker's defaults for a HEALTHCHECK that leaves them out.
const (
	defaultHealthInterval = 30 * time.Second
	defaultHealthTimeout  = 30 * time.Second
	defaultHealthRetries  = 3
	maxHealthOutput       = 4096
)

// healthcheck is the check c runs: the image's HEALTHCHECK with
// --health-* options over it; nil for none (no HEALTHCHECK, NONE, or
// --no-healthcheck).
func healthcheck(c *Container) (*v1.HealthConfig, error) {
	o := &c.Opts
	if o.NoHealthcheck {
		return nil, nil
	}
	var h v1.HealthConfig
	if c.ImageConfig != nil && c.ImageConfig.Config.Healthcheck != nil {
		h = *c.ImageConfig.Config.Healthcheck
	}
	if o.HealthCmd != "" {
		h.Test = []string{"CMD-SHELL", o.HealthCmd}
	}
	for _, d := range []struct {
		flag, v string
		to      *time.Duration
	}{{"--health-interval", o.HealthInterval, &h.Interval}, {"--health-timeout", o.HealthTimeout, &h.Timeout},
		{"--health-start-period", o.HealthStartPeriod, &h.StartPeriod}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("invalid %s %q: want a duration such as 30s", d.flag, d.v)
		}
		*d.to = v
	}
	if o.HealthRetries != 0 {
		if o.HealthRetries < 0 {
			return nil, fmt.Errorf("invalid --health-retries %d", o.HealthRetries)
		}
		h.Retries = o.HealthRetries
	}
	if len(h.Test) == 0 || h.Test[0] == "NONE" {
		return nil, nil
	}
	if h.Test[0] != "CMD" && h.Test[0] != "CMD-SHELL" || len(h.Test) < 2 {
		return nil, fmt.Errorf("healthcheck %q: want CMD or CMD-SHELL and a command", h.Test)
	}
	if h.Interval == 0 {
		h.Interval = defaultHealthInterval
	}
	if h.Timeout == 0 {
		h.Timeout = defaultHealthTimeout
	}
	if h.Retries == 0 {
		h.Retries = defaultHealthRetries
	}
	return &h, nil
}

// startHealth runs c's health checks every interval until the returned
// function is called (at the container's exit).
func (e *Engine) startHealth(c *Container) (stop func()) {
	h, err := healthcheck(c)
	if err != nil || h == nil {
		return func() {}
	}
	// The container's process, read once: each check runs as it does.
	spec, err := readBundleSpec(e.dir(c.ID))
	if err != nil {
		return func() {}
	}
	e.recordHealth(c.ID, func(hs *Health) { *hs = Health{Status: HealthStarting} })
	done := make(chan struct{})
	finished := make(chan struct{})
	started := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(h.Interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			res := e.probe(c, h, spec.Process)
			e.recordHealth(c.ID, func(hs *Health) {
				hs.Log = append(hs.Log, res)
				if len(hs.Log) > 5 {
					hs.Log = hs.Log[len(hs.Log)-5:]
				}
				switch {
				case res.ExitCode == 0:
					hs.Status, hs.FailingStreak = HealthHealthy, 0
				case time.Since(started) < h.StartPeriod && hs.Status == HealthStarting:
					// failures while the container starts do not count
				default:
					hs.FailingStreak++
					if hs.FailingStreak >= h.Retries {
						hs.Status = HealthUnhealthy
					}
				}
			})
		}
	}()
	return func() { close(done); <-finished }
}

// probe runs one check in the container, killing it past the timeout.
func (e *Engine) probe(c *Container, h *v1.HealthConfig, proc *specs.Process) HealthResult {
	res := HealthResult{Start: time.Now()}
	args := h.Test[1:]
	if h.Test[0] == "CMD-SHELL" {
		args = []string{"/bin/sh", "-c", strings.Join(h.Test[1:], " ")}
	}
	fail := func(code int, msg string) HealthResult {
		res.End, res.ExitCode, res.Output = time.Now(), code, msg
		return res
	}
	p := *proc
	p.Args, p.Terminal, p.ConsoleSize = args, false, nil
	r, w, err := os.Pipe()
	if err != nil {
		return fail(-1, err.Error())
	}
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	pidFile := filepath.Join(e.dir(c.ID), ".health.pid")
	os.Remove(pidFile)
	type result struct {
		code int
		err  error
	}
	resc := make(chan result, 1)
	go func() {
		code, err := e.Runtime.Exec(c.ID, &p, runtime.ExecOpts{Stdio: []*os.File{devnull, w, w}, PidFile: pidFile})
		w.Close()
		resc <- result{code, err}
	}()
	// The output is what the check wrote until it ended; a process it
	// left behind holding the pipe must not hold up the result.
	var out bytes.Buffer
	var outMu sync.Mutex
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			outMu.Lock()
			if room := maxHealthOutput - out.Len(); room > 0 {
				out.Write(buf[:min(n, room)])
			}
			outMu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	output := func() string {
		select {
		case <-outDone:
		case <-time.After(100 * time.Millisecond):
		}
		r.Close()
		outMu.Lock()
		defer outMu.Unlock()
		return string(bytes.ToValidUTF8(out.Bytes(), nil))
	}
	timer := time.NewTimer(h.Timeout)
	defer timer.Stop()
	var rr result
	select {
	case rr = <-resc:
	case <-timer.C:
		select {
		case rr = <-resc: // it ended as the timer fired: its pid may be another's now
		default:
			killTree(readPidFile(pidFile))
			select {
			case <-resc:
			case <-time.After(time.Second): // the exec returns once the container's gone at the latest
			}
			output()
			return fail(-1, fmt.Sprintf("Health check exceeded timeout (%v)", h.Timeout))
		}
	}
	text := output()
	if rr.err != nil {
		return fail(-1, rr.err.Error())
	}
	return fail(rr.code, text)
}

// readPidFile waits a moment for the runtime's pid file (it is written
// once the process runs) and returns the pid in it, 0 if none.
func readPidFile(p string) int {
	for i := 0; i < 20; i++ {
		if b, err := os.ReadFile(p); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				return pid
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0
}

// killTree SIGKILLs pid and every process descended from it: a shell's
// check (sh -c "curl ... || exit 1") runs in a child of its own.
func killTree(pid int) {
	if pid <= 0 {
		return
	}
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		p, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + ent.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			if f := strings.Fields(s[i+1:]); len(f) > 1 {
				parent[p], _ = strconv.Atoi(f[1])
			}
		}
	}
	for p := range parent {
		for a, n := p, 0; a > 1 && n < 64; a, n = parent[a], n+1 {
			if a == pid {
				unix.Kill(p, unix.SIGKILL)
				break
			}
		}
	}
}

// recordHealth updates c's health in its record, under its lock.
func (e *Engine) recordHealth(id string, f func(*Health)) {
	e.modify(id, func(c *Container) bool {
		if !c.State.Running {
			return false
		}
		if c.State.Health == nil {
			c.State.Health = &Health{}
		}
		f(c.State.Health)
		return true
	})
}

// readBundleSpec reads the config.json berth wrote for the container
// (exec and health checks run processes as its process runs).
func readBundleSpec(dir string) (*specs.Spec, error) {
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	if s.Process == nil {
		return nil, fmt.Errorf("%s: config.json has no process", dir)
	}
	return &s, nil
}
