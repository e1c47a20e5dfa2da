package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/berthproject/berth/runtime/initproc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var validID = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.+-]*$`)

func checkID(id string) error {
	if !validID.MatchString(id) || len(id) > 1024 {
		return fmt.Errorf("invalid container id %q: use letters, digits, '_', '.', '+', '-'", id)
	}
	return nil
}

// loadBundle reads and validates bundle/config.json and returns the spec
// with the rootfs path made absolute. Every problem is one line naming it.
func loadBundle(bundle string) (*specs.Spec, json.RawMessage, string, error) {
	b, err := readBundle(bundle)
	if err != nil {
		return nil, nil, "", err
	}
	s, err := b.decode()
	return s, b.raw, b.rootfs, err
}

// bundleFile is a bundle's config.json, read, with only what forking the
// init needs decoded and checked (head). Create decodes the rest (decode)
// while the init starts: encoding/json's first decode of the whole spec
// costs about a millisecond here, nearly all of it learning the types.
type bundleFile struct {
	dir, rootfs string
	raw         json.RawMessage
	head        *specs.Spec // see bundleHead
}

// bundleHead is the part of config.json in bundleFile.head: what decides
// how the init is forked (its namespaces, its terminal) and whether and
// how it gets a cgroup (see needCgroup, withDefaultDevices), which it is
// born in.
type bundleHead struct {
	Version string `json:"ociVersion"`
	Root    *struct {
		Path string `json:"path"`
	} `json:"root"`
	Process *struct {
		Terminal     bool `json:"terminal"`
		Capabilities *struct {
			Bounding []string `json:"bounding"`
		} `json:"capabilities"`
	} `json:"process"`
	Mounts []struct {
		Destination string   `json:"destination"`
		Type        string   `json:"type"`
		Options     []string `json:"options"` // a writable cgroup mount needs a cgroup
	} `json:"mounts"`
	Linux *struct {
		Namespaces  []specs.LinuxNamespace           `json:"namespaces"`
		UIDMappings []specs.LinuxIDMapping           `json:"uidMappings"`
		GIDMappings []specs.LinuxIDMapping           `json:"gidMappings"`
		CgroupsPath string                           `json:"cgroupsPath"`
		Resources   *specs.LinuxResources            `json:"resources"`
		Devices     []specs.LinuxDevice              `json:"devices"`
		TimeOffsets map[string]specs.LinuxTimeOffset `json:"timeOffsets"`
	} `json:"linux"`
}

func readBundle(bundle string) (*bundleFile, error) {
	if bundle == "" {
		bundle = "."
	}
	abs, err := filepath.Abs(bundle)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(abs, "config.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("bundle %s: config.json not found", abs)
		}
		return nil, fmt.Errorf("bundle %s: %w", abs, err)
	}
	// Unmarshal checks the whole document's syntax first, so a malformed
	// config.json fails here, whatever part is broken.
	var h bundleHead
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("bundle %s: malformed config.json: %v", abs, jsonErr(data, err))
	}
	s := &specs.Spec{Version: h.Version}
	if h.Root != nil {
		s.Root = &specs.Root{Path: h.Root.Path}
	}
	if h.Process != nil {
		s.Process = &specs.Process{Terminal: h.Process.Terminal}
		if c := h.Process.Capabilities; c != nil {
			s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: c.Bounding}
		}
	}
	for _, m := range h.Mounts {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: m.Destination, Type: m.Type, Options: m.Options})
	}
	if l := h.Linux; l != nil {
		s.Linux = &specs.Linux{Namespaces: l.Namespaces, UIDMappings: l.UIDMappings, GIDMappings: l.GIDMappings,
			CgroupsPath: l.CgroupsPath, Resources: l.Resources, Devices: l.Devices, TimeOffsets: l.TimeOffsets}
	}
	if err := validateHead(s); err != nil {
		return nil, fmt.Errorf("bundle %s: config.json: %w", abs, err)
	}
	rootfs := s.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(abs, rootfs)
	}
	st, err := os.Stat(rootfs)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: rootfs %s does not exist", abs, rootfs)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("bundle %s: rootfs %s is not a directory", abs, rootfs)
	}
	if rootfs, err = filepath.EvalSymlinks(rootfs); err != nil {
		return nil, err
	}
	return &bundleFile{dir: abs, rootfs: rootfs, raw: data, head: s}, nil
}

// decode decodes and validates the whole spec.
func (b *bundleFile) decode() (*specs.Spec, error) {
	var s specs.Spec
	if err := json.Unmarshal(b.raw, &s); err != nil {
		return nil, fmt.Errorf("bundle %s: malformed config.json: %v", b.dir, jsonErr(b.raw, err))
	}
	if err := validateSpec(&s); err != nil {
		return nil, fmt.Errorf("bundle %s: config.json: %w", b.dir, err)
	}
	return &s, nil
}

// jsonErr adds the line number to a syntax error so the user can find it.
func jsonErr(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line := 1 + strings.Count(string(data[:min(int(se.Offset), len(data))]), "\n")
		return fmt.Errorf("line %d: %v", line, err)
	}
	return err
}

var nsFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.UserNamespace:    unix.CLONE_NEWUSER,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
	specs.TimeNamespace:    unix.CLONE_NEWTIME,
}

// nsProcName is the name of each namespace under /proc/<pid>/ns.
var nsProcName = map[specs.LinuxNamespaceType]string{
	specs.PIDNamespace:     "pid",
	specs.NetworkNamespace: "net",
	specs.MountNamespace:   "mnt",
	specs.IPCNamespace:     "ipc",
	specs.UTSNamespace:     "uts",
	specs.UserNamespace:    "user",
	specs.CgroupNamespace:  "cgroup",
	specs.TimeNamespace:    "time",
}

// validateHead checks what bundleFile.head holds: everything that decides
// how the init is forked.
func validateHead(s *specs.Spec) error {
	if s.Version == "" {
		return errors.New("ociVersion is missing")
	}
	if !strings.HasPrefix(s.Version, "1.") && s.Version != "1" {
		return fmt.Errorf("unsupported ociVersion %q: berth supports 1.x", s.Version)
	}
	if s.Root == nil || s.Root.Path == "" {
		return errors.New("root.path is missing")
	}
	if s.Process == nil {
		return errors.New("process is missing")
	}
	if s.Linux == nil {
		return errors.New("linux section is missing")
	}
	seen := map[specs.LinuxNamespaceType]bool{}
	for _, ns := range s.Linux.Namespaces {
		if _, ok := nsFlags[ns.Type]; !ok {
			return fmt.Errorf("unknown namespace type %q", ns.Type)
		}
		if seen[ns.Type] {
			return fmt.Errorf("namespace %q listed twice", ns.Type)
		}
		seen[ns.Type] = true
		if ns.Path != "" {
			if err := checkNSPath(ns); err != nil {
				return err
			}
		}
	}
	if _, err := timensOffsets(s); err != nil {
		return err
	}
	if (len(s.Linux.UIDMappings) > 0 || len(s.Linux.GIDMappings) > 0) && !newNS(s, specs.UserNamespace) {
		return errors.New("uid/gid mappings need a new user namespace")
	}
	if newNS(s, specs.UserNamespace) && (len(s.Linux.UIDMappings) == 0 || len(s.Linux.GIDMappings) == 0) {
		return errors.New("a new user namespace needs uidMappings and gidMappings")
	}
	return nil
}

func validateSpec(s *specs.Spec) error {
	if err := validateHead(s); err != nil {
		return err
	}
	if len(s.Process.Args) == 0 {
		return errors.New("process.args is empty")
	}
	if s.Process.Cwd == "" {
		s.Process.Cwd = "/"
	}
	if !filepath.IsAbs(s.Process.Cwd) {
		return fmt.Errorf("process.cwd %q is not absolute", s.Process.Cwd)
	}
	if err := checkUser(s.Process.User); err != nil {
		return err
	}
	if _, uts := hasNS(s, specs.UTSNamespace); s.Hostname != "" && !uts {
		return errors.New("hostname is set but there is no uts namespace")
	}
	if _, uts := hasNS(s, specs.UTSNamespace); s.Domainname != "" && !uts {
		return errors.New("domainname is set but there is no uts namespace")
	}
	for _, m := range s.Mounts {
		if !filepath.IsAbs(m.Destination) {
			return fmt.Errorf("mount destination %q is not absolute", m.Destination)
		}
	}
	for k := range s.Linux.Sysctl {
		if k == "" || strings.Contains(k, "..") || strings.HasPrefix(k, ".") || strings.HasPrefix(k, "/") {
			return fmt.Errorf("invalid sysctl %q", k)
		}
	}
	if s.Process.Capabilities != nil {
		c := s.Process.Capabilities
		for _, set := range [][]string{c.Bounding, c.Effective, c.Inheritable, c.Permitted, c.Ambient} {
			for _, n := range set {
				if _, err := initproc.CapNumber(n); err != nil {
					return err
				}
			}
		}
	}
	for _, rl := range s.Process.Rlimits {
		if _, ok := initproc.RlimitResource(rl.Type); !ok {
			return fmt.Errorf("unknown rlimit %q", rl.Type)
		}
	}
	return nil
}

func hasNS(s *specs.Spec, t specs.LinuxNamespaceType) (specs.LinuxNamespace, bool) {
	if s.Linux == nil {
		return specs.LinuxNamespace{}, false
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == t {
			return ns, true
		}
	}
	return specs.LinuxNamespace{}, false
}

// newNS reports whether the container gets a fresh namespace of type t.
// checkNSPath fails unless ns.Path is a namespace of ns.Type: joining
// the wrong kind would fail later, deep in the init, with EINVAL.
func checkNSPath(ns specs.LinuxNamespace) error {
	f, err := os.Open(ns.Path)
	if err != nil {
		return fmt.Errorf("namespace %s path %s: %v", ns.Type, ns.Path, errors.Unwrap(err))
	}
	defer f.Close()
	t, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	if err != nil {
		return fmt.Errorf("namespace %s path %s: not a namespace", ns.Type, ns.Path)
	}
	if uintptr(t) != nsFlags[ns.Type] {
		return fmt.Errorf("namespace %s path %s: it is another kind of namespace", ns.Type, ns.Path)
	}
	return nil
}

// joinedByPath returns the paths of the user and time namespaces s joins
// ("" for each it does not): the init cannot setns into those itself.
func joinedByPath(s *specs.Spec) (user, time string) {
	if ns, ok := hasNS(s, specs.UserNamespace); ok {
		user = ns.Path
	}
	if ns, ok := hasNS(s, specs.TimeNamespace); ok {
		time = ns.Path
	}
	return user, time
}

// timensOffsets returns linux.timeOffsets as the kernel's
// /proc/<pid>/timens_offsets wants them ("" when there are none). They
// need a new time namespace: a joined one has its clocks set already.
func timensOffsets(s *specs.Spec) (string, error) {
	if len(s.Linux.TimeOffsets) == 0 {
		return "", nil
	}
	if !newNS(s, specs.TimeNamespace) {
		return "", errors.New("linux.timeOffsets need a new time namespace")
	}
	var b strings.Builder
	for _, clock := range []string{"monotonic", "boottime"} {
		if o, ok := s.Linux.TimeOffsets[clock]; ok {
			if o.Nanosecs >= 1e9 {
				return "", fmt.Errorf("linux.timeOffsets.%s: nanosecs %d is not below one second", clock, o.Nanosecs)
			}
			fmt.Fprintf(&b, "%s %d %d\n", clock, o.Secs, o.Nanosecs)
		}
	}
	for clock := range s.Linux.TimeOffsets {
		if clock != "monotonic" && clock != "boottime" {
			return "", fmt.Errorf("linux.timeOffsets: unknown clock %q (monotonic or boottime)", clock)
		}
	}
	return b.String(), nil
}

func newNS(s *specs.Spec, t specs.LinuxNamespaceType) bool {
	ns, ok := hasNS(s, t)
	return ok && ns.Path == ""
}

// noID is (uid_t)-1: to setresuid and setresgid "leave this id as it
// is", so a process given it would keep the runtime's root.
const noID = 1<<32 - 1

// checkUser refuses a process user that names noID.
func checkUser(u specs.User) error {
	if u.UID == noID || u.GID == noID {
		return fmt.Errorf("process.user %d:%d: 4294967295 is no id (it means 'unchanged': root)", u.UID, u.GID)
	}
	for _, g := range u.AdditionalGids {
		if g == noID {
			return errors.New("process.user.additionalGids: 4294967295 is no group id")
		}
	}
	return nil
}
