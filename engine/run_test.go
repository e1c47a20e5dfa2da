package engine

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/fixture"
)

var (
	secOnce sync.Once
	secArgs []string
)

// sec returns the run flags the CLI tests add: none once berth's runtime
// loads seccomp filters; until then seccomp=unconfined so the rest of the
// engine is still exercised (the spec's profile is checked by the unit
// tests and TestBundleRunsUnderRunc).
func sec(t *testing.T) []string {
	t.Helper()
	requireRuntime(t)
	ref := busyboxImage(t)
	secOnce.Do(func() {
		_, errs, code := berth(t, "", "run", "--rm", ref, "true")
		if code != 0 && strings.Contains(errs, "seccomp") && strings.Contains(errs, "not supported") {
			secArgs = []string{"--security-opt", "seccomp=unconfined"}
		}
	})
	if secArgs != nil {
		t.Log("berth's runtime has no seccomp yet: running unconfined")
	}
	return secArgs
}

// run is `berth run --rm [sec] args...`.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	a := append([]string{"run", "--rm"}, sec(t)...)
	return berth(t, "", append(a, args...)...)
}

// assertNoLeaks checks that nothing of container id remains: record,
// mounts, cgroups, runtime state.
func assertNoLeaks(t *testing.T, id string) {
	t.Helper()
	e := testEngine(t)
	if _, err := os.Stat(e.dir(id)); err == nil {
		t.Errorf("container dir of %s remains", id[:12])
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(b), id) {
		t.Errorf("a mount of %s remains", id[:12])
	}
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*/berth/" + id)
	if len(cgs) > 0 {
		t.Errorf("cgroups of %s remain: %v", id[:12], cgs)
	}
	if _, err := os.Stat(filepath.Join(e.Runtime.Root, id)); err == nil {
		t.Errorf("runtime state of %s remains", id[:12])
	}
}

