package cgroup

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/fixture"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The test binary re-executes itself as a memory hog: it waits for a line
// on stdin (sent once it is in the cgroup), then touches 512 MiB.
func TestMain(m *testing.M) {
	if os.Getenv("BERTH_CGROUP_TEST_CHILD") == "hog" {
		bufio.NewReader(os.Stdin).ReadString('\n')
		var keep [][]byte
		for range 512 {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println("survived", len(keep))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const testParent = "/berth-test-cgroup"

func i64(v int64) *int64 { return &v }

// newTestCgroup makes a cgroup under /berth-test and removes it (and the
// shared parent, when empty) at the end of the test.
func newTestCgroup(t *testing.T, r *specs.LinuxResources) *Cgroup {
	t.Helper()
	fixture.RequireRoot(t)
	name := fmt.Sprintf("%s/%s-%d", testParent, strings.ReplaceAll(t.Name(), "/", "_"), os.Getpid())
	c, err := New(name, r)
	if err != nil {
		t.Fatal(err)
	}
	dirs := c.Dirs()
	t.Cleanup(func() {
		killAll(c)
		if err := c.Destroy(); err != nil {
			t.Errorf("destroy: %v", err)
		}
		for _, d := range dirs {
			_ = os.Remove(filepath.Dir(d)) // the shared parent; fails while other tests use it
		}
	})
	return c
}

func killAll(c *Cgroup) {
	for range 50 {
		pids, _ := c.Pids()
		if len(pids) == 0 {
			return
		}
		for _, p := range pids {
			_ = unix.Kill(p, unix.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// member is a process started outside the cgroup, moved in, and only then
// told (by a line on stdin) to begin its work.
type member struct {
	cmd      *exec.Cmd
	go_      *os.File
	out, err *os.File // files, not pipes: children left behind must not hold up Wait
	waitc    chan error
}

func (m *member) stdout() string { b, _ := os.ReadFile(m.out.Name()); return string(b) }
func (m *member) stderr() string { b, _ := os.ReadFile(m.err.Name()); return string(b) }

func startMember(t *testing.T, c *Cgroup, cmd *exec.Cmd) *member {
	t.Helper()
	m := &member{cmd: cmd, waitc: make(chan error, 1)}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if m.out, err = os.Create(filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	}
	if m.err, err = os.Create(filepath.Join(dir, "err")); err != nil {
		t.Fatal(err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = r, m.out, m.err
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	m.go_ = w
	t.Cleanup(func() { w.Close(); m.out.Close(); m.err.Close(); _ = cmd.Process.Kill(); <-m.waitc })
	go func() { m.waitc <- cmd.Wait() }()
	if err := c.Apply(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *member) start() { m.go_.Write([]byte("go\n")) }

func (m *member) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-m.waitc:
		m.waitc <- err // for the cleanup
		return err
	case <-time.After(d):
		t.Fatalf("%v still running after %v; stdout %q stderr %q", m.cmd.Args, d, m.stdout(), m.stderr())
		return nil
	}
}

func busybox(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	bb := fixture.RequireBinary(t, fixture.BusyboxBinary, "busybox-static")
	return exec.Command(bb, "sh", "-c", "read x; "+script)
}

func TestMemoryLimitOOMKills(t *testing.T) {
	c := newTestCgroup(t, &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: i64(64 << 20), Swap: i64(64 << 20)},
		Pids:   &specs.LinuxPids{Limit: i64(32)},
	})
	if oom, err := c.OOMKilled(); err != nil || oom {
		t.Fatalf("fresh cgroup: OOMKilled = %v, %v", oom, err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "BERTH_CGROUP_TEST_CHILD=hog")
	m := startMember(t, c, cmd)
	pids, err := c.Pids()
	if err != nil || !slices.Contains(pids, cmd.Process.Pid) {
		t.Fatalf("Pids() = %v, %v; want it to hold %d", pids, err, cmd.Process.Pid)
	}
	m.start()
	err = m.wait(t, 30*time.Second)
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if err == nil || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("hog: %v (stdout %q): want SIGKILL by the OOM killer", err, m.stdout())
	}
	oom, err := c.OOMKilled()
	if err != nil || !oom {
		t.Fatalf("OOMKilled = %v, %v; want true", oom, err)
	}
}

func TestPidsLimitStopsForkBomb(t *testing.T) {
	c := newTestCgroup(t, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(32)}})
	m := startMember(t, c, busybox(t, `n=0; while [ $n -lt 100 ]; do sleep 60 & n=$((n+1)); done; echo done`))
	m.start()
	m.wait(t, 30*time.Second)
	if !strings.Contains(m.stderr(), "can't fork") {
		t.Errorf("fork bomb never failed to fork: stderr %q", m.stderr())
	}
	pids, err := c.Pids()
	if err != nil {
		t.Fatal(err)
	}
	// The shell may be gone; its sleeps stay, and never more than the limit.
	if len(pids) > 32 || len(pids) < 20 {
		t.Fatalf("cgroup holds %d processes, want at most the limit 32 (and most of it used)", len(pids))
	}
}

// cpuTicks is the user+system CPU time of pid in clock ticks.
func cpuTicks(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}

func TestFreezeThawStopsBusyLoop(t *testing.T) {
	c := newTestCgroup(t, &specs.LinuxResources{})
	m := startMember(t, c, busybox(t, `while :; do :; done`))
	m.start()
	pid := m.cmd.Process.Pid
	time.Sleep(200 * time.Millisecond)
	if err := c.Freeze(); err != nil {
		t.Fatal(err)
	}
	if f, err := c.Frozen(); err != nil || !f {
		t.Fatalf("Frozen = %v, %v after Freeze", f, err)
	}
	before := cpuTicks(t, pid)
	time.Sleep(500 * time.Millisecond)
	if after := cpuTicks(t, pid); after != before {
		t.Fatalf("frozen loop used CPU: %d -> %d ticks", before, after)
	}
	if err := c.Thaw(); err != nil {
		t.Fatal(err)
	}
	if f, err := c.Frozen(); err != nil || f {
		t.Fatalf("Frozen = %v, %v after Thaw", f, err)
	}
	before = cpuTicks(t, pid)
	time.Sleep(500 * time.Millisecond)
	if after := cpuTicks(t, pid); after <= before {
		t.Fatalf("thawed loop made no progress: %d -> %d ticks", before, after)
	}
}

func TestCPUQuotaHalfCore(t *testing.T) {
	c := newTestCgroup(t, &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(50000), Period: u64(100000)}})
	m := startMember(t, c, busybox(t, `while :; do :; done`))
	m.start()
	pid := m.cmd.Process.Pid
	time.Sleep(100 * time.Millisecond)
	before := cpuTicks(t, pid)
	start := time.Now()
	time.Sleep(2 * time.Second)
	used := float64(cpuTicks(t, pid)-before) / 100 / time.Since(start).Seconds()
	t.Logf("busy loop with quota 0.5 used %.2f of a core", used)
	if used > 0.75 || used <= 0 {
		t.Fatalf("busy loop used %.2f of a core; quota is 0.5", used)
	}
}

func u64(v uint64) *uint64 { return &v }

func TestDevicesDenyAllAllowNull(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []struct {
		name  string
		minor uint32
	}{{"null", 3}, {"zero", 5}} {
		if err := unix.Mknod(filepath.Join(dir, n.name), unix.S_IFCHR|0o666, int(unix.Mkdev(1, n.minor))); err != nil {
			t.Skipf("mknod: %v", err)
		}
	}
	c := newTestCgroup(t, &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rw"},
	}})
	m := startMember(t, c, busybox(t, fmt.Sprintf(`echo hi > %[1]s/null && echo null-ok; head -c 1 %[1]s/zero >/dev/null && echo zero-ok`, dir)))
	m.start()
	m.wait(t, 10*time.Second)
	if !strings.Contains(m.stdout(), "null-ok") {
		t.Errorf("allowed /dev/null-like node not writable: stdout %q stderr %q", m.stdout(), m.stderr())
	}
	if strings.Contains(m.stdout(), "zero-ok") || !strings.Contains(m.stderr(), "not permitted") {
		t.Errorf("denied /dev/zero-like node was readable: stdout %q stderr %q", m.stdout(), m.stderr())
	}
}

