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
	ID       string    `json:"id"`
	Bundle   string    `json:"bundle"`
	Rootfs   string    `json:"rootfs"`
	Spec     *initSpec `json:"spec"`
	Exec     bool      `json:"exec,omitempty"`     // join a running container instead of making one
	NoPivot  bool      `json:"noPivot,omitempty"`  // MS_MOVE + chroot
	Console  bool      `json:"console,omitempty"`  // fdConsole holds a connected --console-socket
	JoinMnt  bool      `json:"joinMnt,omitempty"`  // fdMntNS holds a mount namespace to enter
	CgroupNS bool      `json:"cgroupns,omitempty"` // unshare the cgroup ns once in the cgroup
	Hooks    bool      `json:"hooks,omitempty"`    // ask the parent to run createRuntime/prestart
	LastCap  int       `json:"lastCap"`
	NoDev    bool      `json:"nodev,omitempty"` // rootfs and binds nodev: the device policy without a cgroup
	Debug    int64     `json:"debug,omitempty"` // with --debug: when the parent forked us (unix µs), to time our phases
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

// initSpec is the part of the spec the init uses. It travels instead of
// specs.Spec because encoding/json's first decode of a type costs about
// 50 µs per struct type it meets: the full Spec graph made ~1 ms of the
// init's start, these few types a fraction of that.
type initSpec struct {
	Process     *initProcess      `json:"process"`
	Root        specs.Root        `json:"root"`
	Hostname    string            `json:"hostname,omitempty"`
	Domainname  string            `json:"domainname,omitempty"`
	Mounts      []specs.Mount     `json:"mounts,omitempty"`
	Hooks       initHooks         `json:"hooks,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Linux       initLinux         `json:"linux"`
}

type initProcess struct {
	Terminal        bool                     `json:"terminal,omitempty"`
	User            specs.User               `json:"user"`
	Args            []string                 `json:"args"`
	Env             []string                 `json:"env,omitempty"`
	Cwd             string                   `json:"cwd"`
	Capabilities    *specs.LinuxCapabilities `json:"capabilities,omitempty"`
	Rlimits         []specs.POSIXRlimit      `json:"rlimits,omitempty"`
	NoNewPrivileges bool                     `json:"noNewPrivileges,omitempty"`
}

type initHooks struct {
	CreateContainer []specs.Hook `json:"createContainer,omitempty"`
	StartContainer  []specs.Hook `json:"startContainer,omitempty"`
}

type initLinux struct {
	Namespaces        []specs.LinuxNamespace `json:"namespaces,omitempty"`
	Devices           []specs.LinuxDevice    `json:"devices,omitempty"`
	Seccomp           *specs.LinuxSeccomp    `json:"seccomp,omitempty"`
	Sysctl            map[string]string      `json:"sysctl,omitempty"`
	MaskedPaths       []string               `json:"maskedPaths,omitempty"`
	ReadonlyPaths     []string               `json:"readonlyPaths,omitempty"`
	RootfsPropagation string                 `json:"rootfsPropagation,omitempty"`
}

// trimSpec takes from s (validated) what the init needs, with process p.
func trimSpec(s *specs.Spec, p *specs.Process) *initSpec {
	t := &initSpec{
		Process: &initProcess{Terminal: p.Terminal, User: p.User, Args: p.Args, Env: p.Env, Cwd: p.Cwd,
			Capabilities: p.Capabilities, Rlimits: p.Rlimits, NoNewPrivileges: p.NoNewPrivileges},
		Hostname: s.Hostname, Domainname: s.Domainname, Mounts: s.Mounts, Annotations: s.Annotations,
	}
	if s.Root != nil {
		t.Root = *s.Root
	}
	if s.Hooks != nil {
		t.Hooks = initHooks{CreateContainer: s.Hooks.CreateContainer, StartContainer: s.Hooks.StartContainer}
	}
	if l := s.Linux; l != nil {
		t.Linux = initLinux{Namespaces: l.Namespaces, Devices: l.Devices, Seccomp: l.Seccomp, Sysctl: l.Sysctl,
			MaskedPaths: l.MaskedPaths, ReadonlyPaths: l.ReadonlyPaths, RootfsPropagation: l.RootfsPropagation}
	}
	return t
}

func (s *initSpec) hasNS(t specs.LinuxNamespaceType) bool {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == t {
			return true
		}
	}
	return false
}

func (s *initSpec) newNS(t specs.LinuxNamespaceType) bool {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == t {
			return ns.Path == ""
		}
	}
	return false
}
