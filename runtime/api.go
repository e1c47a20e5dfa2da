// Package runtime is berth's OCI runtime: it turns an OCI bundle (rootfs +
// config.json) into an isolated process on the host kernel, and keeps the
// container's state under a root directory, the way runc does.
//
// The CLI (`berth runtime ...`, or the binary linked as berth-runtime) is a
// thin layer over this package; berth's engine calls it in-process.
package runtime

import (
	"errors"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultRoot is where container state lives unless --root says otherwise.
const DefaultRoot = "/run/berth/runtime"

var errTODO = errors.New("runtime: not implemented yet")

// Runtime manages containers whose state lives under Root.
type Runtime struct {
	Root          string // state directory, one subdirectory per container
	SystemdCgroup bool   // accepted for runc compatibility; cgroupfs unless systemd runs
	Debug         bool
}

// New returns a Runtime keeping state under root (DefaultRoot if empty).
func New(root string) *Runtime {
	if root == "" {
		root = DefaultRoot
	}
	return &Runtime{Root: root}
}

// CreateOpts are the options of Create and Run, as runc's create flags.
type CreateOpts struct {
	Bundle        string     // directory holding config.json and (usually) the rootfs
	PidFile       string     // if set, the init's host pid is written here
	ConsoleSocket string     // with process.terminal, the pty master is sent here
	NoPivot       bool       // use MS_MOVE+chroot instead of pivot_root (ramfs roots)
	PreserveFDs   int        // extra fds beyond stdio passed to the container
	Stdio         []*os.File // stdin, stdout, stderr for the process; nil means inherit
	Detach        bool       // Run only: return after start, do not wait
}

// ExecOpts are the options of Exec, as runc's exec flags.
type ExecOpts struct {
	ConsoleSocket string
	PidFile       string
	Detach        bool
	Stdio         []*os.File
}

// Create sets up the container id from a bundle; its process waits for Start.
func (r *Runtime) Create(id string, o CreateOpts) error { return errTODO }

// Start runs the user process of a created container.
func (r *Runtime) Start(id string) error { return errTODO }

// Run creates and starts id, then (unless Detach) waits for it and returns
// its exit status (128+N for a signal) after deleting it.
func (r *Runtime) Run(id string, o CreateOpts) (int, error) { return 0, errTODO }

// State reports the container's OCI state.
func (r *Runtime) State(id string) (*specs.State, error) { return nil, errTODO }

// List reports the state of every container under Root.
func (r *Runtime) List() ([]*specs.State, error) { return nil, errTODO }

// Kill sends sig to the init process, or to every process with all.
func (r *Runtime) Kill(id string, sig unix.Signal, all bool) error { return errTODO }

// Delete removes a stopped container (any container with force) and
// everything it holds: state, cgroup, mounts.
func (r *Runtime) Delete(id string, force bool) error { return errTODO }

// Exec runs process p inside the running container id and returns its
// exit status (0 when detached).
func (r *Runtime) Exec(id string, p *specs.Process, o ExecOpts) (int, error) { return 0, errTODO }

// Ps lists the host pids of the container's processes.
func (r *Runtime) Ps(id string) ([]int, error) { return nil, errTODO }

// Pause freezes every process of the container; Resume thaws them.
func (r *Runtime) Pause(id string) error  { return errTODO }
func (r *Runtime) Resume(id string) error { return errTODO }
