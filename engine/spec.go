package engine

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/runtime"
)

// defaultCaps is docker's default capability set.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// allCapNames lists capabilities by number, the runtime's own list.
var allCapNames = runtime.CapabilityNames()

// hostCaps is every capability the running kernel knows that berth itself
// holds: --privileged cannot give more than berth has (here root may lack
// CAP_SYS_RESOURCE).
func hostCaps() []string {
	last := len(allCapNames) - 1
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n < last {
			last = n
		}
	}
	var out []string
	for i := 0; i <= last; i++ {
		if hasCap(i) {
			out = append(out, allCapNames[i])
		}
	}
	return out
}

func normCap(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if c != "ALL" && !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

// capabilities applies --cap-add/--cap-drop (ALL allowed in either, drops
// first as docker does) to base.
func capabilities(base, add, drop []string) ([]string, error) {
	known := map[string]bool{}
	for _, c := range allCapNames {
		known[c] = true
	}
	set := map[string]bool{}
	for _, c := range base {
		set[c] = true
	}
	for _, c := range drop {
		c = normCap(c)
		if c == "ALL" {
			set = map[string]bool{}
			continue
		}
		if !known[c] {
			return nil, fmt.Errorf("unknown capability %q in --cap-drop", c)
		}
		delete(set, c)
	}
	for _, c := range add {
		c = normCap(c)
		if c == "ALL" {
			for _, h := range hostCaps() {
				set[h] = true
			}
			continue
		}
		if !known[c] {
			return nil, fmt.Errorf("unknown capability %q in --cap-add", c)
		}
		set[c] = true
	}
	var out []string
	for _, c := range allCapNames {
		if set[c] {
			out = append(out, c)
		}
	}
	return out, nil
}

// docker's masked and read-only paths.
var (
	maskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// initPath is where --init's init is bind-mounted in the container.
const initPath = "/dev/init"

// specInput is everything a spec is generated from.
type specInput struct {
	ID       string
	Image    *v1.ConfigFile
	Opts     *Options
	Rootfs   string        // the mounted rootfs (users and groups are read from it)
	Dir      string        // container directory: hosts, hostname, resolv.conf
	Mounts   []specs.Mount // volumes, binds and tmpfs, resolved
	InitBin  string        // host path of the read-only init binary for --init
	Hostname string
	Netns    string                              // --network container:NAME: the netns to join
	Joins    map[specs.LinuxNamespaceType]string // --pid/--ipc container:NAME
	ShmDir   string                              // host dir for /dev/shm (--ipc shareable or a shareable one's)
}

// processArgs is the command the container runs: entrypoint + cmd, with
// docker's override rules (--entrypoint clears the image's Cmd).
func processArgs(img *v1.Config, o *Options) []string {
	entry := img.Entrypoint
	cmd := img.Cmd
	if o.Entrypoint != nil {
		entry = nil
		if *o.Entrypoint != "" {
			entry = []string{*o.Entrypoint}
		}
		cmd = nil
	}
	if len(o.Args) > 0 {
		cmd = o.Args
	}
	return append(append([]string(nil), entry...), cmd...)
}

// imageConfig returns the image's runtime config (never nil).
func imageConfig(cf *v1.ConfigFile) *v1.Config {
	if cf == nil {
		return &v1.Config{}
	}
	return &cf.Config
}

// buildSpec makes the OCI runtime spec for a container: the image's config
// and the options on top of docker's defaults.
func buildSpec(in specInput) (*specs.Spec, error) {
	o := in.Opts
	img := imageConfig(in.Image)
	args := processArgs(img, o)
	if len(args) == 0 {
		return nil, fmt.Errorf("no command specified: the image has no Entrypoint or Cmd, give one after the image name")
	}

	// Environment: PATH default, image's, HOSTNAME, then the options'.
	env := []string{defaultPath}
	env = mergeEnv(env, img.Env...)
	env = mergeEnv(env, "HOSTNAME="+in.Hostname)
	if o.Tty {
		env = mergeEnv(env, "TERM=xterm")
	}
	for _, f := range o.EnvFiles {
		fe, err := readEnvFile(f)
		if err != nil {
			return nil, err
		}
		env = mergeEnv(env, fe...)
	}
	env = mergeEnv(env, o.Env...)

	userSpec := img.User
	if o.User != "" {
		userSpec = o.User
	}
	u, err := resolveUser(in.Rootfs, userSpec, o.GroupAdd)
	if err != nil {
		return nil, err
	}
	if _, ok := envLookup(env, "HOME"); !ok {
		env = append(env, "HOME="+u.Home)
	}

	cwd := img.WorkingDir
	if o.Workdir != "" {
		cwd = o.Workdir
	}
	if cwd == "" {
		cwd = "/"
	}
	if !path.IsAbs(cwd) {
		return nil, fmt.Errorf("working directory %q must be absolute", cwd)
	}
	cwd = path.Clean(cwd)

	caps := defaultCaps
	if o.Privileged {
		caps = hostCaps()
	}
	caps, err = capabilities(caps, o.CapAdd, o.CapDrop)
	if err != nil {
		return nil, err
	}
	procCaps := &specs.LinuxCapabilities{Bounding: caps, Permitted: caps, Effective: caps}
	if u.UID != 0 {
		// A non-root user starts with no effective privilege, as in docker;
		// file capabilities and setuid binaries can still raise it.
		procCaps.Permitted = nil
		procCaps.Effective = nil
	}

	noNewPrivs := false
	seccompOpt := ""
	for _, so := range o.SecurityOpt {
		k, v, _ := strings.Cut(so, "=")
		if so == "no-new-privileges" || (k == "no-new-privileges" && v != "false") {
			noNewPrivs = true
			continue
		}
		if k == "no-new-privileges" {
			continue
		}
		switch k {
		case "seccomp":
			seccompOpt = v
		case "label", "apparmor":
			// No SELinux or AppArmor on berth's hosts: accepted and ignored.
		default:
			return nil, fmt.Errorf("invalid --security-opt %q: want seccomp=PROFILE.json|unconfined or no-new-privileges", so)
		}
	}

	if o.Init {
		args = append([]string{initPath, "container-init", "--"}, args...)
	}

	rl, err := rlimits(o.Ulimits)
	if err != nil {
		return nil, err
	}

	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Terminal: o.Tty,
			User: specs.User{
				UID: u.UID, GID: u.GID, AdditionalGids: u.Groups,
			},
			Args:            args,
			Env:             env,
			Cwd:             cwd,
			Capabilities:    procCaps,
			Rlimits:         rl,
			NoNewPrivileges: noNewPrivs,
		},
		Root:     &specs.Root{Path: in.Rootfs, Readonly: o.ReadOnly},
		Hostname: in.Hostname,
		Linux: &specs.Linux{
			CgroupsPath: cgroupsPath(in.ID),
			Resources:   &specs.LinuxResources{},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace}, {Type: specs.CgroupNamespace},
			},
		},
	}
	if o.Tty {
		s.Process.ConsoleSize = &specs.Box{Height: 24, Width: 80}
	}
	if o.OOMScoreAdj != 0 {
		if o.OOMScoreAdj < -1000 || o.OOMScoreAdj > 1000 {
			return nil, fmt.Errorf("--oom-score-adj %d: must be -1000 to 1000", o.OOMScoreAdj)
		}
		adj := o.OOMScoreAdj
		s.Process.OOMScoreAdj = &adj
	}
	switch kind, _ := networkMode(o.Network); kind {
	case netHost:
	case netContainer:
		if in.Netns == "" {
			return nil, fmt.Errorf("--network %s: no network namespace to join", o.Network)
		}
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in.Netns})
	default:
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
		// docker's defaults in a private netns: any user may bind low
		// ports and ping.
		s.Linux.Sysctl = map[string]string{
			"net.ipv4.ip_unprivileged_port_start": "0",
			"net.ipv4.ping_group_range":           "0 2147483647",
		}
	}

	s.Mounts = defaultMounts(o.Privileged)
	if o.Init && in.InitBin != "" {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: initPath, Type: "bind", Source: in.InitBin,
			Options: []string{"bind", "ro", "nosuid", "nodev"}})
	}
	for _, f := range []string{"hosts", "hostname", "resolv.conf"} {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/etc/" + f, Type: "bind",
			Source: filepath.Join(in.Dir, f), Options: []string{"rbind", "rprivate"}})
	}
	s.Mounts = append(s.Mounts, in.Mounts...)

	if o.Privileged {
		devs, err := hostDevices()
		if err != nil {
			return nil, err
		}
		s.Linux.Devices = devs
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	} else {
		s.Linux.MaskedPaths = maskedPaths
		s.Linux.ReadonlyPaths = readonlyPaths
		s.Linux.Resources.Devices = defaultDeviceRules()
	}

	if err := resources(s.Linux.Resources, o); err != nil {
		return nil, err
	}
	if err := applyNSModes(s, o, in.Joins); err != nil {
		return nil, err
	}
	if in.ShmDir != "" {
		bindShm(s, in.ShmDir)
	}
	sc, err := sysctls(o.Sysctls)
	if err != nil {
		return nil, err
	}
	for k, v := range sc {
		if s.Linux.Sysctl == nil {
			s.Linux.Sysctl = map[string]string{}
		}
		s.Linux.Sysctl[k] = v
	}
	if o.ShmSize != "" && o.IpcMode != "host" {
		n, err := parseSize(o.ShmSize)
		if err != nil {
			return nil, fmt.Errorf("--shm-size: %w", err)
		}
		if n <= 0 {
			n = 64 << 20 // docker's default; a tmpfs of size=0 has no limit
		}
		for i, m := range s.Mounts {
			if m.Destination == "/dev/shm" && m.Type == "tmpfs" {
				s.Mounts[i].Options = append(slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return strings.HasPrefix(o, "size=") }),
					"size="+strconv.FormatInt(n, 10))
			}
		}
	}
	devs, rules, err := devices(o.Devices)
	if err != nil {
		return nil, err
	}
	s.Linux.Devices = append(s.Linux.Devices, devs...)
	s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, rules...)

	switch {
	case o.Privileged || seccompOpt == "unconfined":
	case seccompOpt == "":
		if s.Linux.Seccomp, err = seccomp.GetDefaultProfile(s); err != nil {
			return nil, fmt.Errorf("default seccomp profile: %w", err)
		}
	default:
		body, err := os.ReadFile(seccompOpt)
		if err != nil {
			return nil, fmt.Errorf("seccomp profile: %w", err)
		}
		if s.Linux.Seccomp, err = seccomp.LoadProfile(string(body), s); err != nil {
			return nil, fmt.Errorf("seccomp profile %s: %w", seccompOpt, err)
		}
	}
	return s, nil
}