func TestSeed000OSReleaseAndKernel(t *testing.T) {
	bb := busyboxImage(t)
	uname, _ := exec.Command("uname", "-r").Output()
	out, errs, code := run(t, bb, "sh", "-c", "cat /etc/os-release; uname -r")
	if code != 1 && code != 0 {
		t.Fatalf("busybox: exit %d: %s", code, errs)
	}
	if strings.Contains(out, "ID=") || !strings.Contains(errs+out, "os-release") {
		t.Errorf("busybox has no os-release, got %q / %q", out, errs)
	}
	if !strings.Contains(out, strings.TrimSpace(string(uname))) {
		t.Errorf("busybox uname -r = %q, host %q", out, uname)
	}
	deb := debianImage(t)
	out, errs, code = run(t, deb, "sh", "-c", "cat /etc/os-release; uname -r")
	if code != 0 {
		t.Fatalf("debian: exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "Debian GNU/Linux 12") || !strings.Contains(out, strings.TrimSpace(string(uname))) {
		t.Errorf("debian: %q", out)
	}
}

func TestSeed001ScratchDynamicAndStatic(t *testing.T) {
	sec(t)
	dyn, err := os.ReadFile("/bin/true") // dynamically linked on Debian
	if err != nil {
		t.Skip("no /bin/true")
	}
	ref := scratchImage(t, "scratch-dyn:test", "amd64", []tarFile{{Name: "true", Mode: 0o755, Body: dyn}},
		v1.Config{Entrypoint: []string{"/true"}})
	_, errs, code := run(t, ref)
	if code != 127 || !strings.Contains(errs, "/lib64/ld-linux-x86-64.so.2") || !strings.Contains(errs, "dynamically linked") {
		t.Errorf("dynamic binary in scratch: exit %d, %q", code, errs)
	}
	static := goBinary(t, "amd64", "package main\nimport \"fmt\"\nfunc main() { fmt.Println(\"static hello\") }\n")
	ref = scratchImage(t, "scratch-static:test", "amd64", []tarFile{{Name: "hello", Mode: 0o755, Body: static}},
		v1.Config{Entrypoint: []string{"/hello"}})
	out, errs, code := run(t, ref)
	if code != 0 || strings.TrimSpace(out) != "static hello" {
		t.Errorf("static binary in scratch: exit %d, %q %q", code, out, errs)
	}
}

func TestSeed003ForeignPlatform(t *testing.T) {
	sec(t)
	bin := goBinary(t, "arm64", "package main\nimport (\"fmt\"; \"runtime\")\nfunc main() { fmt.Println(\"hello from\", runtime.GOOS+\"/\"+runtime.GOARCH) }\n")
	ref := scratchImage(t, "arm64-hello:test", "arm64", []tarFile{{Name: "hello", Mode: 0o755, Body: bin}},
		v1.Config{Entrypoint: []string{"/hello"}})
	// No handler registered (an empty binfmt_misc view): refused, naming both.
	cmd := exec.Command(berthBin, append(append([]string{"--root", testRoot, "run", "--rm"}, sec(t)...), ref)...)
	cmd.Env = append(os.Environ(), "BERTH_BINFMT_MISC="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 125 || !strings.Contains(string(out), "linux/arm64") || !strings.Contains(string(out), "linux/amd64") {
		t.Errorf("arm64 image without a handler: %v %q", err, out)
	}
	// With qemu-user-static's handler registered, it runs.
	if _, err := os.Stat("/usr/bin/qemu-aarch64-static"); err != nil {
		t.Skip("qemu-user-static not installed")
	}
	restore := enableBinfmt(t, "qemu-aarch64")
	defer restore()
	stdout, errs, code := run(t, ref)
	if code != 0 || strings.TrimSpace(stdout) != "hello from linux/arm64" {
		t.Errorf("arm64 image with a handler: exit %d %q %q", code, stdout, errs)
	}
}

// enableBinfmt mounts binfmt_misc and enables handler if needed, and
// returns what puts the host back as it was.
func enableBinfmt(t *testing.T, handler string) func() {
	t.Helper()
	dir := "/proc/sys/fs/binfmt_misc"
	mounted := false
	if _, err := os.Stat(filepath.Join(dir, "status")); err != nil {
		if err := unix.Mount("binfmt_misc", dir, "binfmt_misc", 0, ""); err != nil {
			t.Skipf("cannot mount binfmt_misc: %v", err)
		}
		mounted = true
	}
	enabled := false
	if b, err := os.ReadFile(filepath.Join(dir, handler)); err != nil || !strings.HasPrefix(string(b), "enabled") {
		if out, err := exec.Command("update-binfmts", "--enable", handler).CombinedOutput(); err != nil {
			t.Skipf("update-binfmts --enable %s: %v %s", handler, err, out)
		}
		enabled = true
	}
	return func() {
		if enabled {
			exec.Command("update-binfmts", "--disable", handler).Run()
		}
		if mounted {
			unix.Unmount(dir, 0)
		}
	}
}

func TestDetachedLogsStopRemove(t *testing.T) {
	bb := busyboxImage(t)
	args := append(append([]string{"run", "-d"}, sec(t)...), "--name", "logger", "--log-opt", "max-size=2k", bb,
		"sh", "-c", "echo to-stderr >&2; i=0; while true; do echo line $i; i=$((i+1)); sleep 0.05; done")
	// (lines are ~70 bytes in json-file: 2k rotates after ~30 of them)
	id := strings.TrimSpace(berthOK(t, args...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	if len(id) != 64 {
		t.Fatalf("run -d printed %q", id)
	}
	if out := berthOK(t, "ps", "--format", "{{.Names}} {{.State}}"); !strings.Contains(out, "logger running") {
		t.Errorf("ps: %q", out)
	}
	// The detached container outlives the berth command that started it;
	// wait until it has written enough to rotate (machine load varies).
	e0 := testEngine(t)
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(e0.logPath(id) + ".1"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, errs, _ := berth(t, "", "logs", "logger")
	if !strings.Contains(out, "line 0\n") || !strings.Contains(errs, "to-stderr") {
		t.Errorf("logs: %q / %q", out[:min(len(out), 200)], errs)
	}
	e := testEngine(t)
	// Rotated at 2k, in docker's json-file format.
	if _, err := os.Stat(e.logPath(id) + ".1"); err != nil {
		t.Errorf("log not rotated: %v", err)
	}
	f, err := os.Open(e.logPath(id))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	sc.Scan()
	var en map[string]any
	if err := json.Unmarshal(sc.Bytes(), &en); err != nil || en["stream"] == nil || en["log"] == nil || en["time"] == nil {
		t.Errorf("log line %q: %v", sc.Text(), err)
	}
	f.Close()
	tail := berthOK(t, "logs", "--tail", "2", "-t", "logger")
	lines := strings.Split(strings.TrimSpace(tail), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "T") || !strings.Contains(lines[1], " line ") {
		t.Errorf("logs --tail 2 -t: %q", tail)
	}
	start := time.Now()
	berthOK(t, "stop", "-t", "1", "logger")
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("stop returned after %v: sh as pid 1 ignores SIGTERM, so the SIGKILL must come after -t 1", d)
	}
	state := berthOK(t, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.State.Running}}", "logger")
	if strings.TrimSpace(state) != "exited 137 false" {
		t.Errorf("after stop: %q", state)
	}
	if out := berthOK(t, "ps", "-a", "-q", "--no-trunc", "--filter", "name=logger"); strings.TrimSpace(out) != id {
		t.Errorf("ps -a -q: %q", out)
	}
	berthOK(t, "rm", "logger")
	assertNoLeaks(t, id)
}

func TestExitCodes(t *testing.T) {
	bb := busyboxImage(t)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{bb, "sh", "-c", "exit 3"}, 3, ""},
		{[]string{bb, "nosuchcmd"}, 127, "not found"},
		{[]string{bb, "/etc/passwd"}, 126, "permission denied"},
		// (--pull never: the default would try Docker Hub, offline here)
		{[]string{"--pull", "never", "nosuchimage:v9", "true"}, 125, "nosuchimage"},
		{[]string{"--pull", "never", "localhost:1/nosuch:v9", "true"}, 125, "image not known"},
		{[]string{"--memory", "lots", bb, "true"}, 125, "memory"},
		{[]string{"-e", "=x", bb, "true"}, 125, "invalid environment variable"},
		{[]string{"-u", "ghost", bb, "true"}, 125, "ghost"},
		{[]string{"--init", bb, "sh", "-c", "kill -TERM $$"}, 143, ""},
	} {
		_, errs, code := run(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.msg) {
			t.Errorf("run %v: exit %d (want %d), stderr %q", c.args, code, c.code, errs)
		}
	}
}

func TestUserAndEnv(t *testing.T) {
	bb := busyboxImage(t)
	envFile := filepath.Join(t.TempDir(), "env")
	os.WriteFile(envFile, []byte("# comment\nFROMFILE=yes\n"), 0o644)
	out, errs, code := run(t, "-u", "nobody", "-e", "A=1", "--env-file", envFile, "-w", "/tmp", "--hostname", "box",
		"--add-host", "db:10.0.0.2", bb, "sh", "-c", "id -u; id -g; echo $A $FROMFILE; pwd; hostname; grep db /etc/hosts; echo $HOME")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := "65534\n65534\n1 yes\n/tmp\nbox\n10.0.0.2\tdb\n/home\n"
	if out != want {
		t.Errorf("got %q, want %q", out, want)
	}
	// A working directory the image lacks is made.
	if out, errs, code := run(t, "-w", "/new/work/dir", bb, "pwd"); code != 0 || out != "/new/work/dir\n" {
		t.Errorf("-w of a missing directory: exit %d %q %q", code, out, errs)
	}
}

func TestVolumesAndBinds(t *testing.T) {
	bb := busyboxImage(t)
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "in"), []byte("from host\n"), 0o644)
	out, errs, code := run(t, "-v", host+":/data", bb, "sh", "-c", "cat /data/in; echo written > /data/out")
	if code != 0 || out != "from host\n" {
		t.Fatalf("bind: exit %d %q %q", code, out, errs)
	}
	if b, _ := os.ReadFile(filepath.Join(host, "out")); string(b) != "written\n" {
		t.Errorf("write through bind: %q", b)
	}
	// Commands in a bind mount are found (or not) by the exec itself.
	os.WriteFile(filepath.Join(host, "script"), []byte("#!/bin/sh\necho from bind\n"), 0o755)
	if out, _, code := run(t, "-v", host+":/data", bb, "/data/script"); code != 0 || out != "from bind\n" {
		t.Errorf("command in a bind mount: exit %d %q", code, out)
	}
	if _, _, code := run(t, "-v", host+":/data", bb, "/data/nosuch"); code != 127 {
		t.Errorf("missing command in a bind mount: exit %d, want 127", code)
	}
	if _, _, code := run(t, "-v", host+":/data", bb, "/data/in"); code != 126 {
		t.Errorf("non-executable command in a bind mount: exit %d, want 126", code)
	}
	if _, _, code := run(t, "-v", host+":/data:ro", bb, "touch", "/data/x"); code == 0 {
		t.Error("write to a :ro bind succeeded")
	}
	// A named volume is seeded from the image's files at its mount point.
	vol := "seedvol" + strconv.Itoa(os.Getpid())
	t.Cleanup(func() { berth(t, "", "volume", "rm", "-f", vol) })
	out, errs, code = run(t, "-v", vol+":/etc", bb, "sh", "-c", "grep -c root /etc/passwd; echo kept > /etc/mark")
	if code != 0 || strings.TrimSpace(out) != "1" {
		t.Fatalf("named volume not seeded: exit %d %q %q", code, out, errs)
	}
	out, errs, code = run(t, "-v", vol+":/mnt", bb, "cat", "/mnt/mark", "/mnt/passwd")
	if code != 0 || !strings.HasPrefix(out, "kept\nroot:") {
		t.Errorf("volume content not kept: exit %d %q %q", code, out, errs)
	}
	if ls := berthOK(t, "volume", "ls", "-q"); !strings.Contains(ls, vol) {
		t.Errorf("volume ls: %q", ls)
	}
	out, _, code = run(t, "--tmpfs", "/scratch", "--mount", "type=bind,source="+host+",target=/m,readonly", bb,
		"sh", "-c", "grep ' /scratch ' /proc/self/mountinfo | grep -c tmpfs; touch /m/y 2>/dev/null || echo ro")
	if code != 0 || out != "1\nro\n" {
		t.Errorf("--tmpfs/--mount: exit %d %q", code, out)
	}
}

