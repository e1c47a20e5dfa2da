package initproc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/berthproject/berth/runtime/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// initConfig is what the parent sends the init over the sync socket.
type Config struct {
	ID       string `json:"id"`
	Bundle   string `json:"bundle"`
	Rootfs   string `json:"rootfs"`
	Spec     *Spec  `json:"spec"`
	Exec     bool   `json:"exec,omitempty"`     // join a running container instead of making one
	NoPivot  bool   `json:"noPivot,omitempty"`  // MS_MOVE + chroot
	Console  bool   `json:"console,omitempty"`  // fdConsole holds a connected --console-socket
	JoinMnt  bool   `json:"joinMnt,omitempty"`  // fdMntNS holds a mount namespace to enter
	CgroupNS bool   `json:"cgroupns,omitempty"` // unshare the cgroup ns once in the cgroup
	Hooks    bool   `json:"hooks,omitempty"`    // ask the parent to run createRuntime/prestart
	LastCap  int    `json:"lastCap"`
	// Seccomp is Spec.Linux.Seccomp compiled by the parent (which then
	// leaves it out of Spec): the init only installs it.
	Seccomp *seccomp.Filter `json:"seccomp,omitempty"`
	NoDev   bool            `json:"nodev,omitempty"` // rootfs and binds nodev: the device policy without a cgroup
	// StartPipe (run): FdState is the write end of a pipe standing in for
	// the exec fifo, whose reader waits already; there is no fifo.
	StartPipe bool  `json:"startPipe,omitempty"`
	Debug     int64 `json:"debug,omitempty"` // with --debug: when the parent forked us (unix µs), to time our phases
	// CgroupTasks are the v1 "tasks" files of the container's cgroup,
	// which the init joins itself (its exec thread, by writing "0"), first
	// thing: the parent made the cgroup while we started.
	CgroupTasks []string `json:"cgroupTasks,omitempty"`
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
type Msg struct {
	T   string `json:"t"`
	Msg string `json:"msg,omitempty"`
	Pid int    `json:"pid,omitempty"`
}

// Message types.
const (
	MsgGo     = "go"     // parent: the init is in its cgroup; carries its host pid
	MsgHooks  = "hooks"  // init: mounts are done, run createRuntime/prestart now
	MsgHooked = "hooked" // parent: those hooks ran
	MsgReady  = "ready"  // init: set up; about to wait for start (or exec)
	MsgError  = "error"  // either side: failed, with the reason
)

// Fds of the init, after stdio and the preserved fds (3+N...).
const (
	FdSync    = iota // socketpair to the parent
	FdState          // the state directory (O_PATH), to open the exec fifo after pivot; or see StartPipe
	FdConsole        // connected console socket, or closed
	FdMntNS          // mount namespace to join, or closed
	FdExe            // the sealed berth binary we were run from; closed first thing
	FdCount
)

// Sync is the sync socket between the parent and the init: the config
// first (SendConfig), then messages either way, each a frame of the
// config's wire form (JSON's first use would cost the init ~0.1 ms).
type Sync struct {
	f *os.File
}

// NewSync wraps one end of the socket pair.
func NewSync(f *os.File) *Sync { return &Sync{f: f} }

// Send sends one message.
func (s *Sync) Send(m Msg) error {
	w := &wenc{b: make([]byte, 4, 64)}
	w.str(m.T)
	w.str(m.Msg)
	w.int(int64(m.Pid))
	binary.BigEndian.PutUint32(w.b, uint32(len(w.b)-4))
	_, err := s.f.Write(w.b)
	return err
}

// Recv reads the next message, whatever its type.
func (s *Sync) Recv() (Msg, error) {
	b, err := s.frame()
	if err != nil {
		return Msg{}, err
	}
	d := &wdec{b: b}
	m := Msg{T: d.str(), Msg: d.str(), Pid: int(d.int())}
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("sync: trailing bytes in a message")
	}
	return m, d.err
}

// frame reads one length-prefixed frame.
func (s *Sync) frame() ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(s.f, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxConfig {
		return nil, fmt.Errorf("sync: a frame of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(s.f, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// Close closes this end of the socket.
func (s *Sync) Close() error { return s.f.Close() }

// Expect reads the next message and fails unless it has type t.
func (s *Sync) Expect(t string) (Msg, error) {
	m, err := s.Recv()
	if err != nil {
		return m, fmt.Errorf("sync: waiting for %q: %w", t, err)
	}
	if m.T == MsgError {
		return m, errors.New(m.Msg)
	}
	if m.T != t {
		return m, fmt.Errorf("sync: got %q, want %q", m.T, t)
	}
	return m, nil
}

// SocketPair makes the sync socket: the parent's end and the init's.
func SocketPair() (parent, child *os.File, err error) {
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
type Spec struct {
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
	ApparmorProfile string                   `json:"apparmorProfile,omitempty"`
	SelinuxLabel    string                   `json:"selinuxLabel,omitempty"`
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
	MountLabel        string                 `json:"mountLabel,omitempty"`
}

// trimSpec takes from s (validated) what the init needs, with process p.
func TrimSpec(s *specs.Spec, p *specs.Process) *Spec {
	caps, apparmor, selinux := p.Capabilities, p.ApparmorProfile, p.SelinuxLabel
	if c := s.Process; c != nil {
		// An exec'd process that names no capabilities or LSM label gets
		// the container's, as under runc: never all of our capabilities,
		// nor no confinement. (Rlimits are its own, as under runc.)
		if caps == nil {
			caps = c.Capabilities
		}
		if apparmor == "" {
			apparmor = c.ApparmorProfile
		}
		if selinux == "" {
			selinux = c.SelinuxLabel
		}
	}
	t := &Spec{
		Process: &initProcess{Terminal: p.Terminal, User: p.User, Args: p.Args, Env: p.Env, Cwd: p.Cwd,
			Capabilities: caps, Rlimits: p.Rlimits, NoNewPrivileges: p.NoNewPrivileges,
			ApparmorProfile: apparmor, SelinuxLabel: selinux},
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
			MaskedPaths: l.MaskedPaths, ReadonlyPaths: l.ReadonlyPaths, RootfsPropagation: l.RootfsPropagation,
			MountLabel: l.MountLabel}
	}
	return t
}

func (s *Spec) hasNS(t specs.LinuxNamespaceType) bool {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == t {
			return true
		}
	}
	return false
}

func (s *Spec) newNS(t specs.LinuxNamespaceType) bool {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == t {
			return ns.Path == ""
		}
	}
	return false
}
