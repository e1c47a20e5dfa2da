package cgroup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/fixture"
	"github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// v2Dir gives a test a directory in a cgroup v2 hierarchy: the unified one
// on a unified host, the (controller-less) hybrid mount on a v1 host. Only
// the core files exist there on hybrid hosts, which is what these tests use.
func v2Dir(t *testing.T) string {
	t.Helper()
	fixture.RequireRoot(t)
	root := "/sys/fs/cgroup"
	if !cgroups.IsCgroup2UnifiedMode() {
		if !cgroups.IsCgroup2HybridMode() {
			t.Skip("no cgroup v2 hierarchy mounted")
		}
		root = "/sys/fs/cgroup/unified"
	}
	parent := filepath.Join(root, "berth-test-v2")
	dir := filepath.Join(parent, fmt.Sprintf("%s-%d", t.Name(), os.Getpid()))
	t.Cleanup(func() { _ = os.Remove(dir); _ = os.Remove(parent) })
	return dir
}

func TestV2JoinFreezeDestroy(t *testing.T) {
	dir := v2Dir(t)
	c, err := openV2At(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killAll(c); _ = c.Destroy() })
	// Unified keys are written verbatim: cgroup.max.descendants is a core file.
	if err := c.Set(&specs.LinuxResources{Unified: map[string]string{"cgroup.max.descendants": "7"}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.max.descendants")); strings.TrimSpace(string(b)) != "7" {
		t.Fatalf("cgroup.max.descendants = %q, want 7", b)
	}
	// A process cloned straight into the cgroup (CLONE_INTO_CGROUP).
	f, err := c.OpenDir()
	if err != nil {
		t.Fatal(err)
	}
	born := exec.Command("/bin/sleep", "30")
	born.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	if err := born.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() { born.Process.Kill(); born.Wait() })
	m := startMember(t, c, busybox(t, `while :; do :; done`))
	m.start()
	pid := m.cmd.Process.Pid
	pids, err := c.Pids()
	if err != nil || !slices.Contains(pids, pid) || !slices.Contains(pids, born.Process.Pid) {
		t.Fatalf("Pids() = %v, %v; want %d and %d", pids, err, pid, born.Process.Pid)
	}
	time.Sleep(100 * time.Millisecond)
	if err := c.Freeze(); err != nil {
		t.Fatal(err)
	}
	if f, err := c.Frozen(); err != nil || !f {
		t.Fatalf("Frozen = %v, %v after Freeze", f, err)
	}
	before := cpuTicks(t, pid)
	time.Sleep(400 * time.Millisecond)
	if after := cpuTicks(t, pid); after != before {
		t.Fatalf("frozen loop used CPU: %d -> %d ticks", before, after)
	}
	if err := c.Thaw(); err != nil {
		t.Fatal(err)
	}
	before = cpuTicks(t, pid)
	time.Sleep(400 * time.Millisecond)
	if after := cpuTicks(t, pid); after <= before {
		t.Fatalf("thawed loop made no progress: %d -> %d", before, after)
	}
	if oom, err := c.OOMKilled(); err != nil || oom {
		t.Fatalf("OOMKilled = %v, %v", oom, err)
	}
	killAll(c)
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s still there after Destroy: %v", dir, err)
	}
}