func TestReadOnlyAndCaps(t *testing.T) {
	bb := busyboxImage(t)
	out, _, code := run(t, "--read-only", bb, "sh", "-c", "touch /x 2>/dev/null || echo ro; echo ok > /etc/hostname && echo etc-writable")
	if code != 0 || !strings.HasPrefix(out, "ro\n") {
		t.Errorf("--read-only: exit %d %q", code, out)
	}
	out, _, _ = run(t, "--cap-drop", "ALL", bb, "grep", "CapEff", "/proc/self/status")
	if !strings.Contains(out, "0000000000000000") {
		t.Errorf("--cap-drop ALL: %q", out)
	}
	out, _, _ = run(t, "--privileged", bb, "grep", "CapEff", "/proc/self/status")
	own, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(own), "\n") {
		if strings.HasPrefix(l, "CapEff:") && strings.TrimSpace(out) != l {
			t.Errorf("--privileged: %q, berth's own %q", out, l)
		}
	}
	out, _, _ = run(t, "--cap-drop", "chown", bb, "sh", "-c", "touch /f; chown 1 /f 2>/dev/null || echo denied")
	if !strings.Contains(out, "denied") {
		t.Errorf("--cap-drop chown: %q", out)
	}
}

// cgroupFile reads a file of the container's cgroup in a v1 controller.
func cgroupFile(id, ctrl, file string) string {
	b, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup", ctrl, "berth", id, file))
	return strings.TrimSpace(string(b))
}

func TestMemoryLimitOOMKilled(t *testing.T) {
	bb := busyboxImage(t)
	name := "oom" + strconv.Itoa(os.Getpid())
	a := append(append([]string{"run"}, sec(t)...), "--name", name, "--memory", "64m", bb,
		"dd", "if=/dev/zero", "of=/dev/null", "bs=300M", "count=1")
	_, errs, code := berth(t, "", a...)
	t.Cleanup(func() { berth(t, "", "rm", "-f", name) })
	if code != 137 {
		t.Errorf("memory hog: exit %d (want 137): %s", code, errs)
	}
	out := berthOK(t, "inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", name)
	if strings.TrimSpace(out) != "true 137" {
		t.Errorf("inspect: %q", out)
	}
}

func TestPidsLimitForkBomb(t *testing.T) {
	bb := busyboxImage(t)
	out, errs, code := run(t, "--pids-limit", "32", bb, "sh", "-c",
		"(for i in $(seq 100); do sleep 3 & done) 2>/dev/null; set -- /proc/[0-9]*; echo $#")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Fields(out)
	n, _ := strconv.Atoi(lines[len(lines)-1])
	if n == 0 || n > 32 {
		t.Errorf("processes in the container: %d (limit 32): %q", n, out)
	}
}

func TestCPUQuota(t *testing.T) {
	bb := busyboxImage(t)
	a := append(append([]string{"run", "-d"}, sec(t)...), "--cpus", "0.5", bb, "sh", "-c", "while :; do :; done")
	id := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	time.Sleep(300 * time.Millisecond)
	u0, _ := strconv.ParseInt(cgroupFile(id, "cpuacct", "cpuacct.usage"), 10, 64)
	t0 := time.Now()
	time.Sleep(3 * time.Second)
	u1, _ := strconv.ParseInt(cgroupFile(id, "cpuacct", "cpuacct.usage"), 10, 64)
	ratio := float64(u1-u0) / float64(time.Since(t0).Nanoseconds())
	t.Logf("busy loop under --cpus 0.5 used %.2f of a core", ratio)
	if ratio > 0.7 || ratio < 0.05 {
		t.Errorf("--cpus 0.5 busy loop used %.2f of a core", ratio)
	}
	if q := cgroupFile(id, "cpu", "cpu.cfs_quota_us"); q != "50000" {
		t.Errorf("cpu.cfs_quota_us = %q", q)
	}
}

func TestParallelRunsAndNameRace(t *testing.T) {
	bb := busyboxImage(t)
	s := sec(t)
	var wg sync.WaitGroup
	outs := make([]string, 8)
	codes := make([]int, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			a := append(append([]string{"run", "--rm"}, s...), bb, "sh", "-c", "echo ran "+strconv.Itoa(i))
			outs[i], _, codes[i] = berth(t, "", a...)
		}(i)
	}
	wg.Wait()
	for i := range outs {
		if codes[i] != 0 || strings.TrimSpace(outs[i]) != "ran "+strconv.Itoa(i) {
			t.Errorf("parallel run %d: exit %d %q", i, codes[i], outs[i])
		}
	}
	// Eight creates racing for one name: exactly one wins.
	name := "race" + strconv.Itoa(os.Getpid())
	var mu sync.Mutex
	won := 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, code := berth(t, "", "create", "--name", name, bb, "true"); code == 0 {
				mu.Lock()
				won++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	berth(t, "", "rm", "-f", name)
	if won != 1 {
		t.Errorf("%d creates got the name %s", won, name)
	}
	if out := berthOK(t, "ps", "-a", "-q"); strings.TrimSpace(out) != "" {
		// Other tests clean up after themselves: nothing should remain.
		t.Errorf("containers left after parallel runs: %q", out)
	}
}

