package runtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/berthproject/berth/runtime/initproc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Files in a container's state directory.
const (
	stateFile = "state.json"
	fifoFile  = initproc.FifoFile
)

// container is what state.json holds: the OCI state plus what later
// commands need (how to tell pid reuse, the cgroup, hooks, namespaces).
type container struct {
	specs.State
	Created    time.Time       `json:"created"`
	InitStart  uint64          `json:"initStart"` // field 22 of /proc/<pid>/stat
	Rootfs     string          `json:"rootfs"`
	CgroupPath string          `json:"cgroupPath,omitempty"` // empty: no cgroup was made
	Paused     bool            `json:"paused,omitempty"`
	Config     json.RawMessage `json:"config"` // config.json as given, decoded when needed

	dir  string
	cfg  *specs.Spec
	lock *os.File
	tty  *ttyProxy // Run's own terminal relay, if any
	fifo int       // Run: the exec fifo's read end, opened by create; -1 if not
}

func (r *Runtime) dir(id string) string { return filepath.Join(r.Root, id) }

// load reads id's state under an exclusive flock that the caller releases
// with c.unlock; concurrent commands on one container serialise.
func (r *Runtime) load(id string) (*container, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	dir := r.dir(id)
	f, err := os.Open(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, notExist(id)
		}
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	c, err := readState(dir)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("container %q: %w", id, err)
	}
	c.lock = f
	return c, nil
}

// notExist is the error for an unknown container; errors.Is(err,
// os.ErrNotExist) holds for it.
type notExist string

func (e notExist) Error() string        { return fmt.Sprintf("container %q does not exist", string(e)) }
func (e notExist) Is(target error) bool { return target == os.ErrNotExist }

func readState(dir string) (*container, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errors.New("no state (being created, or a crashed create)")
		}
		return nil, err
	}
	c := &container{dir: dir, fifo: -1}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("corrupt state.json: %v", err)
	}
	return c, nil
}

// spec is the container's config.json, decoded on first use (start and
// delete of a plain run never need it).
func (c *container) spec() *specs.Spec {
	if c.cfg == nil {
		c.cfg = &specs.Spec{}
		_ = json.Unmarshal(c.Config, c.cfg)
		if c.cfg.Linux == nil {
			c.cfg.Linux = &specs.Linux{}
		}
		if c.cfg.Process == nil {
			c.cfg.Process = &specs.Process{}
		}
	}
	return c.cfg
}

// takeFifo hands over the exec fifo's read end create opened (-1 if none).
func (c *container) takeFifo() int {
	fd := c.fifo
	c.fifo = -1
	return fd
}

func (c *container) unlock() {
	if c.lock != nil {
		c.lock.Close()
		c.lock = nil
	}
}

// save writes state.json atomically (temp file + rename).
func (c *container) save() error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	tmp := filepath.Join(c.dir, ".state.tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(c.dir, stateFile))
}

// procStart returns the start time and state letter of pid from
// /proc/<pid>/stat, or ok=false when there is no such process.
func procStart(pid int) (start uint64, state byte, ok bool) {
	if pid <= 0 {
		return 0, 0, false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// comm may hold spaces and parens: fields start after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 >= len(data) {
		return 0, 0, false
	}
	f := bytes.Fields(data[i+2:])
	if len(f) < 20 {
		return 0, 0, false
	}
	start, _ = strconv.ParseUint(string(f[19]), 10, 64)
	return start, f[0][0], true
}

// alive reports whether the container's init still runs (not a zombie,
// and not a new process that reused the pid).
func (c *container) alive() bool {
	start, st, ok := procStart(c.Pid)
	return ok && start == c.InitStart && st != 'Z' && st != 'X'
}

// status computes the OCI status from the process and the fifo.
func (c *container) status() specs.ContainerState {
	if !c.alive() {
		return specs.StateStopped
	}
	if _, err := os.Lstat(filepath.Join(c.dir, fifoFile)); err == nil {
		return specs.StateCreated
	}
	if c.Paused {
		return StatePaused
	}
	return specs.StateRunning
}

// ociState is the state as `state` prints it and hooks read it.
func (c *container) ociState() *specs.State {
	s := c.State
	s.Version = specs.Version
	s.Status = c.status()
	if s.Status == specs.StateStopped {
		s.Pid = 0
	}
	return &s
}

// State reports the container's OCI state.
func (r *Runtime) State(id string) (*specs.State, error) {
	c, err := r.load(id)
	if err != nil {
		return nil, err
	}
	defer c.unlock()
	return c.ociState(), nil
}

// List reports the state of every container under Root.
func (r *Runtime) List() ([]*specs.State, error) {
	ents, err := os.ReadDir(r.Root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []*specs.State
	for _, e := range ents {
		if !e.IsDir() || checkID(e.Name()) != nil {
			continue
		}
		c, err := readState(r.dir(e.Name()))
		if err != nil {
			continue // being created or deleted right now
		}
		out = append(out, c.ociState())
	}
	return out, nil
}

// StateInfo is the extra state runc's `state` and `list` print.
type StateInfo struct {
	Created time.Time
	Rootfs  string
}

// Info returns the creation time and rootfs of id.
func (r *Runtime) Info(id string) (StateInfo, error) {
	c, err := readState(r.dir(id))
	if err != nil {
		return StateInfo{}, err
	}
	return StateInfo{Created: c.Created, Rootfs: c.Rootfs}, nil
}

// StatePaused is the status of a frozen container; the spec's state
// package has no constant for it, runc prints "paused".
const StatePaused specs.ContainerState = "paused"

// Process returns a copy of the process config.json gave id, the base an
// exec without a process.json starts from (env, user, capabilities...).
func (r *Runtime) Process(id string) (*specs.Process, error) {
	c, err := readState(r.dir(id))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || !dirExists(r.dir(id)) {
			return nil, notExist(id)
		}
		return nil, err
	}
	data, err := json.Marshal(c.spec().Process)
	if err != nil {
		return nil, err
	}
	var p specs.Process
	err = json.Unmarshal(data, &p)
	return &p, err
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