func cgroupsPath(id string) string { return "/berth/" + id }

var cpusetRe = regexp.MustCompile(`^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$`)

// sysctls parses --sysctl K=V (the runtime checks that each is the
// container's own, namespaced).
func sysctls(kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(k, "/ \t\n") {
			return nil, fmt.Errorf("invalid --sysctl %q: want NAME=VALUE", kv)
		}
		out[k] = v
	}
	return out, nil
}

// devices turns --device HOST[:CONTAINER[:PERMS]] into devices for the
// spec and the device cgroup rules that let the container use them.
func devices(args []string) ([]specs.LinuxDevice, []specs.LinuxDeviceCgroup, error) {
	var devs []specs.LinuxDevice
	var rules []specs.LinuxDeviceCgroup
	for _, a := range args {
		parts := strings.Split(a, ":")
		host, ctr, perms := parts[0], parts[0], "rwm"
		switch len(parts) {
		case 1:
		case 2:
			if strings.Trim(parts[1], "rwm") == "" {
				perms = parts[1]
			} else {
				ctr = parts[1]
			}
		case 3:
			ctr, perms = parts[1], parts[2]
		default:
			return nil, nil, fmt.Errorf("invalid --device %q: want HOST[:CONTAINER[:PERMS]]", a)
		}
		if perms == "" || strings.Trim(perms, "rwm") != "" || !path.IsAbs(host) || !path.IsAbs(ctr) {
			return nil, nil, fmt.Errorf("invalid --device %q: want absolute paths and PERMS of r, w, m", a)
		}
		var st unix.Stat_t
		if err := unix.Stat(host, &st); err != nil {
			return nil, nil, fmt.Errorf("--device %s: %w", host, err)
		}
		typ := ""
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			typ = "c"
		case unix.S_IFBLK:
			typ = "b"
		default:
			return nil, nil, fmt.Errorf("--device %s: not a device node", host)
		}
		major, minor := int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		mode := os.FileMode(st.Mode & 0o777)
		uid, gid := st.Uid, st.Gid
		devs = append(devs, specs.LinuxDevice{Path: path.Clean(ctr), Type: typ, Major: major, Minor: minor, FileMode: &mode, UID: &uid, GID: &gid})
		rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: &major, Minor: &minor, Access: perms})
	}
	return devs, rules, nil
}

