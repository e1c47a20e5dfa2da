package engine

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/fixture"
)

// specFor builds a spec over a busybox rootfs with extra passwd/group
// lines, for options o.
func specFor(t *testing.T, img v1.Config, o Options) (*specs.Spec, error) {
	t.Helper()
	rootfs := t.TempDir()
	if err := fixture.Busybox(rootfs); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"+
		"app:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "etc/group"), []byte("root:x:0:\napp:x:1000:\nstaff:x:50:app\naudio:x:29:app,other\n"), 0o644)
	return buildSpec(specInput{ID: strings.Repeat("a", 64), Image: &v1.ConfigFile{Config: img}, Opts: &o,
		Rootfs: rootfs, Dir: t.TempDir(), Hostname: "aaaaaaaaaaaa"})
}

func TestSpecDefaultsAreDockers(t *testing.T) {
	s, err := specFor(t, v1.Config{Cmd: []string{"sh"}, Env: []string{"FOO=img"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Process.Capabilities.Bounding, []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER",
		"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
		"CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP"}) {
		t.Errorf("default caps = %v", s.Process.Capabilities.Bounding)
	}
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno || len(s.Linux.Seccomp.Syscalls) < 10 {
		t.Errorf("default seccomp profile missing: %+v", s.Linux.Seccomp)
	}
	for _, p := range []string{"/proc/kcore", "/proc/keys", "/sys/firmware"} {
		if !slices.Contains(s.Linux.MaskedPaths, p) {
			t.Errorf("%s not masked", p)
		}
	}
	if !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Error("/proc/sys not read-only")
	}
	var dests []string
	for _, m := range s.Mounts {
		dests = append(dests, m.Destination)
		if m.Destination == "/sys" && !slices.Contains(m.Options, "ro") {
			t.Error("/sys is not read-only")
		}
	}
	for _, d := range []string{"/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"} {
		if !slices.Contains(dests, d) {
			t.Errorf("no %s mount", d)
		}
	}
	var ns []specs.LinuxNamespaceType
	for _, n := range s.Linux.Namespaces {
		ns = append(ns, n.Type)
	}
	for _, n := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.MountNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.NetworkNamespace, specs.CgroupNamespace} {
		if !slices.Contains(ns, n) {
			t.Errorf("no %s namespace", n)
		}
	}
	var hard unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &hard)
	for _, r := range s.Process.Rlimits {
		if r.Type == "RLIMIT_NOFILE" && r.Hard > hard.Max {
			t.Errorf("nofile hard %d exceeds the host's %d", r.Hard, hard.Max)
		}
	}
	if !slices.Contains(s.Process.Env, "FOO=img") || !slices.Contains(s.Process.Env, "HOSTNAME=aaaaaaaaaaaa") || !slices.Contains(s.Process.Env, "HOME=/root") {
		t.Errorf("env = %v", s.Process.Env)
	}
	if s.Process.Cwd != "/" || !slices.Equal(s.Process.Args, []string{"sh"}) {
		t.Errorf("cwd %q args %v", s.Process.Cwd, s.Process.Args)
	}
}

