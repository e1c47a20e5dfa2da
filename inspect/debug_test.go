package inspect

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/fixture"
	"github.com/berthproject/berth/store"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const sleeperGo = "package main\nimport \"time\"\nfunc main(){ time.Sleep(10*time.Minute) }\n"

func sleeper(t testing.TB) string {
	return build(t, "sleeper", func(dir string) *exec.Cmd {
		os.WriteFile(filepath.Join(dir, "main.go"), []byte(sleeperGo), 0o644)
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module sleeper\ngo 1.21\n"), 0o644)
		cmd := exec.Command(goBin(t), "build", "-o", "sleeper", ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		return cmd
	})
}

// ociRunner runs bundles with an OCI runtime CLI: berth's own
// (`berth runtime run`) when the tests got a berth binary that has it,
// else runc, so that the toolbox's spec is checked either way.
func ociRunner(t *testing.T) (Runner, string) {
	if b := os.Getenv("BERTH_BIN"); b != "" {
		if exec.Command(b, "runtime", "--help").Run() == nil {
			return func(id, dir string, stdio []*os.File, _ string) (int, error) {
				return runCLI(exec.Command(b, "runtime", "run", "--bundle", dir, id), stdio)
			}, b + " runtime"
		}
	}
	runc := fixture.RequireBinary(t, "runc", "runc")
	return func(id, dir string, stdio []*os.File, _ string) (int, error) {
		return runCLI(exec.Command(runc, "run", "--bundle", dir, id), stdio)
	}, runc
}

func runCLI(cmd *exec.Cmd, stdio []*os.File) (int, error) {
	if len(stdio) == 3 {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio[0], stdio[1], stdio[2]
	}
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), nil
	}
	return 0, err
}

// startTarget runs a shell-less container (a static sleeper and an
// /etc/passwd) detached with runc and returns its init's host pid.
func startTarget(t *testing.T) int {
	runc := fixture.RequireBinary(t, "runc", "runc")
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"etc", "proc", "dev", "sys", "tmp"} {
		os.MkdirAll(filepath.Join(rootfs, d), 0o755)
	}
	os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("root:x:0:0:root:/:/nonexistent\ntarget-user:x:4242:4242::/:/nonexistent\n"), 0o644)
	data, _ := os.ReadFile(sleeper(t))
	os.WriteFile(filepath.Join(rootfs, "sleeper"), data, 0o755)
	spec := DebugSpec("rootfs", 0, []string{"/sleeper"}, []string{"PATH=/"})
	spec.Root.Readonly = false
	spec.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace}}
	spec.Hostname = "target-host"
	cfg, _ := json.Marshal(spec)
	os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644)
	id := "inspect-target-" + randomID()
	null, _ := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	defer null.Close()
	cmd := exec.Command(runc, "run", "--detach", "--bundle", dir, "--pid-file", filepath.Join(dir, "pid"), id)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	if err := cmd.Run(); err != nil {
		t.Fatalf("runc run target: %v", err)
	}
	t.Cleanup(func() { exec.Command(runc, "delete", "--force", id).Run() })
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	json.Unmarshal(bytes.TrimSpace(b), &pid)
	return pid
}

func TestDebugShellLessContainer(t *testing.T) {
	fixture.RequireRoot(t)
	fixture.RequireBinary(t, "busybox", "busybox-static")
	run, with := ociRunner(t)
	t.Logf("toolbox runs with %s", with)
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tb, err := ToolboxImage(s, "")
	if err != nil {
		t.Fatal(err)
	}
	pid := startTarget(t)
	work := t.TempDir()
	before := mountsUnder(t, work)
	// A session whose berth was killed: its rootfs still mounted, no lock held.
	stale := filepath.Join(work, "berth-debug-stale", "rootfs")
	os.MkdirAll(stale, 0o755)
	if err := syscall.Mount("tmpfs", stale, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(stale, syscall.MNT_DETACH) })
	var forgot []string

	outf, _ := os.CreateTemp(t.TempDir(), "out")
	null, _ := os.Open(os.DevNull)
	defer null.Close()
	code, err := Debug(s, run, tb, DebugOptions{Pid: pid, WorkDir: work, Stdio: []*os.File{null, outf, outf},
		Cmd:    []string{"sh", "-c", "ps -o pid,comm; echo ---; cat /target/etc/passwd; echo ---; hostname; ls /"},
		Forget: func(id string) { forgot = append(forgot, id) }})
	if err != nil {
		t.Fatal(err)
	}
	out := readFile(t, outf.Name())
	t.Logf("toolbox output:\n%s", out)
	if code != 0 {
		t.Fatalf("toolbox exit %d", code)
	}
	parts := strings.Split(out, "---\n")
	if len(parts) != 3 {
		t.Fatalf("output %q", out)
	}
	if !strings.Contains(parts[0], "1 sleeper") && !strings.Contains(parts[0], "    1 sleeper") {
		t.Errorf("ps in the toolbox does not show the target's pid 1 sleeper:\n%s", parts[0])
	}
	if !strings.Contains(parts[1], "target-user:x:4242:4242") {
		t.Errorf("cat /target/etc/passwd gave %q", parts[1])
	}
	if !strings.HasPrefix(parts[2], "target-host\n") {
		t.Errorf("hostname in the toolbox %q, want the target's", parts[2])
	}
	// The target keeps running, and nothing of the toolbox stays.
	if err := syscall.Kill(pid, 0); err != nil {
		t.Errorf("target pid %d gone after debug: %v", pid, err)
	}
	if after := mountsUnder(t, work); after != before {
		t.Errorf("mounts left under %s: %q", work, after)
	}
	if strings.Join(forgot, " ") != "berth-debug-stale" {
		t.Errorf("stale sessions forgotten: %v", forgot)
	}
	if ents, _ := os.ReadDir(work); len(ents) != 0 {
		t.Errorf("staging left in %s: %v", work, ents)
	}
	time.Sleep(100 * time.Millisecond)
	if ps, _ := exec.Command("ps", "-eo", "args").Output(); bytes.Contains(ps, []byte("berth-debug-")) {
		t.Errorf("toolbox processes left:\n%s", ps)
	}
}

func mountsUnder(t *testing.T, dir string) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, dir) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
