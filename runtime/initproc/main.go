// Package initproc is the container's side of berth's OCI runtime: berth
// re-executed inside the container's new (or joined) namespaces, which
// sets up the rootfs and the process, reports to the runtime over the sync
// socket, waits for start, and execs the user's program. The runtime
// package (the parent side) speaks to it through the types in proto.go.
//
// It starts before most of berth's packages are initialised: its init
// function recognises the re-exec (os.Args[1] == Arg) and runs the
// container init there, never returning to main. Go initialises packages
// in dependency order, the earliest import path first among those ready,
// so this package runs right after its own few dependencies and the
// container's start does not pay for the package init of everything else
// linked into berth (registries, compression, the Dockerfile parser...).
// Keep its imports to the standard library, x/sys/unix, the runtime-spec
// types, filepath-securejoin and runtime/seccomp: each heavier import
// moves it later.
package initproc

import (
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Arg is the hidden first argument under which berth re-executes itself
// as a container's init (or as an exec'd process before it becomes the
// user's program).
const Arg = "runtime-init"

func init() {
	if len(os.Args) > 1 && os.Args[1] == Arg {
		os.Exit(Main(os.Args[2:]))
	}
}

// FifoFile is the exec fifo in a container's state directory: it exists
// from create until start, and the init blocks opening it.
const FifoFile = "exec.fifo"

// RlimitResource returns the RLIMIT_ number of an OCI rlimit type.
func RlimitResource(typ string) (int, bool) {
	r, ok := rlimitResources[typ]
	return r, ok
}

// DefaultDevices returns the devices every container gets, as runc gives them.
func DefaultDevices() []specs.LinuxDevice { return append([]specs.LinuxDevice(nil), defaultDevices...) }

var rlimitResources = map[string]int{
	"RLIMIT_AS":         unix.RLIMIT_AS,
	"RLIMIT_CORE":       unix.RLIMIT_CORE,
	"RLIMIT_CPU":        unix.RLIMIT_CPU,
	"RLIMIT_DATA":       unix.RLIMIT_DATA,
	"RLIMIT_FSIZE":      unix.RLIMIT_FSIZE,
	"RLIMIT_LOCKS":      unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK":    unix.RLIMIT_MEMLOCK,
	"RLIMIT_MSGQUEUE":   unix.RLIMIT_MSGQUEUE,
	"RLIMIT_NICE":       unix.RLIMIT_NICE,
	"RLIMIT_NOFILE":     unix.RLIMIT_NOFILE,
	"RLIMIT_NPROC":      unix.RLIMIT_NPROC,
	"RLIMIT_RSS":        unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO":     unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME":     unix.RLIMIT_RTTIME,
	"RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK":      unix.RLIMIT_STACK,
}