func defaultMounts(privileged bool) []specs.Mount {
	sysOpts := []string{"nosuid", "noexec", "nodev", "ro"}
	cgOpts := []string{"nosuid", "noexec", "nodev", "relatime", "ro"}
	if privileged {
		sysOpts = sysOpts[:3]
		cgOpts = cgOpts[:4]
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: sysOpts},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: cgOpts},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=67108864"}},
	}
}

// defaultDeviceRules is docker's device cgroup allowlist: deny all, then
// the standard nodes, ptys, and mknod of any char/block (creating is not
// opening).
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	i := func(n int64) *int64 { return &n }
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Access: "m"},
		{Allow: true, Type: "b", Access: "m"},
		{Allow: true, Type: "c", Major: i(1), Minor: i(3), Access: "rwm"},    // null
		{Allow: true, Type: "c", Major: i(1), Minor: i(5), Access: "rwm"},    // zero
		{Allow: true, Type: "c", Major: i(1), Minor: i(7), Access: "rwm"},    // full
		{Allow: true, Type: "c", Major: i(1), Minor: i(8), Access: "rwm"},    // random
		{Allow: true, Type: "c", Major: i(1), Minor: i(9), Access: "rwm"},    // urandom
		{Allow: true, Type: "c", Major: i(5), Minor: i(0), Access: "rwm"},    // tty
		{Allow: true, Type: "c", Major: i(5), Minor: i(1), Access: "rwm"},    // console
		{Allow: true, Type: "c", Major: i(5), Minor: i(2), Access: "rwm"},    // ptmx
		{Allow: true, Type: "c", Major: i(136), Access: "rwm"},               // pty slaves
		{Allow: true, Type: "c", Major: i(10), Minor: i(200), Access: "rwm"}, // tun
	}
}

