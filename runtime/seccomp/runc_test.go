package seccomp

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/fixture"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestSameDecisionsAsRunc runs the probe child in a runc container with a
// profile (runc compiles it with libseccomp) and in a berth-filtered child,
// and requires the same result for every probe: Docker's profile, and one
// that lists only a foreign architecture (libseccomp still covers the
// native one).
func TestSameDecisionsAsRunc(t *testing.T) {
	for _, name := range []string{"docker", "foreign"} {
		t.Run(name, func(t *testing.T) { sameAsRunc(t, name) })
	}
}

func sameAsRunc(t *testing.T, profile string) {
	fixture.RequireRoot(t)
	runc := fixture.RequireBinary(t, "runc", "runc")
	if f, err := elf.Open(os.Args[0]); err != nil {
		t.Skip(err)
	} else {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Skip("test binary is dynamically linked (build with CGO_ENABLED=0)")
			}
		}
		f.Close()
	}
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	if err := fixture.Busybox(rootfs); err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "probe"), self, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(runc, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v %s", err, out)
	}
	var spec specs.Spec
	cfgPath := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	spec.Process.Terminal = false
	spec.Process.Args = []string{"/probe", "-test.run=^$"}
	// "none": the probe loads nothing itself; runc has installed the filter.
	spec.Process.Env = append(spec.Process.Env, childEnv+"=none")
	// An uncovered ABI (x32 in the foreign profile) is where berth differs
	// on purpose: libseccomp kills the thread, which leaves a Go probe
	// hanging with its other threads; berth kills the process.
	x32 := runtime.GOARCH == "amd64" && profile == "docker"
	if x32 {
		spec.Process.Env = append(spec.Process.Env, "BERTH_SECCOMP_X32=1")
	}
	spec.Linux.Seccomp = childProfiles(t)[profile]
	// The probe under runc gets the capabilities the berth child has (this
	// test's), or capability checks would differ, not filters. Index = bit.
	names := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
		"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
		"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
		"CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
		"CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
		"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
		"CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ"}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var eff uint64
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			eff, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	var caps []string
	for bit, n := range names {
		if eff&(1<<bit) != 0 {
			caps = append(caps, n)
		}
	}
	spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	id := fmt.Sprintf("berth-seccomp-test-%s-%d", profile, os.Getpid())
	spec.Linux.CgroupsPath = "/berth-test-runc/" + id
	if b, err = json.Marshal(&spec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	t.Cleanup(func() {
		exec.Command(runc, "--root", state, "delete", "--force", id).Run()
		for _, h := range []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "unified"} {
			os.Remove(filepath.Join("/sys/fs/cgroup", h, "berth-test-runc"))
		}
	})
	cmd := exec.Command(runc, "--root", state, "run", "--bundle", bundle, id)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(60*time.Second, func() {
		exec.Command(runc, "--root", state, "kill", id, "KILL").Run()
	})
	runErr := cmd.Wait()
	timer.Stop()
	under := map[string]string{}
	for _, l := range strings.Split(stdout.String(), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			under[k] = v
		}
	}
	if under["loaded"] != "ok" {
		t.Fatalf("probe did not run under runc: %q %q", stdout.String(), stderr.String())
	}
	berth := runChild(t, profile, x32)
	// The run ends the same way too.
	if (runErr == nil) != (berth.status.Exited() && berth.status.ExitStatus() == 0) {
		t.Errorf("runc run: %v (stderr %q); berth child: %v", runErr, stderr.String(), berth.status)
	}
	for k, v := range under {
		if berth.probes[k] != v {
			t.Errorf("%s: runc+libseccomp gives %s, berth gives %s", k, v, berth.probes[k])
		}
	}
	for k := range berth.probes {
		if _, ok := under[k]; !ok {
			t.Errorf("%s: probed under berth only", k)
		}
	}
	t.Logf("%d probes agree with runc: %v", len(under), under)
}