func TestSpecOptions(t *testing.T) {
	ep := "/bin/echo"
	s, err := specFor(t, v1.Config{Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"x"}, User: "app", WorkingDir: "/srv"},
		Options{Entrypoint: &ep, Args: []string{"hi"}, Env: []string{"A=1"}, CapAdd: []string{"sys_admin"}, CapDrop: []string{"NET_RAW"},
			Memory: "64m", CPUs: "0.5", PidsLimit: 32, CPUShares: 512, Ulimits: []string{"nofile=100:200"},
			SecurityOpt: []string{"no-new-privileges"}, ReadOnly: true, Network: "host", Workdir: "/tmp"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Process.Args, []string{"/bin/echo", "hi"}) {
		t.Errorf("args = %v: --entrypoint must clear the image's cmd", s.Process.Args)
	}
	if s.Process.User.UID != 1000 || s.Process.User.GID != 1000 || !slices.Equal(s.Process.User.AdditionalGids, []uint32{50, 29}) {
		t.Errorf("user = %+v", s.Process.User)
	}
	if len(s.Process.Capabilities.Effective) != 0 {
		t.Errorf("non-root user has effective caps %v", s.Process.Capabilities.Effective)
	}
	if !slices.Contains(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN") || slices.Contains(s.Process.Capabilities.Bounding, "CAP_NET_RAW") {
		t.Errorf("cap-add/drop not applied: %v", s.Process.Capabilities.Bounding)
	}
	r := s.Linux.Resources
	if *r.Memory.Limit != 64<<20 || *r.Memory.Swap != 128<<20 || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 || *r.Pids.Limit != 32 || *r.CPU.Shares != 512 {
		t.Errorf("resources = %+v", r)
	}
	if !s.Process.NoNewPrivileges || !s.Root.Readonly || s.Process.Cwd != "/tmp" {
		t.Errorf("nnp %v ro %v cwd %s", s.Process.NoNewPrivileges, s.Root.Readonly, s.Process.Cwd)
	}
	for _, n := range s.Linux.Namespaces {
		if n.Type == specs.NetworkNamespace {
			t.Error("--network host must not make a network namespace")
		}
	}
	found := false
	for _, rl := range s.Process.Rlimits {
		if rl.Type == "RLIMIT_NOFILE" {
			found = rl.Soft == 100 && rl.Hard == 200
		}
	}
	if !found {
		t.Errorf("ulimit not applied: %+v", s.Process.Rlimits)
	}
	if s.Linux.Seccomp == nil {
		t.Error("seccomp dropped without being asked")
	}
}

