package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// InitArg is the hidden first argument under which berth re-executes
// itself as a container's init (or as an exec'd process before it becomes
// the user's program). cmd/berth registers it in its reexecs map.
const InitArg = "runtime-init"

// initConfig is what the parent sends the init over the sync socket.
type initConfig struct {
	ID       string      `json:"id"`
	Bundle   string      `json:"bundle"`
	Rootfs   string      `json:"rootfs"`
	Spec     *specs.Spec `json:"spec"`
	Exec     bool        `json:"exec,omitempty"`     // join a running container instead of making one
	NoPivot  bool        `json:"noPivot,omitempty"`  // MS_MOVE + chroot
	Console  bool        `json:"console,omitempty"`  // fdConsole holds a connected --console-socket
	JoinMnt  bool        `json:"joinMnt,omitempty"`  // fdMntNS holds a mount namespace to enter
	CgroupNS bool        `json:"cgroupns,omitempty"` // unshare the cgroup ns once in the cgroup
	Hooks    bool        `json:"hooks,omitempty"`    // ask the parent to run createRuntime/prestart
	LastCap  int         `json:"lastCap"`
	NoDev    bool        `json:"nodev,omitempty"` // rootfs and binds nodev: the device policy without a cgroup
}

// cgMount is one host cgroup hierarchy, for mounting cgroup filesystems.
type cgMount struct {
	Name    string `json:"name"`    // directory under /sys/fs/cgroup
	Type    string `json:"type"`    // cgroup or cgroup2
	Options string `json:"options"` // superblock options (the controllers)
	Path    string `json:"path"`    // the container's cgroup inside this hierarchy
	Link    string `json:"link,omitempty"`
}

// msg is one message on the sync socket, either way.
type msg struct {
	T   string `json:"t"`
	Msg string `json:"msg,omitempty"`
	Pid int    `json:"pid,omitempty"`
}

// Message types.
const (
	msgGo     = "go"     // parent: the init is in its cgroup; carries its host pid
	msgHooks  = "hooks"  // init: mounts are done, run createRuntime/prestart now
	msgHooked = "hooked" // parent: those hooks ran
	msgReady  = "ready"  // init: set up; about to wait for start (or exec)
	msgError  = "error"  // either side: failed, with the reason
)

// Fds of the init, after stdio and the preserved fds (3+N...).
const (
	fdSync    = iota // socketpair to the parent
	fdState          // the state directory (O_PATH), to open the exec fifo after pivot
	fdConsole        // connected console socket, or closed
	fdMntNS          // mount namespace to join, or closed
	fdExe            // the sealed berth binary we were run from; closed first thing
	fdCount
)

type syncConn struct {
	f   *os.File
	enc *json.Encoder
	dec *json.Decoder
}

func newSync(f *os.File) *syncConn {
	return &syncConn{f: f, enc: json.NewEncoder(f), dec: json.NewDecoder(f)}
}

func (s *syncConn) send(m msg) error { return s.enc.Encode(m) }

// sendAny sends the config, the first value on the stream.
func (s *syncConn) sendAny(v any) error { return s.enc.Encode(v) }

// expect reads the next message and fails unless it has type t.
func (s *syncConn) expect(t string) (msg, error) {
	var m msg
	if err := s.dec.Decode(&m); err != nil {
		return m, fmt.Errorf("sync: waiting for %q: %w", t, err)
	}
	if m.T == msgError {
		return m, errors.New(m.Msg)
	}
	if m.T != t {
		return m, fmt.Errorf("sync: got %q, want %q", m.T, t)
	}
	return m, nil
}

func socketPair() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "sync-parent"), os.NewFile(uintptr(fds[1]), "sync-child"), nil
}
