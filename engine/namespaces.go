package engine

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// nsMode is one of --pid, --ipc, --uts and --cgroupns: "" (the
// container's own namespace), "host", or "container:NAME" for another
// container's.
type nsMode struct {
	flag, file string // the flag, the file under /proc/PID/ns
	typ        specs.LinuxNamespaceType
	mode       string
	sharable   bool // container:NAME is allowed
}

func nsModes(o *Options) []nsMode {
	return []nsMode{
		{"--pid", "pid", specs.PIDNamespace, o.PidMode, true},
		{"--ipc", "ipc", specs.IPCNamespace, o.IpcMode, true},
		{"--uts", "uts", specs.UTSNamespace, o.UtsMode, false},
		{"--cgroupns", "cgroup", specs.CgroupNamespace, o.CgroupnsMode, false},
	}
}

// checkNSModes refuses modes docker does not have.
func checkNSModes(o *Options) error {
	for _, m := range nsModes(o) {
		switch {
		case m.mode == "" || m.mode == "host":
		case m.mode == "private" && (m.typ == specs.IPCNamespace || m.typ == specs.CgroupNamespace):
		case m.mode == "shareable" && m.typ == specs.IPCNamespace:
		case m.sharable && strings.HasPrefix(m.mode, "container:") && len(m.mode) > len("container:"):
		default:
			return fmt.Errorf("invalid %s %q", m.flag, m.mode)
		}
	}
	return nil
}

// joinedNamespaces resolves the container:NAME modes to the namespaces of
// those containers' inits, as the spec names them.
func (e *Engine) joinedNamespaces(o *Options) (map[specs.LinuxNamespaceType]string, error) {
	out := map[specs.LinuxNamespaceType]string{}
	for _, m := range nsModes(o) {
		name, ok := strings.CutPrefix(m.mode, "container:")
		if !ok {
			continue
		}
		other, err := e.Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", m.flag, m.mode, err)
		}
		if !other.State.Running || other.State.Pid <= 0 {
			return nil, fmt.Errorf("%s %s: container %s is not running", m.flag, m.mode, other.Name)
		}
		out[m.typ] = "/proc/" + strconv.Itoa(other.State.Pid) + "/ns/" + m.file
	}
	return out, nil
}

// checkJoinedNamespaces makes sure that pid, a new container's init, is in
// the namespaces its container:NAME modes name (see checkJoined).
func (e *Engine) checkJoinedNamespaces(o *Options, pid int) error {
	for _, m := range nsModes(o) {
		if name, ok := strings.CutPrefix(m.mode, "container:"); ok {
			if err := e.checkJoined(m.flag+" "+m.mode, name, m.file, pid); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyNSModes edits the spec's namespaces for the modes: host drops the
// namespace (the host's is kept), container:NAME joins NAME's.
func applyNSModes(s *specs.Spec, o *Options, joins map[specs.LinuxNamespaceType]string) error {
	for _, m := range nsModes(o) {
		switch {
		case m.mode == "host":
			s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == m.typ })
		case strings.HasPrefix(m.mode, "container:"):
			p := joins[m.typ]
			if p == "" {
				return fmt.Errorf("%s %s: no namespace to join", m.flag, m.mode)
			}
			for i := range s.Linux.Namespaces {
				if s.Linux.Namespaces[i].Type == m.typ {
					s.Linux.Namespaces[i].Path = p
				}
			}
		}
	}
	if o.UtsMode == "host" {
		s.Hostname = "" // the host's, which the container may not change
	}
	if o.IpcMode == "host" {
		bindShm(s, "/dev/shm") // the host's POSIX shared memory too, as docker gives it
	}
	return nil
}

// bindShm makes the container's /dev/shm a bind of the host directory src
// instead of a tmpfs of its own.
func bindShm(s *specs.Spec, src string) {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == "/dev/shm" {
			s.Mounts[i] = specs.Mount{Destination: "/dev/shm", Type: "bind", Source: src, Options: []string{"rbind", "nosuid", "noexec", "nodev"}}
		}
	}
}

// hostHostname is the host's name, for --uts host.
func hostHostname() string {
	h, _ := os.Hostname()
	return h
}