// hostDevices lists the host's /dev nodes for --privileged.
func hostDevices() ([]specs.LinuxDevice, error) {
	var devs []specs.LinuxDevice
	err := filepath.WalkDir("/dev", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			switch p {
			case "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/fd":
				return filepath.SkipDir
			}
			return nil
		}
		if p == "/dev/console" || p == "/dev/ptmx" {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil {
			return nil
		}
		var typ string
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			typ = "c"
		case unix.S_IFBLK:
			typ = "b"
		default:
			return nil
		}
		mode := os.FileMode(st.Mode & 0o777)
		uid, gid := st.Uid, st.Gid
		devs = append(devs, specs.LinuxDevice{Path: p, Type: typ,
			Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)),
			FileMode: &mode, UID: &uid, GID: &gid})
		return nil
	})
	return devs, err
}

// rlimits returns the container's rlimits: docker's nofile default,
// clamped to what this host can grant (root may lack CAP_SYS_RESOURCE and
// then cannot raise a hard limit), then the --ulimit options.
func rlimits(ulimits []string) ([]specs.POSIXRlimit, error) {
	var cur unix.Rlimit
	nofile := uint64(1048576)
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &cur) == nil && cur.Max < nofile {
		nofile = cur.Max
	}
	out := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: nofile, Hard: nofile}}
	for _, s := range ulimits {
		typ, soft, hard, err := parseUlimit(s)
		if err != nil {
			return nil, err
		}
		var host unix.Rlimit
		if unix.Getrlimit(rlimitNums[typ], &host) == nil && hard > host.Max && !hasCap(unix.CAP_SYS_RESOURCE) {
			return nil, fmt.Errorf("--ulimit %s: hard limit %d exceeds this host's %d and berth lacks CAP_SYS_RESOURCE to raise it", s, hard, host.Max)
		}
		replaced := false
		for i := range out {
			if out[i].Type == typ {
				out[i] = specs.POSIXRlimit{Type: typ, Soft: soft, Hard: hard}
				replaced = true
			}
		}
		if !replaced {
			out = append(out, specs.POSIXRlimit{Type: typ, Soft: soft, Hard: hard})
		}
	}
	return out, nil
}