func TestSpecPrivilegedAndUnconfined(t *testing.T) {
	s, err := specFor(t, v1.Config{Cmd: []string{"sh"}}, Options{Privileged: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.Seccomp != nil || len(s.Linux.MaskedPaths) != 0 || !slices.Contains(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN") {
		t.Errorf("privileged: seccomp %v masked %v caps %v", s.Linux.Seccomp != nil, s.Linux.MaskedPaths, s.Process.Capabilities.Bounding)
	}
	if len(s.Linux.Devices) == 0 {
		t.Error("privileged: no host devices")
	}
	s, err = specFor(t, v1.Config{Cmd: []string{"sh"}}, Options{SecurityOpt: []string{"seccomp=unconfined"}, CapDrop: []string{"ALL"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.Seccomp != nil || len(s.Process.Capabilities.Bounding) != 0 {
		t.Errorf("unconfined/drop ALL: seccomp %v caps %v", s.Linux.Seccomp != nil, s.Process.Capabilities.Bounding)
	}
	prof := filepath.Join(t.TempDir(), "p.json")
	os.WriteFile(prof, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644)
	s, err = specFor(t, v1.Config{Cmd: []string{"sh"}}, Options{SecurityOpt: []string{"seccomp=" + prof}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActAllow || s.Linux.Seccomp.Syscalls[0].Names[0] != "mkdir" {
		t.Errorf("custom profile not loaded: %+v", s.Linux.Seccomp)
	}
}

func TestSpecRejectsBadInput(t *testing.T) {
	for _, o := range []Options{
		{Ulimits: []string{"nofile=30000:30000"}}, // above the hard limit root cannot raise
		{Ulimits: []string{"bogus=1"}},
		{CapAdd: []string{"CAP_NOPE"}},
		{Memory: "1k"},
		{Memory: "64m", MemorySwap: "32m"},
		{CPUs: "-1"},
		{User: "nosuchuser"},
		{User: "app:nosuchgroup"},
		{SecurityOpt: []string{"seccomp=/nonexistent.json"}},
		{SecurityOpt: []string{"bogus"}},
		{Workdir: "relative"},
		{Network: "container:other"}, // no namespace to join
	} {
		var hard unix.Rlimit
		unix.Getrlimit(unix.RLIMIT_NOFILE, &hard)
		if len(o.Ulimits) == 1 && strings.HasPrefix(o.Ulimits[0], "nofile=30000") && (hard.Max >= 30000 || hasCap(unix.CAP_SYS_RESOURCE)) {
			continue
		}
		if _, err := specFor(t, v1.Config{Cmd: []string{"sh"}}, o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
	if _, err := specFor(t, v1.Config{}, Options{}); err == nil || !strings.Contains(err.Error(), "no command") {
		t.Errorf("image without a command: %v", err)
	}
}

func TestResolveUser(t *testing.T) {
	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nweb:x:33:33::/var/www:/bin/false\n"), 0o644)
	// /etc/group is a symlink pointing at an absolute path: it must be
	// resolved inside the rootfs, never on the host.
	os.MkdirAll(filepath.Join(rootfs, "data"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "data/group"), []byte("root:x:0:\nweb:x:33:\nwheel:x:10:web\n"), 0o644)
	os.Symlink("/data/group", filepath.Join(rootfs, "etc/group"))
	cases := []struct {
		spec      string
		uid, gid  uint32
		groups    []uint32
		home      string
		shouldErr bool
	}{
		{"", 0, 0, nil, "/root", false},
		{"web", 33, 33, []uint32{10}, "/var/www", false},
		{"web:root", 33, 0, nil, "/var/www", false},
		{"1234", 1234, 0, nil, "/", false},
		{"1234:wheel", 1234, 10, nil, "/", false},
		{"ghost", 0, 0, nil, "", true},
	}
	for _, c := range cases {
		u, err := resolveUser(rootfs, c.spec, nil)
		if c.shouldErr {
			if err == nil {
				t.Errorf("%q: resolved to %+v", c.spec, u)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.spec, err)
			continue
		}
		if u.UID != c.uid || u.GID != c.gid || !slices.Equal(u.Groups, c.groups) || u.Home != c.home {
			t.Errorf("%q: got %+v", c.spec, u)
		}
	}
	// A symlink to the host's /etc/shadow-like file stays inside.
	os.Remove(filepath.Join(rootfs, "etc/passwd"))
	os.Symlink("../../../../../../etc/passwd", filepath.Join(rootfs, "etc/passwd"))
	if _, err := resolveUser(rootfs, "root", nil); err == nil {
		t.Error("passwd symlink escaping the rootfs was followed to the host's file")
	}
}

func TestExecutableChecks(t *testing.T) {
	fixture.RequireRoot(t)
	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755)
	ls, err := os.ReadFile("/bin/ls") // dynamically linked on Debian
	if err != nil {
		t.Skip("no /bin/ls")
	}
	os.WriteFile(filepath.Join(rootfs, "bin/dyn"), ls, 0o755)
	os.WriteFile(filepath.Join(rootfs, "bin/noexec"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "bin/script"), []byte("#!/bin/nosh\n"), 0o755)
	env := []string{"PATH=/bin"}
	if _, err := resolveExecutable(rootfs, "missing", "/", env); exitFor(err) != 127 {
		t.Errorf("missing: %v", err)
	}
	if _, err := resolveExecutable(rootfs, "noexec", "/", env); exitFor(err) != 126 {
		t.Errorf("noexec: %v", err)
	}
	p, err := resolveExecutable(rootfs, "dyn", "/", env)
	if err != nil || p != "/bin/dyn" {
		t.Fatalf("dyn: %q %v", p, err)
	}
	err = checkInterpreter(rootfs, p)
	if exitFor(err) != 127 || !strings.Contains(err.Error(), "/lib64/ld-linux-x86-64.so.2") || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("dynamic binary without its interpreter: %v", err)
	}
	if err := checkInterpreter(rootfs, "/bin/script"); exitFor(err) != 127 || !strings.Contains(err.Error(), "/bin/nosh") {
		t.Errorf("script without its interpreter: %v", err)
	}
	// With the interpreter reachable through a symlink inside the rootfs, it passes.
	os.MkdirAll(filepath.Join(rootfs, "lib/x86_64-linux-gnu"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"), []byte("x"), 0o755)
	os.Symlink("lib", filepath.Join(rootfs, "lib64"))
	os.Symlink("x86_64-linux-gnu/ld-linux-x86-64.so.2", filepath.Join(rootfs, "lib/ld-linux-x86-64.so.2"))
	if err := checkInterpreter(rootfs, p); err != nil {
		t.Errorf("interpreter present via symlinks: %v", err)
	}
}

func TestBinfmtMatching(t *testing.T) {
	dir := t.TempDir()
	old := binfmtDir
	binfmtDir = dir
	t.Cleanup(func() { binfmtDir = old })
	if err := checkPlatform("linux/arm64"); err == nil || !strings.Contains(err.Error(), "linux/arm64") || !strings.Contains(err.Error(), "linux/amd64") {
		t.Errorf("no handler: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "status"), []byte("enabled\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "qemu-aarch64"), []byte("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\n"+
		"magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n"), 0o644)
	if err := checkPlatform("linux/arm64"); err != nil {
		t.Errorf("aarch64 handler registered: %v", err)
	}
	if err := checkPlatform("linux/riscv64"); err == nil {
		t.Error("riscv64 accepted with only an aarch64 handler")
	}
	os.WriteFile(filepath.Join(dir, "qemu-aarch64"), []byte("disabled\noffset 0\nmagic 7f454c460201010000000000000000000200b700\n"), 0o644)
	if err := checkPlatform("linux/arm64"); err == nil {
		t.Error("disabled handler counted")
	}
	if err := checkPlatform("linux/amd64"); err != nil {
		t.Errorf("host platform refused: %v", err)
	}
	if err := checkPlatform("windows/amd64"); err == nil {
		t.Error("windows image accepted")
	}
}

func TestOverlayManyLayers(t *testing.T) {
	fixture.RequireRoot(t)
	base := t.TempDir()
	// 120 layers with long paths: far past mount(2)'s one-page option limit.
	var lowers []string
	for i := 0; i < 120; i++ {
		d := filepath.Join(base, strings.Repeat("l", 40), "snapshot-"+strings.Repeat("0", 20)+string(rune('a'+i%26))+filepath.Base(t.Name())+"-"+itoa(i))
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "f"), []byte(itoa(i)), 0o644)
		os.WriteFile(filepath.Join(d, "only"+itoa(i)), nil, 0o644)
		lowers = append(lowers, d)
	}
	upper, work, target := filepath.Join(base, "u"), filepath.Join(base, "w"), filepath.Join(base, "m")
	for _, d := range []string{upper, work, target} {
		os.MkdirAll(d, 0o755)
	}
	if err := mountOverlay(lowers, upper, work, target, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmountAll(target) })
	b, err := os.ReadFile(filepath.Join(target, "f"))
	if err != nil || string(b) != "119" {
		t.Errorf("top layer must win: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(target, "only0")); err != nil {
		t.Errorf("lowest layer not visible: %v", err)
	}
	if err := unmountAll(target); err != nil || isMountpoint(target) {
		t.Errorf("unmount: %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestBundleRunsUnderRunc checks the generated bundle against runc: the
// reference runtime accepts it and the container sees docker's defaults.
// (berth's product path uses berth's runtime; this pins the spec itself.)
func TestBundleRunsUnderRunc(t *testing.T) {
	fixture.RequireRoot(t)
	runc := fixture.RequireBinary(t, "runc", "runc")
	e := testEngine(t)
	ref := busyboxImage(t)
	c, err := e.Create(Options{Image: ref, User: "nobody", Args: []string{"sh", "-c",
		"id -u; id -g; hostname; cat /etc/hostname; grep -c localhost /etc/hosts; grep CapBnd /proc/self/status; " +
			"grep -c ' /proc/keys ' /proc/self/mountinfo; touch /proc/sys/x 2>/dev/null || echo ro-proc-sys; cat /proc/1/cmdline | tr '\\0' ' '; echo; ip link 2>/dev/null | grep -c UP || true"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Remove(c.ID, RemoveOpts{Force: true}) })
	if _, err := e.prepare(c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.unmountRootfs(c.ID) })
	cmd := exec.Command(runc, "--root", t.TempDir(), "run", "--bundle", e.dir(c.ID), "t"+c.ID[:12])
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("runc run: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := []string{"65534", "65534", c.ShortID(), c.ShortID(), "2", "CapBnd:\t00000000a80425fb", "1", "ro-proc-sys"}
	if len(lines) < len(want) {
		t.Fatalf("output: %s", out)
	}
	for i, w := range want {
		if strings.TrimSpace(lines[i]) != w {
			t.Errorf("line %d = %q, want %q\n%s", i, lines[i], w, out)
		}
	}
	if !strings.HasPrefix(lines[8], "sh -c") {
		t.Errorf("pid 1 is %q, want the container's command", lines[8])
	}
}

// docker run's namespace, sysctl, /dev/shm, device, group and cpuset
// options, as the spec carries them.
func TestSpecNamespaceAndDeviceOptions(t *testing.T) {
	s, err := specFor(t, v1.Config{Cmd: []string{"sh"}}, Options{PidMode: "host", UtsMode: "host", CgroupnsMode: "host",
		Sysctls: []string{"net.ipv4.ip_forward=1"}, ShmSize: "16m", GroupAdd: []string{"staff", "7"},
		Devices: []string{"/dev/null:/dev/mynull:rw"}, CPUsetCPUs: "0-1", MemoryReservation: "32m"})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range s.Linux.Namespaces {
		if n.Type == specs.PIDNamespace || n.Type == specs.UTSNamespace || n.Type == specs.CgroupNamespace {
			t.Errorf("host mode kept a %s namespace", n.Type)
		}
	}
	if s.Hostname != "" {
		t.Errorf("--uts host sets hostname %q", s.Hostname)
	}
	if s.Linux.Sysctl["net.ipv4.ip_forward"] != "1" {
		t.Errorf("sysctls: %v", s.Linux.Sysctl)
	}
	for _, m := range s.Mounts {
		if m.Destination == "/dev/shm" && !slices.Contains(m.Options, "size=16777216") {
			t.Errorf("/dev/shm options %v", m.Options)
		}
	}
	if !slices.Equal(s.Process.User.AdditionalGids, []uint32{50, 7}) {
		t.Errorf("--group-add: %v", s.Process.User.AdditionalGids)
	}
	var dev *specs.LinuxDevice
	for i := range s.Linux.Devices {
		if s.Linux.Devices[i].Path == "/dev/mynull" {
			dev = &s.Linux.Devices[i]
		}
	}
	if dev == nil || dev.Type != "c" || dev.Major != 1 || dev.Minor != 3 {
		t.Fatalf("--device: %+v", s.Linux.Devices)
	}
	rule := s.Linux.Resources.Devices[len(s.Linux.Resources.Devices)-1]
	if !rule.Allow || rule.Type != "c" || *rule.Major != 1 || *rule.Minor != 3 || rule.Access != "rw" {
		t.Errorf("device rule %+v", rule)
	}
	if r := s.Linux.Resources; r.CPU.Cpus != "0-1" || *r.Memory.Reservation != 32<<20 {
		t.Errorf("resources %+v %+v", r.CPU, r.Memory)
	}

	// container:NAME joins the namespace given; one not given is an error.
	o := Options{PidMode: "container:other", IpcMode: "container:other"}
	joins := map[specs.LinuxNamespaceType]string{specs.PIDNamespace: "/proc/9/ns/pid", specs.IPCNamespace: "/proc/9/ns/ipc"}
	s = &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}}}}
	if err := applyNSModes(s, &o, joins); err != nil || s.Linux.Namespaces[0].Path != "/proc/9/ns/pid" || s.Linux.Namespaces[1].Path != "/proc/9/ns/ipc" {
		t.Errorf("container: modes: %v %+v", err, s.Linux.Namespaces)
	}
	if err := applyNSModes(s, &o, nil); err == nil {
		t.Error("a container: mode without its namespace was accepted")
	}

	for _, bad := range []Options{{PidMode: "bogus"}, {UtsMode: "container:x"}, {Sysctls: []string{"novalue"}},
		{ShmSize: "lots"}, {Devices: []string{"/etc/passwd"}}, {Devices: []string{"/dev/null:/dev/x:rwz"}},
		{CPUsetCPUs: "a-b"}, {Memory: "64m", MemoryReservation: "128m"}} {
		if err := validate(&bad); err == nil {
			t.Errorf("%+v was accepted", bad)
		}
	}
}

func TestResolvConfOptions(t *testing.T) {
	base := "nameserver 10.0.0.1\nsearch corp\noptions ndots:5\n"
	got := resolvConf(base, &Options{DNS: []string{"1.1.1.1", "9.9.9.9"}, DNSSearch: []string{"example.com"}})
	if got != "options ndots:5\nnameserver 1.1.1.1\nnameserver 9.9.9.9\nsearch example.com\n" {
		t.Errorf("resolv.conf %q", got)
	}
	if got := resolvConf(base, &Options{}); got != base {
		t.Errorf("without options %q", got)
	}
}

func TestSpecCgroupKnobs(t *testing.T) {
	sw := int64(10)
	s, err := specFor(t, v1.Config{Cmd: []string{"sh"}}, Options{CPUPeriod: 50000, CPUQuota: 25000, BlkioWeight: 300,
		MemorySwappiness: &sw, OOMKillDisable: true, OOMScoreAdj: 500})
	if err != nil {
		t.Fatal(err)
	}
	r := s.Linux.Resources
	if *r.CPU.Period != 50000 || *r.CPU.Quota != 25000 || *r.BlockIO.Weight != 300 || *r.Memory.Swappiness != 10 || !*r.Memory.DisableOOMKiller || *s.Process.OOMScoreAdj != 500 {
		t.Errorf("knobs: %+v %+v %+v oom %v", r.CPU, r.BlockIO, r.Memory, s.Process.OOMScoreAdj)
	}
	// Unset, they are the kernel's: no swappiness written, no score.
	s, _ = specFor(t, v1.Config{Cmd: []string{"sh"}}, Options{})
	if r := s.Linux.Resources; r.Memory != nil && r.Memory.Swappiness != nil || s.Process.OOMScoreAdj != nil || r.BlockIO != nil {
		t.Errorf("defaults: %+v oom %v", r, s.Process.OOMScoreAdj)
	}
	bad := int64(101)
	for _, o := range []Options{{CPUs: "1", CPUQuota: 5000}, {CPUPeriod: 10}, {CPUQuota: 10}, {BlkioWeight: 5},
		{MemorySwappiness: &bad}, {OOMScoreAdj: 2000}} {
		if err := validate(&o); err == nil {
			t.Errorf("%+v was accepted", o)
		}
	}
}

// --shm-size 0 is docker's default size, not a tmpfs without a limit.
func TestShmSizeZero(t *testing.T) {
	s, err := specFor(t, v1.Config{Cmd: []string{"sh"}}, Options{ShmSize: "0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range s.Mounts {
		if m.Destination == "/dev/shm" && !slices.Contains(m.Options, "size=67108864") {
			t.Errorf("/dev/shm options %v", m.Options)
		}
	}
}