func TestConvert(t *testing.T) {
	shares := uint64(1024)
	zero := int64(0)
	swap, limit := int64(32<<20), int64(64<<20)
	r := &specs.LinuxResources{
		CPU:     &specs.LinuxCPU{Shares: &shares, Quota: i64(50000), Period: u64(100000), Cpus: "0", Mems: "0"},
		Pids:    &specs.LinuxPids{Limit: &zero},
		Memory:  &specs.LinuxMemory{Limit: &limit},
		Devices: []specs.LinuxDeviceCgroup{{Allow: false}, {Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rw"}},
	}
	v1, err := convert(r, false)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := convert(r, true)
	if err != nil {
		t.Fatal(err)
	}
	if v1.CpuShares != 1024 || v1.CpuWeight != 0 {
		t.Errorf("v1: shares %d weight %d, want shares 1024", v1.CpuShares, v1.CpuWeight)
	}
	if v2.CpuShares != 0 || v2.CpuWeight != cgroups.ConvertCPUSharesToCgroupV2Value(1024) {
		t.Errorf("v2: shares %d weight %d, want the converted weight", v2.CpuShares, v2.CpuWeight)
	}
	if v1.CpuQuota != 50000 || v1.CpuPeriod != 100000 || v1.CpusetCpus != "0" || v1.Memory != limit {
		t.Errorf("v1: %+v", v1)
	}
	if v1.PidsLimit == nil || *v1.PidsLimit != -1 {
		t.Errorf("pids limit 0 should mean unlimited (-1), got %v", v1.PidsLimit)
	}
	if len(v1.Devices) != 2 || v1.Devices[0].Type != 'a' || v1.Devices[0].Permissions != "rwm" || v1.Devices[0].Allow ||
		v1.Devices[1].CgroupString() != "c 1:3 rw" || !v1.Devices[1].Allow {
		t.Errorf("devices: %+v %+v", v1.Devices[0], v1.Devices[1])
	}
	if res, _ := convert(nil, false); !res.SkipDevices {
		t.Error("nil resources must leave device rules alone")
	}
	if res, _ := convert(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{}}, false); !res.SkipDevices {
		t.Error("an empty device list must leave device rules alone, not deny all")
	}
	bad := []*specs.LinuxResources{
		{Unified: map[string]string{"memory.max": "1"}}, // v1 host
		{Memory: &specs.LinuxMemory{Limit: &limit, Swap: &swap}},
		{Devices: []specs.LinuxDeviceCgroup{{Type: "x"}}},
		{Devices: []specs.LinuxDeviceCgroup{{Type: "c", Access: "rwx"}}},
	}
	for i, b := range bad {
		if _, err := convert(b, false); err == nil {
			t.Errorf("bad[%d] accepted", i)
		} else {
			t.Logf("bad[%d]: %v", i, err)
		}
	}
}

func TestMapPath(t *testing.T) {
	for in, want := range map[string]string{
		"/berth/abc":                  "/berth/abc",
		"berth/abc":                   "berth/abc",
		"system.slice:berth:abc":      "/system.slice/berth-abc.scope",
		":berth:abc":                  "/system.slice/berth-abc.scope",
		"machine-a-b.slice:berth:abc": "/machine.slice/machine-a.slice/machine-a-b.slice/berth-abc.scope",
		"-.slice:berth:abc":           "/berth-abc.scope",
		"user.slice::x":               "/user.slice/x.scope",
	} {
		got, err := mapPath(in)
		if err != nil || got != want {
			t.Errorf("mapPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "/a/../../etc", "bad:berth:x", "a--b.slice:p:n", "system.slice:p:"} {
		if got, err := mapPath(in); err == nil {
			t.Errorf("mapPath(%q) = %q, want an error", in, got)
		}
	}
}

// The v2 device controller is an eBPF program attached to the cgroup; it
// needs no controller enabled, so it works on the hybrid mount too.
func TestV2DevicesEBPF(t *testing.T) {
	dir := v2Dir(t)
	nodes := t.TempDir()
	for _, n := range []struct {
		name  string
		minor uint32
	}{{"null", 3}, {"zero", 5}} {
		if err := unix.Mknod(filepath.Join(nodes, n.name), unix.S_IFCHR|0o666, int(unix.Mkdev(1, n.minor))); err != nil {
			t.Skipf("mknod: %v", err)
		}
	}
	c, err := openV2At(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killAll(c); _ = c.Destroy() })
	if err := c.Set(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rw"},
	}}); err != nil {
		t.Fatal(err)
	}
	m := startMember(t, c, busybox(t, fmt.Sprintf(`echo hi > %[1]s/null && echo null-ok; head -c 1 %[1]s/zero >/dev/null && echo zero-ok`, nodes)))
	m.start()
	m.wait(t, 10*time.Second)
	// Only the v2 cgroup is berth's here (v1 devices is the test's own,
	// allowing all), so the refusal is the eBPF program's.
	if !strings.Contains(m.stdout(), "null-ok") || strings.Contains(m.stdout(), "zero-ok") || !strings.Contains(m.stderr(), "not permitted") {
		t.Fatalf("eBPF device filter: stdout %q stderr %q; want null writable, zero refused", m.stdout(), m.stderr())
	}
}