func TestKilledBerthThenPrune(t *testing.T) {
	bb := busyboxImage(t)
	name := "killed" + strconv.Itoa(os.Getpid())
	a := append(append([]string{"--root", testRoot, "run"}, sec(t)...), "--name", name, bb, "sleep", "100")
	cmd := exec.Command(berthBin, a...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var id string
	for i := 0; i < 300; i++ {
		out, _, _ := berth(t, "", "ps", "-q", "--no-trunc", "--filter", "name="+name)
		if id = strings.TrimSpace(out); id != "" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if id == "" {
		cmd.Process.Kill()
		t.Fatal("container never showed as running")
	}
	cmd.Process.Signal(unix.SIGKILL)
	cmd.Wait()
	// The container outlives the berth that ran it in the foreground, and
	// says so: running, not pruned, until it is stopped.
	if st := berthOK(t, "inspect", "-f", "{{.State.Status}} {{.State.Error}}", name); strings.TrimSpace(st) != "running "+orphanNote {
		t.Errorf("after kill -9 of berth, state %q", st)
	}
	if out := berthOK(t, "container", "prune"); strings.Contains(out, id) {
		t.Errorf("prune removed the running container %s", id[:12])
	}
	berthOK(t, "stop", "-t", "1", name)
	if st := berthOK(t, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name); strings.TrimSpace(st) != "exited 255" {
		t.Errorf("after stop, state %q", st)
	}
	// With its supervisor dead, stop tore it down itself.
	if isMountpoint(filepath.Join(testEngine(t).dir(id), "rootfs")) {
		t.Error("stop left the rootfs of a container whose supervisor died mounted")
	}
	out := berthOK(t, "container", "prune")
	if !strings.Contains(out, id) {
		t.Errorf("prune did not remove %s: %q", id[:12], out)
	}
	assertNoLeaks(t, id)
	// The orphaned sleep is gone too.
	ps, _ := exec.Command("pgrep", "-f", "sleep 100").Output()
	for _, p := range strings.Fields(string(ps)) {
		b, _ := os.ReadFile("/proc/" + p + "/cgroup")
		if strings.Contains(string(b), id) {
			t.Errorf("container process %s survived prune", p)
		}
	}
}

func TestCpCommitExportDiff(t *testing.T) {
	bb := busyboxImage(t)
	name := "files" + strconv.Itoa(os.Getpid())
	berthOK(t, append(append([]string{"create"}, sec(t)...), "--name", name, bb, "sh", "-c", "cat /opt/greeting; rm /etc/group")...)
	t.Cleanup(func() { berth(t, "", "rm", "-f", name) })
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "opt"), 0o755)
	os.WriteFile(filepath.Join(dir, "opt", "greeting"), []byte("hello cp\n"), 0o644)
	// A directory to a path that does not exist yet: it becomes that path.
	berthOK(t, "cp", filepath.Join(dir, "opt"), name+":/opt")
	out, errs, code := berth(t, "", "start", "-a", name)
	if code != 0 || out != "hello cp\n" {
		t.Fatalf("start -a after cp in: exit %d %q %q", code, out, errs)
	}
	berthOK(t, "cp", name+":/opt/greeting", filepath.Join(dir, "back"))
	if b, _ := os.ReadFile(filepath.Join(dir, "back")); string(b) != "hello cp\n" {
		t.Errorf("cp out: %q", b)
	}
	berthOK(t, "cp", name+":/etc", dir)
	// A path in a volume is copied from and to the volume.
	vname := "cpvol" + strconv.Itoa(os.Getpid())
	vc := "cpv" + strconv.Itoa(os.Getpid())
	berthOK(t, append(append([]string{"create"}, sec(t)...), "--name", vc, "-v", vname+":/vol", bb, "cat", "/vol/in")...)
	t.Cleanup(func() { berth(t, "", "rm", "-f", vc); berth(t, "", "volume", "rm", "-f", vname) })
	berthOK(t, "cp", filepath.Join(dir, "opt", "greeting"), vc+":/vol/in")
	if out, errs, code := berth(t, "", "start", "-a", vc); code != 0 || out != "hello cp\n" {
		t.Errorf("cp into a volume: exit %d %q %q", code, out, errs)
	}
	berthOK(t, "cp", vc+":/vol/in", filepath.Join(dir, "fromvol"))
	if b, _ := os.ReadFile(filepath.Join(dir, "fromvol")); string(b) != "hello cp\n" {
		t.Errorf("cp out of a volume: %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "etc", "passwd")); err != nil {
		t.Errorf("cp of a directory: %v", err)
	}
	diff := berthOK(t, "diff", name)
	if !strings.Contains(diff, "A /opt/greeting") || !strings.Contains(diff, "D /etc/group") || strings.Contains(diff, "/etc/hosts") {
		t.Errorf("diff: %q", diff)
	}
	tag := "committed" + strconv.Itoa(os.Getpid()) + ":v1"
	berthOK(t, "commit", "-c", `CMD ["cat", "/opt/greeting"]`, name, tag)
	out, errs, code = run(t, tag)
	if code != 0 || out != "hello cp\n" {
		t.Errorf("committed image: exit %d %q %q", code, out, errs)
	}
	if _, _, code := run(t, tag, "cat", "/etc/group"); code == 0 {
		t.Error("deletion not kept by commit")
	}
	exp := filepath.Join(dir, "export.tar")
	berthOK(t, "export", "-o", exp, name)
	list, err := exec.Command("tar", "-tf", exp).Output()
	if err != nil || !strings.Contains(string(list), "opt/greeting") || !strings.Contains(string(list), "bin/busybox") || strings.Contains(string(list), "etc/group") {
		t.Errorf("export: %v %q", err, list[:min(len(list), 300)])
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), name) {
		t.Error("a mount remains after cp/export of a stopped container")
	}
}

func TestExecInRunningContainer(t *testing.T) {
	bb := busyboxImage(t)
	a := append(append([]string{"run", "-d"}, sec(t)...), "-e", "BASE=1", "-v", "/data", bb, "sleep", "30")
	id := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	out := berthOK(t, "exec", "-e", "X=2", "-u", "nobody", "-w", "/tmp", id, "sh", "-c", "echo $BASE $X; id -u; pwd")
	if out != "1 2\n65534\n/tmp\n" {
		t.Errorf("exec: %q", out)
	}
	if _, _, code := berth(t, "", "exec", id, "sh", "-c", "exit 9"); code != 9 {
		t.Errorf("exec exit code %d", code)
	}
	// A command in a volume is found by the exec itself.
	berthOK(t, "cp", "/bin/busybox", id+":/data/busybox")
	if out, errs, code := berth(t, "", "exec", id, "/data/busybox", "echo", "from volume"); code != 0 || out != "from volume\n" {
		t.Errorf("exec of a command in a volume: exit %d %q %q", code, out, errs)
	}
	if _, _, code := berth(t, "", "exec", id, "nosuch"); code != 127 {
		t.Errorf("exec of a missing command: %d", code)
	}
	if _, stderr, code := berth(t, "", "exec", "-e", "=x", id, "true"); code != 125 || !strings.Contains(stderr, "invalid environment variable") {
		t.Errorf("exec -e =x: %d %q", code, stderr)
	}
	ef := filepath.Join(t.TempDir(), "env")
	os.WriteFile(ef, []byte("# a comment\nFROM_FILE=yes\n"), 0o644)
	if out, _, code := berth(t, "", "exec", "--env-file", ef, id, "sh", "-c", "echo $FROM_FILE"); code != 0 || out != "yes\n" {
		t.Errorf("exec --env-file: %d %q", code, out)
	}
	if out := berthOK(t, "inspect", "--type", "image", "-f", "{{.Os}}", bb); strings.TrimSpace(out) != "linux" {
		t.Errorf("inspect --type image: %q", out)
	}
	if _, stderr, code := berth(t, "", "inspect", "--type", "container", bb); code != 125 || !strings.Contains(stderr, "no such container") {
		t.Errorf("inspect --type container of an image: %d %q", code, stderr)
	}
	top := berthOK(t, "top", id)
	if !strings.Contains(top, "sleep 30") {
		t.Errorf("top: %q", top)
	}
	// Options after the container go to ps.
	if top := berthOK(t, "top", id, "-o", "pid,comm"); !strings.HasPrefix(strings.TrimSpace(top), "PID COMMAND") || !strings.Contains(top, "sleep") {
		t.Errorf("top with ps options: %q", top)
	}
	berthOK(t, "rm", "-f", id)
	assertNoLeaks(t, id)
}