// hasCap reports whether berth's own effective set has capability c.
func hasCap(c int) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && n&(1<<uint(c)) != 0
		}
	}
	return false
}

// resources turns --memory, --memory-swap, --cpus, --cpu-shares and
// --pids-limit into cgroup settings, with docker's rules (swap defaults
// to twice the memory; -1 is unlimited).
func resources(r *specs.LinuxResources, o *Options) error {
	mem, err := parseSize(o.Memory)
	if err != nil {
		return fmt.Errorf("--memory: %w", err)
	}
	if mem > 0 && mem < 6<<20 {
		return fmt.Errorf("--memory %s: minimum memory limit is 6m", o.Memory)
	}
	var swap int64
	switch o.MemorySwap {
	case "":
		if mem > 0 {
			swap = 2 * mem
		}
	case "-1":
		swap = -1
	default:
		if swap, err = parseSize(o.MemorySwap); err != nil {
			return fmt.Errorf("--memory-swap: %w", err)
		}
		if mem == 0 {
			return fmt.Errorf("--memory-swap needs --memory")
		}
		if swap < mem {
			return fmt.Errorf("--memory-swap %s is smaller than --memory %s (it is memory plus swap)", o.MemorySwap, o.Memory)
		}
	}
	if mem > 0 {
		r.Memory = &specs.LinuxMemory{Limit: &mem}
		if swap != 0 {
			r.Memory.Swap = &swap
		}
	}
	if o.CPUs != "" || o.CPUShares != 0 {
		r.CPU = &specs.LinuxCPU{}
		if o.CPUs != "" {
			f, err := strconv.ParseFloat(o.CPUs, 64)
			if err != nil || f <= 0 {
				return fmt.Errorf("--cpus %q: want a positive number of CPUs such as 0.5", o.CPUs)
			}
			period := uint64(100000)
			quota := int64(f * float64(period))
			if quota < 1000 {
				return fmt.Errorf("--cpus %q: too small (minimum 0.01)", o.CPUs)
			}
			r.CPU.Period, r.CPU.Quota = &period, &quota
		}
		if o.CPUShares != 0 {
			if o.CPUShares < 2 {
				return fmt.Errorf("--cpu-shares %d: minimum is 2", o.CPUShares)
			}
			sh := uint64(o.CPUShares)
			r.CPU.Shares = &sh
		}
	}
	if o.CPUPeriod != 0 || o.CPUQuota != 0 {
		if o.CPUs != "" {
			return fmt.Errorf("--cpus and --cpu-period/--cpu-quota conflict: give one or the other")
		}
		if o.CPUPeriod != 0 && (o.CPUPeriod < 1000 || o.CPUPeriod > 1000000) {
			return fmt.Errorf("--cpu-period %d: must be 1000-1000000 microseconds", o.CPUPeriod)
		}
		if o.CPUQuota != 0 && o.CPUQuota != -1 && o.CPUQuota < 1000 {
			return fmt.Errorf("--cpu-quota %d: must be at least 1000 microseconds (-1: none)", o.CPUQuota)
		}
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		if o.CPUPeriod != 0 {
			p := uint64(o.CPUPeriod)
			r.CPU.Period = &p
		}
		if o.CPUQuota != 0 {
			q := o.CPUQuota
			r.CPU.Quota = &q
		}
	}
	if o.BlkioWeight != 0 {
		if o.BlkioWeight < 10 || o.BlkioWeight > 1000 {
			return fmt.Errorf("--blkio-weight %d: must be 10-1000", o.BlkioWeight)
		}
		w := o.BlkioWeight
		r.BlockIO = &specs.LinuxBlockIO{Weight: &w}
	}
	swappiness := o.MemorySwappiness != nil && *o.MemorySwappiness != -1
	if swappiness || o.OOMKillDisable {
		if swappiness && (*o.MemorySwappiness < 0 || *o.MemorySwappiness > 100) {
			return fmt.Errorf("--memory-swappiness %d: must be 0-100 (-1: the kernel's)", *o.MemorySwappiness)
		}
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		if swappiness {
			sw := uint64(*o.MemorySwappiness)
			r.Memory.Swappiness = &sw
		}
		if o.OOMKillDisable {
			t := true
			r.Memory.DisableOOMKiller = &t
		}
	}
	if o.CPUsetCPUs != "" || o.CPUsetMems != "" {
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		for flag, v := range map[string]string{"--cpuset-cpus": o.CPUsetCPUs, "--cpuset-mems": o.CPUsetMems} {
			if v != "" && !cpusetRe.MatchString(v) {
				return fmt.Errorf("%s %q: want a list like 0-2,4", flag, v)
			}
		}
		r.CPU.Cpus, r.CPU.Mems = o.CPUsetCPUs, o.CPUsetMems
	}
	if o.MemoryReservation != "" {
		res, err := parseSize(o.MemoryReservation)
		if err != nil {
			return fmt.Errorf("--memory-reservation: %w", err)
		}
		if mem > 0 && res > mem {
			return fmt.Errorf("--memory-reservation %s is more than --memory %s", o.MemoryReservation, o.Memory)
		}
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		r.Memory.Reservation = &res
	}
	if o.PidsLimit != 0 {
		l := o.PidsLimit
		if l < 0 {
			l = -1
		}
		r.Pids = &specs.LinuxPids{Limit: &l}
	}
	return nil
}

// ConfigEnv is the container's environment as docker's inspect shows it
// (Config.Env): the image's, then --env-file's and -e's. (A bare -e NAME
// took its value from the environment of the berth that started it.)
func (c *Container) ConfigEnv() []string {
	env := mergeEnv([]string{defaultPath}, imageConfig(c.ImageConfig).Env...)
	for _, f := range c.Opts.EnvFiles {
		if fe, err := readEnvFile(f); err == nil {
			env = mergeEnv(env, fe...)
		}
	}
	for _, kv := range c.Opts.Env {
		if strings.Contains(kv, "=") {
			env = mergeEnv(env, kv)
		}
	}
	return env
}
