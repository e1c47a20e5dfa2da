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
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/fixture"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestSameDecisionsAsRunc runs the probe child in a runc container with
// Docker's profile (runc compiles it with libseccomp) and in a berth-
// filtered child, and requires the same result for every probe.
func TestSameDecisionsAsRunc(t *testing.T) {
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
	if runtime.GOARCH == "amd64" {
		spec.Process.Env = append(spec.Process.Env, "BERTH_SECCOMP_X32=1")
	}
	spec.Linux.Seccomp = dockerProfile(t)
	id := fmt.Sprintf("berth-seccomp-test-%d", os.Getpid())
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
	if err := cmd.Run(); err != nil {
		t.Fatalf("runc run: %v; stdout %q stderr %q", err, stdout.String(), stderr.String())
	}
	under := map[string]string{}
	for _, l := range strings.Split(stdout.String(), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			under[k] = v
		}
	}
	if under["loaded"] != "ok" {
		t.Fatalf("probe did not run under runc: %q %q", stdout.String(), stderr.String())
	}
	berth := runChild(t, "docker", runtime.GOARCH == "amd64")
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