func TestInitReapsAndForwards(t *testing.T) {
	bb := busyboxImage(t)
	out, errs, code := run(t, "--init", bb, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; (sleep 60 &) ; exit 4")
	if code != 4 || !strings.HasPrefix(out, "/dev/init container-init") {
		t.Errorf("--init: exit %d %q %q", code, out, errs)
	}
	a := append(append([]string{"run", "-d"}, sec(t)...), "--init", bb, "sleep", "60")
	id := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	// Until the init has set up its signal handling, a SIGTERM would be
	// lost (or end it): wait for the child it starts after that.
	for i := 0; i < 200; i++ {
		out, _, _ := berth(t, "", "top", id, "-o", "pid,args")
		if strings.Contains(out, "\n") && strings.Count(out, "sleep 60") >= 2 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	start := time.Now()
	berthOK(t, "stop", "-t", "20", id)
	// sleep as a plain pid 1 would ignore SIGTERM; under the init it gets it.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("stop took %v: SIGTERM not forwarded by the init", d)
	}
	if st := berthOK(t, "inspect", "-f", "{{.State.ExitCode}}", id); strings.TrimSpace(st) != "143" {
		t.Errorf("exit code after SIGTERM: %q", st)
	}
}

func TestImageInUseRefusedByRmi(t *testing.T) {
	fixture.RequireRoot(t)
	tag := scratchImage(t, "inuse"+strconv.Itoa(os.Getpid())+":v1", "amd64",
		[]tarFile{{Name: "marker", Mode: 0o644, Body: []byte("x")}}, v1.Config{Cmd: []string{"/marker"}})
	name := "user" + strconv.Itoa(os.Getpid())
	berthOK(t, "create", "--name", name, tag)
	t.Cleanup(func() { berth(t, "", "rm", "-f", name) })
	if _, errs, code := berth(t, "", "rmi", tag); code == 0 || !strings.Contains(errs, "in use") {
		t.Errorf("rmi of an image a container uses: exit %d %q", code, errs)
	}
	berthOK(t, "rm", name)
	berthOK(t, "rmi", tag)
}

func TestKilledMonitorKeepsRunning(t *testing.T) {
	bb := busyboxImage(t)
	a := append(append([]string{"run", "-d"}, sec(t)...), bb, "sleep", "60")
	id := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	e := testEngine(t)
	c, err := e.loadID(id)
	if err != nil {
		t.Fatal(err)
	}
	mon := c.State.MonitorPid
	if mon == 0 || mon == os.Getpid() {
		t.Fatalf("no monitor recorded: %+v", c.State)
	}
	unix.Kill(mon, unix.SIGKILL)
	for i := 0; i < 100 && procStart(mon) != 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if st := berthOK(t, "ps", "-a", "--filter", "id="+id, "--format", "{{.State}}"); strings.TrimSpace(st) != "running" {
		t.Errorf("after the monitor was killed, the running container shows %q", st)
	}
	if _, stderr, code := berth(t, "", "rm", id); code == 0 || !strings.Contains(stderr, "running") {
		t.Errorf("rm of the running container: exit %d, %q", code, stderr)
	}
	// Once its init is gone too, it is exited, its status unknown.
	unix.Kill(c.State.Pid, unix.SIGKILL)
	for i := 0; i < 200 && procStart(c.State.Pid) != 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if st := berthOK(t, "ps", "-a", "--filter", "id="+id, "--format", "{{.State}} {{.Status}}"); !strings.HasPrefix(strings.TrimSpace(st), "exited Exited (255)") {
		t.Errorf("after its init was killed too: %q", st)
	}
	berthOK(t, "rm", id)
	assertNoLeaks(t, id)
}

func TestNetworkNoneAndHost(t *testing.T) {
	bb := busyboxImage(t)
	out, errs, code := run(t, "--network", "none", bb, "sh", "-c", "ls /sys/class/net; ip -o link show lo; cat /proc/sys/net/ipv4/ip_unprivileged_port_start")
	if code != 0 || !strings.HasPrefix(out, "lo\n") || !strings.Contains(out, "UP") || !strings.HasSuffix(out, "\n0\n") {
		t.Errorf("--network none: want lo only, up: exit %d %q %q", code, out, errs)
	}
	// Other work on the host adds and removes veths meanwhile: the stable
	// interfaces (there before and after) must all be seen.
	before, _ := os.ReadDir("/sys/class/net")
	out, _, code = run(t, "--network", "host", bb, "ls", "/sys/class/net")
	after, _ := os.ReadDir("/sys/class/net")
	seen := map[string]bool{}
	for _, n := range strings.Fields(out) {
		seen[n] = true
	}
	now := map[string]bool{}
	for _, d := range after {
		now[d.Name()] = true
	}
	for _, d := range before {
		if now[d.Name()] && !seen[d.Name()] {
			t.Errorf("--network host: %s missing from %q", d.Name(), out)
		}
	}
	if code != 0 || len(seen) < 2 {
		t.Errorf("--network host: exit %d %q", code, out)
	}
}

func TestLogsFollowEndsWithContainer(t *testing.T) {
	bb := busyboxImage(t)
	// (cat is not a shell builtin: its SigIgn is what the container got)
	a := append(append([]string{"run", "-d"}, sec(t)...), bb, "sh", "-c", "echo first; sleep 1; grep SigIgn /proc/self/status | cat; echo last")
	id := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	out := berthOK(t, "logs", "-f", id)
	// A detached container must not inherit ignored signals from its monitor.
	if out != "first\nSigIgn:\t0000000000000000\nlast\n" {
		t.Errorf("logs -f: %q", out)
	}
	if code := strings.TrimSpace(berthOK(t, "wait", id)); code != "0" {
		t.Errorf("wait: %q", code)
	}
}

func TestImageVolumesAreAnonymous(t *testing.T) {
	fixture.RequireRoot(t)
	s := sec(t)
	ref := writeImage(t, "withvol:test", func() (v1.Image, error) {
		p := filepath.Join(testDir, "busybox.tar")
		if _, err := os.Stat(p); err != nil {
			return nil, err
		}
		return imageFromTar(p, "amd64", v1.Config{Cmd: []string{"sh"}, Volumes: map[string]struct{}{"/etc": {}}})
	})
	before := berthOK(t, "volume", "ls", "-q")
	name := "anon" + strconv.Itoa(os.Getpid())
	out, errs, code := berth(t, "", append(append([]string{"run"}, s...), "--name", name, ref, "sh", "-c", "grep -c root /etc/passwd")...)
	if code != 0 || strings.TrimSpace(out) != "1" {
		t.Fatalf("image VOLUME not seeded: exit %d %q %q", code, out, errs)
	}
	mid := berthOK(t, "volume", "ls", "-q")
	if len(strings.Fields(mid)) != len(strings.Fields(before))+1 {
		t.Errorf("no anonymous volume made: before %q after %q", before, mid)
	}
	berthOK(t, "rm", "-v", name)
	if after := berthOK(t, "volume", "ls", "-q"); after != before {
		t.Errorf("rm -v left the anonymous volume: before %q after %q", before, after)
	}
	// --rm removes them too.
	run(t, ref, "true")
	if after := berthOK(t, "volume", "ls", "-q"); after != before {
		t.Errorf("--rm left the anonymous volume: before %q after %q", before, after)
	}
}

func TestReaderGoneDoesNotOrphan(t *testing.T) {
	bb := busyboxImage(t)
	name := "pipe" + strconv.Itoa(os.Getpid())
	a := append(append([]string{"--root", testRoot, "run"}, sec(t)...), "--name", name, bb,
		"sh", "-c", "for i in $(seq 2000); do echo $i; done; sleep 0.5; echo tail")
	cmd := exec.Command(berthBin, a...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { berth(t, "", "rm", "-f", name) })
	line, _ := bufio.NewReader(out).ReadString('\n')
	out.Close() // the reader goes away, like `| head -1`
	cmd.Wait()
	if line != "1\n" {
		t.Errorf("first line %q", line)
	}
	if st := berthOK(t, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name); strings.TrimSpace(st) != "exited 0" {
		t.Errorf("container after its reader left: %q", st)
	}
	if logs := berthOK(t, "logs", "--tail", "1", name); logs != "tail\n" {
		t.Errorf("log kept after the reader left: %q", logs)
	}
}

func TestSecurityOptsAndStopSignal(t *testing.T) {
	bb := busyboxImage(t)
	s := sec(t)
	out, _, code := run(t, "--security-opt", "no-new-privileges", bb, "grep", "NoNewPrivs", "/proc/self/status")
	if code != 0 || !strings.Contains(out, "1") {
		t.Errorf("no-new-privileges: exit %d %q", code, out)
	}
	if s == nil {
		// The default profile is on: unshare(CLONE_NEWUSER) and keyctl are refused.
		out, _, _ = berth(t, "", "run", "--rm", bb, "sh", "-c", "grep Seccomp: /proc/self/status; unshare -U true 2>/dev/null || echo denied")
		if !strings.Contains(out, "2") || !strings.Contains(out, "denied") {
			t.Errorf("default seccomp profile: %q", out)
		}
		prof := filepath.Join(t.TempDir(), "nomkdir.json")
		os.WriteFile(prof, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644)
		out, _, _ = berth(t, "", "run", "--rm", "--security-opt", "seccomp="+prof, bb, "sh", "-c", "mkdir /x 2>/dev/null || echo refused; touch /y && echo touched")
		if out != "refused\ntouched\n" {
			t.Errorf("custom seccomp profile: %q", out)
		}
	} else {
		t.Log("seccomp checks skipped: berth's runtime does not load filters yet")
	}
	// --stop-signal: stop sends it (a trap here), not SIGTERM.
	a := append(append([]string{"run", "-d"}, s...), "--stop-signal", "USR1", bb, "sh", "-c",
		"trap 'echo got-usr1; exit 7' USR1; trap 'echo got-term; exit 8' TERM; echo ready; while true; do sleep 0.1; done")
	id := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	for i := 0; i < 200; i++ { // until the shell has set its traps
		if out, _, _ := berth(t, "", "logs", id); strings.Contains(out, "ready") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	berthOK(t, "stop", "-t", "5", id)
	if st := strings.TrimSpace(berthOK(t, "inspect", "-f", "{{.State.ExitCode}}", id)); st != "7" {
		t.Errorf("after stop with --stop-signal USR1: exit %s, logs %q", st, berthOK(t, "logs", id))
	}
}

func TestNetworkContainerMode(t *testing.T) {
	bb := busyboxImage(t)
	a := append(append([]string{"run", "-d"}, sec(t)...), bb, "sleep", "30")
	id := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	own := berthOK(t, "exec", id, "readlink", "/proc/self/ns/net")
	out, errs, code := run(t, "--network", "container:"+id, bb, "readlink", "/proc/self/ns/net")
	if code != 0 || out != own {
		t.Errorf("--network container: netns %q, the other's %q (exit %d %q)", out, own, code, errs)
	}
	if _, errs, code := run(t, "--network", "none", "-p", "80", bb, "true"); code != 125 || !strings.Contains(errs, "bridge") {
		t.Errorf("-p without a bridge network: exit %d %q", code, errs)
	}
}

// A store of its own keeps its runtime state in a directory of its own
// under /run/berth, which goes with the store's last container.
func TestRuntimeStateGoesWithLastContainer(t *testing.T) {
	requireRuntime(t)
	busyboxImage(t) // makes testDir/busybox.tar
	root := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(berthBin, append([]string{"--root", root}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("berth %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("import", "-q", filepath.Join(testDir, "busybox.tar"), "bb")
	state := runtimeRoot(root)
	id := run("run", "-d", "--network", "none", "bb", "sleep", "60")
	if _, err := os.Stat(filepath.Join(state, id)); err != nil {
		t.Fatalf("no runtime state for a running container: %v", err)
	}
	run("run", "--rm", "--network", "none", "bb", "true")
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("runtime state dir gone while a container runs: %v", err)
	}
	run("rm", "-f", id)
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left after the last container: %v", state, err)
	}
}

func TestPauseUnpauseErrors(t *testing.T) {
	bb := busyboxImage(t)
	a := append(append([]string{"run", "-d"}, sec(t)...), bb, "sleep", "60")
	id := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	if _, stderr, code := berth(t, "", "unpause", id); code != 125 || strings.TrimSpace(stderr) != "berth: container "+name(t, id)+" is not paused" {
		t.Errorf("unpause of a running container: exit %d, %q", code, stderr)
	}
	berthOK(t, "pause", id)
	if st := strings.TrimSpace(berthOK(t, "inspect", "-f", "{{.State.Status}}", id)); st != "paused" {
		t.Errorf("after pause: %q", st)
	}
	if _, stderr, code := berth(t, "", "pause", id); code != 125 || !strings.Contains(stderr, "is already paused") {
		t.Errorf("pause of a paused container: exit %d, %q", code, stderr)
	}
	berthOK(t, "unpause", id)
	if st := strings.TrimSpace(berthOK(t, "inspect", "-f", "{{.State.Status}}", id)); st != "running" {
		t.Errorf("after unpause: %q", st)
	}
}

func name(t *testing.T, id string) string {
	t.Helper()
	return strings.TrimPrefix(strings.TrimSpace(berthOK(t, "inspect", "-f", "{{.Name}}", id)), "/")
}

// docker cp's symlink rules: a symlink named as the source is copied as
// the link (wherever it points, a volume's included), -L or a trailing
// "/" copies what it points at.
func TestCpSymlinkSource(t *testing.T) {
	bb := busyboxImage(t)
	a := append(append([]string{"run", "-d", "-v", "/data"}, sec(t)...), bb, "sleep", "60")
	id := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", "-v", id) })
	berthOK(t, "exec", id, "sh", "-c", "echo hi > /data/f; mkdir /data/d; echo x > /data/d/y; ln -s /etc /data/abs; ln -s f /data/rel; ln -s d /data/dl; ln -s busybox /bin/bb")
	dst := t.TempDir()
	link := func(name, want string) {
		t.Helper()
		if got, err := os.Readlink(filepath.Join(dst, name)); err != nil || got != want {
			t.Errorf("%s: want a symlink to %s, got %q, %v", name, want, got, err)
		}
	}
	content := func(name, want string) {
		t.Helper()
		st, err := os.Lstat(filepath.Join(dst, name))
		b, _ := os.ReadFile(filepath.Join(dst, name))
		if err != nil || !st.Mode().IsRegular() || string(b) != want {
			t.Errorf("%s: want a file holding %q, got %v %q", name, want, err, b)
		}
	}
	berthOK(t, "cp", id+":/data/abs", dst+"/abs")
	link("abs", "/etc")
	berthOK(t, "cp", id+":/data/rel", dst+"/rel")
	link("rel", "f")
	berthOK(t, "cp", id+":/bin/bb", dst+"/bb")
	link("bb", "busybox")
	berthOK(t, "cp", "-L", id+":/data/rel", dst+"/relL")
	content("relL", "hi\n")
	berthOK(t, "cp", id+":/data/dl/", dst+"/dl")
	content("dl/y", "x\n")
}

// --restart: on-failure:N restarts a failing container N times, always
// restarts one that exits 0 until stop asks it to end, no (the default)
// never restarts; --restart with --rm is refused.
func TestRestartPolicies(t *testing.T) {
	bb := busyboxImage(t)
	runD := func(args ...string) string {
		t.Helper()
		a := append(append([]string{"run", "-d", "--network", "none"}, sec(t)...), args...)
		id := strings.TrimSpace(berthOK(t, a...))
		t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
		return id
	}
	state := func(id string) string {
		return strings.TrimSpace(berthOK(t, "inspect", "-f", "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}", id))
	}
	waitFor := func(id, want string) {
		t.Helper()
		for i := 0; i < 300; i++ {
			if state(id) == want {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("%s: state %q, want %q", id[:12], state(id), want)
	}
	fail := runD("--restart", "on-failure:2", bb, "sh", "-c", "echo run; exit 3")
	waitFor(fail, "exited 2 3")
	if n := strings.Count(berthOK(t, "logs", fail), "run"); n != 3 {
		t.Errorf("on-failure:2 ran %d times, want 3", n)
	}
	if p := strings.TrimSpace(berthOK(t, "inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}", fail)); p != "on-failure:2" {
		t.Errorf("inspect RestartPolicy: %q", p)
	}
	ok := runD("--restart", "on-failure", bb, "true")
	waitFor(ok, "exited 0 0")

	always := runD("--restart", "always", bb, "sh", "-c", "sleep 0.2")
	for i := 0; i < 300; i++ {
		var n int
		fmt.Sscan(strings.Fields(state(always))[1], &n)
		if n >= 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	berthOK(t, "stop", "-t", "1", always)
	st := strings.Fields(state(always))
	time.Sleep(700 * time.Millisecond) // longer than any back-off so far
	if st2 := strings.Fields(state(always)); st[0] != "exited" || st2[0] != "exited" || st2[1] != st[1] {
		t.Errorf("always after stop: %v, then %v", st, st2)
	}
	if _, stderr, code := berth(t, "", "run", "--rm", "--restart", "always", bb, "true"); code != 125 || !strings.Contains(stderr, "conflicting options") {
		t.Errorf("--restart with --rm: %d %q", code, stderr)
	}

	// A crash-looping container waiting out its back-off is its monitor's:
	// rm without -f, prune and start leave it alone; rm -f removes it.
	loop := runD("--restart", "always", bb, "sh", "-c", "exit 1")
	// (by its third restart its back-off is 400 ms: time to look)
	for i := 0; i < 300; i++ {
		var status string
		var n int
		fmt.Sscan(state(loop), &status, &n)
		if status == "restarting" && n >= 3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := state(loop); !strings.HasPrefix(st, "restarting") {
		t.Fatalf("crash loop: state %q", st)
	}
	if _, stderr, code := berth(t, "", "rm", loop); code != 125 || !strings.Contains(stderr, "restarting") {
		t.Errorf("rm of a restarting container: %d %q", code, stderr)
	}
	if out := berthOK(t, "container", "prune"); strings.Contains(out, loop) {
		t.Errorf("prune removed a restarting container")
	}
	if _, stderr, code := berth(t, "", "start", loop); code == 0 || !strings.Contains(stderr, "restarting") {
		t.Errorf("start of a restarting container: %d %q", code, stderr)
	}
	berthOK(t, "rm", "-f", loop)
	if _, _, code := berth(t, "", "inspect", loop); code == 0 {
		t.Error("rm -f left the restarting container")
	}
}

// --pid container:NAME sees NAME's processes, --uts host has the host's
// hostname, --device gives a host device, --dns writes resolv.conf.
func TestNamespaceSharingOptions(t *testing.T) {
	bb := busyboxImage(t)
	a := append(append([]string{"run", "-d", "--network", "none"}, sec(t)...), bb, "sleep", "60")
	id := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	// --ipc shareable's /dev/shm is shared with a --ipc container: joiner,
	// and goes with its container.
	a = append(append([]string{"run", "-d", "--network", "none", "--ipc", "shareable"}, sec(t)...), bb, "sh", "-c", "echo shm-data > /dev/shm/x; sleep 60")
	donor := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", donor) })
	for i := 0; i < 100; i++ {
		if out, _, _ := berth(t, "", "exec", donor, "cat", "/dev/shm/x"); out == "shm-data\n" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out, errs, code := run(t, "--ipc", "container:"+donor, bb, "cat", "/dev/shm/x"); code != 0 || out != "shm-data\n" {
		t.Errorf("--ipc container: of a shareable one: exit %d %q %q", code, out, errs)
	}
	berthOK(t, "rm", "-f", donor)
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), donor) {
		t.Errorf("a mount of the removed --ipc shareable container is left")
	}
	out, errs, code := run(t, "--pid", "container:"+id, bb, "ps")
	if code != 0 || !strings.Contains(out, "sleep 60") {
		t.Errorf("--pid container: exit %d %q %q", code, out, errs)
	}
	host, _ := os.Hostname()
	if out, _, _ := run(t, "--uts", "host", bb, "hostname"); strings.TrimSpace(out) != host {
		t.Errorf("--uts host: hostname %q, want %q", out, host)
	}
	if out, errs, code := run(t, "--device", "/dev/null:/dev/mynull", bb, "sh", "-c", "echo x > /dev/mynull && echo ok"); code != 0 || out != "ok\n" {
		t.Errorf("--device: exit %d %q %q", code, out, errs)
	}
	if out, _, _ := run(t, "--dns", "192.0.2.53", bb, "cat", "/etc/resolv.conf"); !strings.Contains(out, "nameserver 192.0.2.53\n") {
		t.Errorf("--dns: %q", out)
	}
	if _, errs, code := run(t, "--pid", "container:nosuch", bb, "true"); code != 125 || !strings.Contains(errs, "no such container") {
		t.Errorf("--pid container:nosuch: exit %d %q", code, errs)
	}
}

// run pulls an image the store does not have (--pull missing, docker's
// default), refuses to with --pull never, and pulls again with always.
func TestRunPullsMissingImage(t *testing.T) {
	requireRuntime(t)
	bb := busyboxImage(t)
	reg := fixture.StartRegistry(t, "", "")
	ref := reg + "/pulled/busybox:1"
	berthOK(t, "push", "-q", bb, ref)
	berth(t, "", "rmi", ref)
	if _, errs, code := run(t, "--pull", "never", ref, "true"); code != 125 || !strings.Contains(errs, "--pull never") {
		t.Errorf("--pull never of a missing image: exit %d %q", code, errs)
	}
	out, errs, code := run(t, ref, "echo", "pulled")
	if code != 0 || out != "pulled\n" || !strings.Contains(errs, "Unable to find image '"+ref+"' locally") {
		t.Errorf("run of a missing image: exit %d %q %q", code, out, errs)
	}
	t.Cleanup(func() { berth(t, "", "rmi", "-f", ref) })
	if out, errs, code := run(t, "--pull", "always", ref, "echo", "again"); code != 0 || out != "again\n" || strings.Contains(errs, "Unable to find") {
		t.Errorf("--pull always: exit %d %q %q", code, out, errs)
	}
	if _, errs, code := run(t, "--pull", "sometimes", ref, "true"); code != 125 || !strings.Contains(errs, "invalid --pull") {
		t.Errorf("--pull sometimes: exit %d %q", code, errs)
	}
}

// --cidfile, --label-file, --log-driver none and --expose, as docker has them.
func TestRunFileAndLogOptions(t *testing.T) {
	bb := busyboxImage(t)
	dir := t.TempDir()
	cid, lf := filepath.Join(dir, "cid"), filepath.Join(dir, "labels")
	os.WriteFile(lf, []byte("a=1\n# not a label\nb=2\n"), 0o644)
	a := append(append([]string{"run", "-d", "--network", "none", "--cidfile", cid, "--label-file", lf, "-l", "c=3", "--log-driver", "none"}, sec(t)...), bb, "sh", "-c", "echo out; sleep 60")
	id := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	if b, err := os.ReadFile(cid); err != nil || string(b) != id {
		t.Errorf("--cidfile holds %q, %v", b, err)
	}
	if _, stderr, code := berth(t, "", "run", "--rm", "--cidfile", cid, bb, "true"); code != 125 || !strings.Contains(stderr, "exists") {
		t.Errorf("a second --cidfile to the same file: %d %q", code, stderr)
	}
	if got := strings.TrimSpace(berthOK(t, "inspect", "-f", "{{json .Config.Labels}}", id)); got != `{"a":"1","b":"2","c":"3"}` {
		t.Errorf("labels %s", got)
	}
	if _, stderr, code := berth(t, "", "logs", id); code != 125 || !strings.Contains(stderr, "--log-driver none") {
		t.Errorf("logs of a --log-driver none container: %d %q", code, stderr)
	}
	if _, err := os.Stat(testEngine(t).logPath(id)); err == nil {
		t.Error("--log-driver none wrote a log")
	}
	for _, bad := range [][]string{{"--log-driver", "syslog"}, {"--expose", "0"}} {
		if _, stderr, code := run(t, append(bad, bb, "true")...); code != 125 || !strings.Contains(stderr, bad[0]) {
			t.Errorf("%v: %d %q", bad, code, stderr)
		}
	}
	a = append(append([]string{"run", "-d", "--expose", "8080", "-P"}, sec(t)...), bb, "sleep", "60")
	ex := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", ex) })
	if p := berthOK(t, "port", ex); !strings.HasPrefix(p, "8080/tcp -> ") {
		t.Errorf("--expose 8080 -P: port %q", p)
	}
}

// --volumes-from mounts another container's volumes (read-only with :ro);
// rm -v of the second leaves the first one's anonymous volume alone.
func TestVolumesFrom(t *testing.T) {
	bb := busyboxImage(t)
	a := append(append([]string{"run", "-d", "--network", "none", "-v", "/data"}, sec(t)...), bb, "sh", "-c", "echo shared > /data/f; sleep 60")
	src := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", "-v", src) })
	for i := 0; i < 100; i++ {
		if out, _, _ := berth(t, "", "exec", src, "cat", "/data/f"); out == "shared\n" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out, errs, code := run(t, "--volumes-from", src, bb, "cat", "/data/f"); code != 0 || out != "shared\n" {
		t.Errorf("--volumes-from: exit %d %q %q", code, out, errs)
	}
	if _, _, code := run(t, "--volumes-from", src+":ro", bb, "sh", "-c", "echo x > /data/g"); code == 0 {
		t.Error("--volumes-from :ro let the container write")
	}
	a = append(append([]string{"create", "--volumes-from", src}, sec(t)...), bb, "true")
	second := strings.TrimSpace(berthOK(t, a...))
	berthOK(t, "rm", "-v", second)
	if out, _, _ := berth(t, "", "exec", src, "cat", "/data/f"); out != "shared\n" {
		t.Errorf("rm -v of a --volumes-from container took the volume: %q", out)
	}
	if _, stderr, code := run(t, "--volumes-from", "nosuch", bb, "true"); code != 125 || !strings.Contains(stderr, "nosuch") {
		t.Errorf("--volumes-from nosuch: %d %q", code, stderr)
	}
}

// With --pid host the container's orphans are not its monitor's to reap
// (it waits only for the init): none is left a zombie under it.
func TestPidHostLeavesNoZombies(t *testing.T) {
	bb := busyboxImage(t)
	a := append(append([]string{"run", "-d", "--pid", "host", "--network", "none"}, sec(t)...), bb, "sh", "-c", "(sleep 0.1 &); (sleep 0.1 &); sleep 60")
	id := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	c, err := testEngine(t).loadID(id)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		b, err := os.ReadFile("/proc/" + ent.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(c.State.MonitorPid) {
			t.Errorf("zombie %s under the monitor %d: %s", ent.Name(), c.State.MonitorPid, s)
		}
	}
}

// system prune does docker's: stopped containers, networks and (with
// --volumes) volumes nothing uses, unused images with -a; what a running
// container holds stays.
func TestSystemPrune(t *testing.T) {
	requireRuntime(t)
	root := filepath.Join(t.TempDir(), "root")
	b := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(berthBin, append([]string{"--root", root}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("berth %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		exec.Command(berthBin, "--root", root, "rm", "-f", "-v", "keeper").Run()
		exec.Command(berthBin, "--root", root, "network", "rm", "used").Run()
	})
	tar := filepath.Join(t.TempDir(), "bb.tar")
	if err := fixture.BusyboxTar(tar); err != nil {
		t.Fatal(err)
	}
	b("import", "-q", tar, "bb:1")
	b("import", "-q", tar, "other:1")
	b("network", "create", "unused")
	b("network", "create", "used")
	b("run", "--name", "stopped", "-v", "gone:/d", "bb:1", "true")
	b(append(append([]string{"run", "-d", "--name", "keeper", "--network", "used", "-v", "kept:/d"}, sec(t)...), "bb:1", "sleep", "60")...)
	out := b("system", "prune", "-a", "--volumes")
	for _, want := range []string{"Deleted Containers:", "Deleted Networks:\nunused", "Deleted Volumes:\ngone", "other:1"} {
		if !strings.Contains(out, want) {
			t.Errorf("system prune output lacks %q:\n%s", want, out)
		}
	}
	if ps := b("ps", "-a", "--format", "{{.Names}}"); strings.TrimSpace(ps) != "keeper" {
		t.Errorf("containers after prune: %q", ps)
	}
	if nets := b("network", "ls"); !strings.Contains(nets, "used") || strings.Contains(nets, "unused") {
		t.Errorf("networks after prune:\n%s", nets)
	}
	if vols := b("volume", "ls", "-q"); strings.TrimSpace(vols) != "kept" {
		t.Errorf("volumes after prune: %q", vols)
	}
	if imgs := b("images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(imgs, "bb:1") || strings.Contains(imgs, "other:1") {
		t.Errorf("images after prune -a: %q", imgs)
	}
}

func TestVolumeLsFilter(t *testing.T) {
	bb := busyboxImage(t)
	berthOK(t, "volume", "create", "--label", "tier=db", "berthtest-vf-a")
	berthOK(t, "volume", "create", "berthtest-vf-b")
	t.Cleanup(func() { berth(t, "", "volume", "rm", "-f", "berthtest-vf-a", "berthtest-vf-b") })
	a := append(append([]string{"run", "-d", "--network", "none", "-v", "berthtest-vf-b:/d"}, sec(t)...), bb, "sleep", "60")
	id := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	for f, want := range map[string]string{"name=vf-": "berthtest-vf-a berthtest-vf-b", "label=tier=db": "berthtest-vf-a", "label=tier": "berthtest-vf-a"} {
		if got := strings.Join(strings.Fields(berthOK(t, "volume", "ls", "-q", "--filter", f)), " "); got != want {
			t.Errorf("--filter %s: %q, want %q", f, got, want)
		}
	}
	used := berthOK(t, "volume", "ls", "-q", "--filter", "dangling=false")
	unused := berthOK(t, "volume", "ls", "-q", "--filter", "dangling=true")
	if !strings.Contains(used, "berthtest-vf-b") || strings.Contains(used, "berthtest-vf-a") || !strings.Contains(unused, "berthtest-vf-a") {
		t.Errorf("dangling: in use %q, unused %q", used, unused)
	}
}
