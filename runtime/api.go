// Package runtime is berth's OCI runtime: it turns an OCI bundle (rootfs +
// config.json) into an isolated process on the host kernel, and keeps the
// container's state under a root directory, the way runc does.
//
// The CLI (`berth runtime ...`, or the binary linked as berth-runtime) is a
// thin layer over this package (runtime/cli); berth's engine calls it
// in-process.
//
// How a container starts: the caller (Create) reads config.json and
// decodes what the fork needs (namespaces, terminal, whether and how there
// is a cgroup); the whole spec is decoded, and its seccomp profile
// compiled, in the background. A thread of its own, started at once,
// makes the new network, ipc and uts namespaces, joins the container's
// cgroup (v1: the thread itself; v2: clone3 CLONE_INTO_CGROUP) and any
// namespaces joined by path, and forks the init there: berth re-executed
// from a read-only detached mount of its own binary (initproc.Arg, see
// sealedExe), born in its cgroup and namespaces. The init gets its config
// over the sync socket, mounts its rootfs, waits for "go" before it
// pivots, applies the process settings, reports "ready", and blocks
// opening exec.fifo until Start opens the other end (Run hands it a pipe
// whose reader is there already). The init's side is package initproc,
// whose init function takes over a re-executed program before main (and
// before most package inits), so any program that imports this package
// can call Create.
//
// Go cannot setns into a user or time namespace once multi-threaded, so
// util-linux's nsenter (single-threaded) does it: for exec into a
// container with its own user namespace, and for a config.json that joins
// a user or time namespace by path, where nsenter runs initproc's relay,
// which forks the init with the other new namespaces (owned by the joined
// user namespace) and passes its exit status on. Not supported (each a
// clear error): exec into a container with its own time namespace, a time
// namespace joined by path with a new user namespace, time namespace
// offsets.
package runtime

import (
	"fmt"
	"os"
	"time"

	"github.com/berthproject/berth/runtime/initproc"
)

// DefaultRoot is where container state lives unless --root says otherwise.
const DefaultRoot = "/run/berth/runtime"

// Runtime manages containers whose state lives under Root.
type Runtime struct {
	Root          string // state directory, one subdirectory per container
	SystemdCgroup bool   // accepted for runc compatibility; cgroupfs unless systemd runs
	Debug         bool

	t0 time.Time // for Debug's phase timings
}

// mark prints, with Debug, how long since the previous mark: where a
// container's start spends its time.
func (r *Runtime) mark(phase string) {
	if !r.Debug {
		return
	}
	now := time.Now()
	if r.t0.IsZero() {
		r.t0 = now
	}
	fmt.Fprintf(os.Stderr, "berth runtime: %7.2f ms  %s\n", float64(now.Sub(r.t0).Microseconds())/1000, phase)
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
	// ForwardSignals: Run passes the signals a user or supervisor sends
	// (INT, TERM, HUP, QUIT, USR1, USR2, WINCH) to the container's init.
	ForwardSignals bool

	proxyTTY bool // Run: relay a terminal itself when there is no ConsoleSocket
	// startNow (Run): start follows create at once, so a pipe whose
	// reader is open already stands in for the exec fifo and the init goes
	// on to exec without waiting for Start (which still returns only once
	// it has).
	startNow bool
}

// ExecOpts are the options of Exec, as runc's exec flags.
type ExecOpts struct {
	ConsoleSocket string
	PidFile       string
	Detach        bool
	Stdio         []*os.File
	PreserveFDs   int // extra fds beyond stdio passed to the process
	// ForwardSignals: Exec passes the signals it gets to the process.
	ForwardSignals bool
}

// CapabilityNames lists every capability berth knows, by number: the
// engine's --cap-add ALL and --privileged use the same list the runtime
// applies.
func CapabilityNames() []string { return initproc.CapabilityNames() }

// The lifecycle methods live beside their parts: Create and Start in
// create.go, Run, Kill, Delete, Ps, Pause and Resume in ops.go, State and
// List in state.go, Exec in exec.go.