func TestDestroyRemovesEveryDir(t *testing.T) {
	fixture.RequireRoot(t)
	name := fmt.Sprintf("%s/destroy-%d", testParent, os.Getpid())
	c, err := New(name, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(64 << 20)}, Pids: &specs.LinuxPids{Limit: i64(32)}})
	if err != nil {
		t.Fatal(err)
	}
	dirs := c.Dirs()
	if len(dirs) < 2 {
		t.Fatalf("only %d hierarchies: %v", len(dirs), dirs)
	}
	for k, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	cmd := exec.Command("/bin/sh", "-c", "exit 0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = c.Apply(cmd.Process.Pid) // may race with the exit; the point is the dirs
	cmd.Wait()
	// Half destroyed (say berth died mid-way): Load still finds it.
	if err := os.Remove(dirs["devices"]); err != nil {
		t.Fatal(err)
	}
	l, err := Load(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Destroy(); err != nil {
		t.Fatal(err)
	}
	for k, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s: %s still there after Destroy (%v)", k, d, err)
		}
		_ = os.Remove(filepath.Dir(d))
	}
	if _, err := Load(name); err == nil {
		t.Error("Load of a destroyed cgroup succeeded")
	}
}

func TestBadResourcesLeaveNothing(t *testing.T) {
	fixture.RequireRoot(t)
	name := fmt.Sprintf("%s/bad-%d", testParent, os.Getpid())
	// A CPU this machine lacks: the kernel refuses it after the dirs exist.
	lim := i64(64 << 20)
	c, err := New(name, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: lim}, CPU: &specs.LinuxCPU{Cpus: "9999"}})
	if err == nil {
		c.Destroy()
		t.Fatal("cpuset.cpus 9999 accepted")
	}
	t.Log(err)
	if _, err := Load(name); err == nil {
		t.Fatal("a failed New left its cgroup behind")
	}
	// A cgroup that was there before a failed New stays.
	keep := newTestCgroup(t, nil)
	if _, err := New(keep.Path(), &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "9999"}}); err == nil {
		t.Fatal("cpuset.cpus 9999 accepted")
	}
	if _, err := Load(keep.Path()); err != nil {
		t.Fatalf("failed New removed a cgroup it did not make: %v", err)
	}
}
