package seccomp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Loading a filter is irreversible, so the kernel tests run in a child:
// the test binary re-executed with BERTH_SECCOMP_CHILD naming a profile.
// The child loads it (after no_new_privs, as the runtime does), makes the
// probe calls, and prints one "probe=result" line each.

const childEnv = "BERTH_SECCOMP_CHILD"

func TestMain(m *testing.M) {
	if name := os.Getenv(childEnv); name != "" {
		os.Exit(child(name))
	}
	os.Exit(m.Run())
}

func u(v uint) *uint { return &v }

func allowWith(rules ...specs.LinuxSyscall) *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: rules}
}

var getppid = []string{"getppid"}

// childProfiles are the profiles a child can load, by name.
func childProfiles(t testing.TB) map[string]*specs.LinuxSeccomp {
	p := map[string]*specs.LinuxSeccomp{
		"none":     nil,
		"errno":    allowWith(specs.LinuxSyscall{Names: getppid, Action: specs.ActErrno, ErrnoRet: u(uint(unix.EXDEV))}),
		"killproc": allowWith(specs.LinuxSyscall{Names: getppid, Action: specs.ActKillProcess}),
		"trap":     allowWith(specs.LinuxSyscall{Names: getppid, Action: specs.ActTrap}),
		"trace":    allowWith(specs.LinuxSyscall{Names: getppid, Action: specs.ActTrace, ErrnoRet: u(5)}),
		"nox32":    {DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64}},
		// No host arch listed: libseccomp still covers the native one.
		"foreign": {DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchAARCH64},
			Syscalls: []specs.LinuxSyscall{{Names: getppid, Action: specs.ActErrno, ErrnoRet: u(uint(unix.EXDEV))}}},
		"flags": {DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow},
			Syscalls: []specs.LinuxSyscall{{Names: getppid, Action: specs.ActLog}}},
	}
	p["docker"] = dockerProfile(t)
	p["docker-compiled"] = p["docker"] // through NewFilter, JSON and Filter.Load
	p["notify"] = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/unused/agent.sock",
		Flags:    []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv},
		Syscalls: []specs.LinuxSyscall{{Names: getppid, Action: specs.ActNotify}}}
	return p
}

type fatalTB struct{ testing.TB }

func (fatalTB) Fatal(args ...any) { fmt.Fprintln(os.Stderr, args...); os.Exit(3) }

func sys(nr uintptr, args ...uintptr) string {
	var a [6]uintptr
	copy(a[:], args)
	_, _, e := unix.Syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
	if e != 0 {
		return unix.ErrnoName(e)
	}
	return "ok"
}

func child(name string) int {
	profiles := childProfiles(fatalTB{})
	s, ok := profiles[name]
	if !ok {
		fmt.Fprintln(os.Stderr, "no profile", name)
		return 3
	}
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	if name == "notify" {
		return notifyChild(s)
	}
	load := func() error { return Load(s) }
	if strings.HasSuffix(name, "-compiled") {
		// As the runtime hands a filter to the container's init.
		load = func() error {
			f, err := NewFilter(s)
			if err != nil {
				return err
			}
			data, err := json.Marshal(f)
			if err != nil {
				return err
			}
			var g Filter
			if err := json.Unmarshal(data, &g); err != nil {
				return err
			}
			return g.Load()
		}
	}
	if err := load(); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		return 3
	}
	out := func(k, v string) { fmt.Printf("%s=%s\n", k, v) }
	out("loaded", "ok")
	if os.Getenv("BERTH_SECCOMP_BENCH") != "" {
		timeCalls(out)
		return 0
	}
	// Ordinary work: files, a thread, a fork+exec.
	if _, err := os.ReadFile("/proc/self/status"); err != nil {
		out("readfile", err.Error())
	} else {
		out("readfile", "ok")
	}
	done := make(chan bool)
	go func() { runtime.LockOSThread(); done <- true }()
	<-done
	if err := exec.Command("/bin/sh", "-c", "exit 0").Run(); err != nil {
		out("exec", err.Error())
	} else {
		out("exec", "ok")
	}
	out("getpid", sys(unix.SYS_GETPID))
	out("keyctl", sys(unix.SYS_KEYCTL, 0x7fff))
	out("add_key", sys(unix.SYS_ADD_KEY))
	out("unshare_user", sys(unix.SYS_UNSHARE, unix.CLONE_NEWUSER))
	out("kexec_load", sys(unix.SYS_KEXEC_LOAD))
	out("init_module", sys(unix.SYS_INIT_MODULE))
	out("finit_module", sys(unix.SYS_FINIT_MODULE, ^uintptr(0)))
	out("clone3", sys(unix.SYS_CLONE3))
	out("personality_query", sys(unix.SYS_PERSONALITY, 0xffffffff))
	out("personality_linux", sys(unix.SYS_PERSONALITY, 0))
	out("personality_norandom", sys(unix.SYS_PERSONALITY, 0x0040000)) // ADDR_NO_RANDOMIZE
	out("personality_linux", sys(unix.SYS_PERSONALITY, 0))
	// Bad arguments everywhere: without a filter these fail harmlessly
	// (EFAULT, EBADF, EINVAL), so any EPERM is the filter's.
	out("mount", sys(unix.SYS_MOUNT))
	out("umount2", sys(unix.SYS_UMOUNT2))
	out("setns", sys(unix.SYS_SETNS, ^uintptr(0)))
	out("bpf", sys(unix.SYS_BPF, ^uintptr(0)))
	out("reboot", sys(unix.SYS_REBOOT))
	out("swapon", sys(unix.SYS_SWAPON))
	out("perf_event_open", sys(unix.SYS_PERF_EVENT_OPEN))
	out("pivot_root", sys(unix.SYS_PIVOT_ROOT))
	out("syslog_close", sys(unix.SYS_SYSLOG))
	out("open_by_handle_at", sys(unix.SYS_OPEN_BY_HANDLE_AT, ^uintptr(0)))
	out("chroot", sys(unix.SYS_CHROOT))
	out("socket_unix", sys(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM))
	out("socket_vsock", sys(unix.SYS_SOCKET, unix.AF_VSOCK, unix.SOCK_STREAM))
	os.Stdout.Sync()
	// These may end the process; they go last, in this order.
	if runtime.GOARCH == "amd64" && os.Getenv("BERTH_SECCOMP_X32") != "" {
		out("x32_getpid", sys(x32SyscallBit|unix.SYS_GETPID))
	}
	out("getppid", sys(unix.SYS_GETPPID))
	return 0
}

type childResult struct {
	probes map[string]string
	status syscall.WaitStatus
	stderr string
}

func runChild(t *testing.T, name string, x32 bool) childResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+name)
	if x32 {
		cmd.Env = append(cmd.Env, "BERTH_SECCOMP_X32=1")
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	cmd.Wait()
	timer.Stop()
	r := childResult{probes: map[string]string{}, stderr: stderr.String()}
	r.status = cmd.ProcessState.Sys().(syscall.WaitStatus)
	for _, l := range strings.Split(stdout.String(), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			r.probes[k] = v
		}
	}
	if r.probes["loaded"] != "ok" {
		t.Fatalf("child %s did not load its profile: status %v, stderr %q", name, r.status, r.stderr)
	}
	return r
}

// A filter compiled in one process and installed in another behaves as
// one compiled where it is installed.
func TestCompiledFilterInKernel(t *testing.T) {
	want := runChild(t, "docker", false)
	got := runChild(t, "docker-compiled", false)
	if got.status != want.status {
		t.Fatalf("status %v, want %v (stderr %q)", got.status, want.status, got.stderr)
	}
	if len(got.probes) < 10 {
		t.Fatalf("only %d probes: %v", len(got.probes), got.probes)
	}
	for k, v := range want.probes {
		if got.probes[k] != v {
			t.Errorf("%s = %q, want %q", k, got.probes[k], v)
		}
	}
}

func TestFilterLoadRejectsBadProgram(t *testing.T) {
	for _, n := range []int{0, 7, 9} {
		if err := (&Filter{Prog: make([]byte, n)}).Load(); err == nil || !strings.Contains(err.Error(), "bad compiled filter") {
			t.Errorf("%d bytes: err = %v", n, err)
		}
	}
}

func TestDockerProfileInKernel(t *testing.T) {
	base := runChild(t, "none", false)
	dock := runChild(t, "docker", runtime.GOARCH == "amd64")
	if !dock.status.Exited() || dock.status.ExitStatus() != 0 {
		t.Fatalf("child under Docker's profile: %v, stderr %q", dock.status, dock.stderr)
	}
	want := map[string]string{
		"readfile": "ok", "exec": "ok", "getpid": "ok", "getppid": "ok", "socket_unix": "ok",
		"keyctl": "EPERM", "add_key": "EPERM", "unshare_user": "EPERM", "kexec_load": "EPERM",
		"init_module": "EPERM", "finit_module": "EPERM", "socket_vsock": "EPERM",
		"mount": "EPERM", "umount2": "EPERM", "setns": "EPERM", "bpf": "EPERM", "reboot": "EPERM",
		"swapon": "EPERM", "perf_event_open": "EPERM", "pivot_root": "EPERM", "syslog_close": "EPERM",
		"open_by_handle_at": "EPERM", "chroot": "EFAULT", // CAP_SYS_CHROOT is in Docker's set
		"clone3":            "ENOSYS", // errnoRet 38 in the profile
		"personality_query": "ok", "personality_linux": "ok", "personality_norandom": "EPERM",
	}
	for k, v := range want {
		if got := dock.probes[k]; got != v {
			t.Errorf("%s under Docker's profile: %s, want %s (without a filter: %s)", k, got, v, base.probes[k])
		}
	}
	// The filter, not the kernel, made these fail: without it they fail
	// differently (or succeed).
	for _, k := range []string{"keyctl", "add_key", "unshare_user", "finit_module", "clone3", "personality_norandom"} {
		if base.probes[k] == dock.probes[k] {
			t.Errorf("%s: %s with and without the filter: the probe proves nothing", k, base.probes[k])
		}
	}
	if runtime.GOARCH == "amd64" {
		// x32 is in Docker's amd64 profile: the call reaches the kernel
		// (ENOSYS where the kernel lacks the x32 ABI).
		if g := dock.probes["x32_getpid"]; g != "ok" && g != "ENOSYS" {
			t.Errorf("x32 getpid under Docker's profile: %q", g)
		}
		t.Logf("x32 getpid: %s (no filter: %s)", dock.probes["x32_getpid"], base.probes["x32_getpid"])
	}
}

func TestActionsInKernel(t *testing.T) {
	if r := runChild(t, "errno", false); r.probes["getppid"] != "EXDEV" || r.probes["getpid"] != "ok" {
		t.Errorf("errno profile: getppid %s getpid %s, want EXDEV (errnoRet) and ok", r.probes["getppid"], r.probes["getpid"])
	}
	if r := runChild(t, "killproc", false); !r.status.Signaled() || r.status.Signal() != syscall.SIGSYS {
		t.Errorf("kill_process: child ended %v, want killed by SIGSYS", r.status)
	}
	if r := runChild(t, "trap", false); !strings.Contains(r.stderr, "SIGSYS") || r.probes["getppid"] != "" {
		t.Errorf("trap: status %v stderr %q probes %v, want a SIGSYS crash", r.status, r.stderr, r.probes)
	}
	// With no tracer attached the kernel fails a TRACE'd call with ENOSYS.
	if r := runChild(t, "trace", false); r.probes["getppid"] != "ENOSYS" {
		t.Errorf("trace without a tracer: getppid %q, want ENOSYS", r.probes["getppid"])
	}
	if r := runChild(t, "flags", false); r.probes["getppid"] != "ok" || r.status.ExitStatus() != 0 {
		t.Errorf("log action with LOG+SPEC_ALLOW flags: getppid %s, status %v, stderr %q", r.probes["getppid"], r.status, r.stderr)
	}
	if r := runChild(t, "foreign", runtime.GOARCH == "amd64"); r.probes["getppid"] != "" && r.probes["getppid"] != "EXDEV" {
		t.Errorf("profile without the host arch: getppid %s, want EXDEV (native arch always covered)", r.probes["getppid"])
	}
}

func TestUncoveredABIKills(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("x32 calls only exist on amd64")
	}
	for _, name := range []string{"nox32", "foreign"} {
		r := runChild(t, name, true)
		if !r.status.Signaled() || r.status.Signal() != syscall.SIGSYS {
			t.Errorf("%s: x32 call with x32 not in the profile: child ended %v (probes %v), want SIGSYS kill", name, r.status, r.probes)
		}
		if r.probes["getpid"] != "ok" {
			t.Errorf("%s: native getpid %q", name, r.probes["getpid"])
		}
	}
}

func TestLoadRejects(t *testing.T) {
	if err := Load(nil); err != nil {
		t.Fatalf("Load(nil) = %v", err)
	}
	for name, s := range map[string]*specs.LinuxSeccomp{
		"notify":    allowWith(specs.LinuxSyscall{Names: getppid, Action: specs.ActNotify}),
		"no action": {},
		"bad op": allowWith(specs.LinuxSyscall{Names: getppid, Action: specs.ActErrno,
			Args: []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_FOO"}}}),
		"bad index": allowWith(specs.LinuxSyscall{Names: getppid, Action: specs.ActErrno,
			Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}),
		"bad flag":  {DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_NOPE"}},
		"bad arch":  {DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"SCMP_ARCH_Z80"}},
		"bad errno": {DefaultAction: specs.ActErrno, DefaultErrnoRet: u(70000)},
	} {
		// Compile fails first, so Load never installs anything here.
		if err := Load(s); err == nil {
			t.Errorf("%s: Load accepted it", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// timeCalls reports the cost of a few calls under the loaded filter, in ns.
func timeCalls(out func(k, v string)) {
	const n = 100000
	for _, c := range []struct {
		name string
		nr   uintptr
		arg  uintptr
	}{
		{"getpid", unix.SYS_GETPID, 0},                          // allowed, no conditions
		{"personality_query", unix.SYS_PERSONALITY, 0xffffffff}, // allowed by the last of 5 conditional rules
		{"keyctl", unix.SYS_KEYCTL, 0x7fff},                     // denied
	} {
		best := time.Duration(1 << 62)
		for range 7 { // the fastest round: the machine is shared
			t0 := time.Now()
			for range n {
				unix.RawSyscall(c.nr, c.arg, 0, 0)
			}
			best = min(best, time.Since(t0))
		}
		out(c.name+"_ns", fmt.Sprintf("%.1f", float64(best.Nanoseconds())/n))
	}
}

// BenchmarkFilterCost measures, in a child, what a syscall costs without a
// filter and under Docker's profile (go test -run - -bench FilterCost).
func BenchmarkFilterCost(b *testing.B) {
	res := map[string]map[string]string{}
	for _, name := range []string{"none", "docker"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+name, "BERTH_SECCOMP_BENCH=1")
		out, err := cmd.Output()
		if err != nil {
			b.Fatal(err)
		}
		res[name] = map[string]string{}
		for _, l := range strings.Split(string(out), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				res[name][k] = v
			}
		}
	}
	for b.Loop() {
	}
	// After the loop: b.Loop's timer reset drops metrics reported before it.
	for _, k := range []string{"getpid_ns", "personality_query_ns", "keyctl_ns"} {
		var none, dock float64
		fmt.Sscan(res["none"][k], &none)
		fmt.Sscan(res["docker"][k], &dock)
		b.ReportMetric(none, "nofilter-"+k)
		b.ReportMetric(dock, "docker-"+k)
	}
}

// The kernel's struct seccomp_notif and seccomp_notif_resp.
type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Nr    int32
	Arch  uint32
	IP    uint64
	Args  [6]uint64
}

type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// notifyChild installs the filter with a listener and plays the agent
// itself on another thread: getppid is answered with 4242.
func notifyChild(s *specs.LinuxSeccomp) int {
	f, err := LoadListener(s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		return 3
	}
	fmt.Println("loaded=ok")
	go func() {
		runtime.LockOSThread()
		for {
			var req seccompNotif
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&req))); e != 0 {
				fmt.Fprintln(os.Stderr, "recv:", e)
				os.Exit(4)
			}
			resp := seccompNotifResp{ID: req.ID, Val: 4242}
			if req.Nr != unix.SYS_GETPPID {
				resp = seccompNotifResp{ID: req.ID, Error: -int32(unix.EXDEV)}
			}
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp))); e != 0 {
				fmt.Fprintln(os.Stderr, "send:", e)
				os.Exit(4)
			}
		}
	}()
	r, _, e := unix.Syscall(unix.SYS_GETPPID, 0, 0, 0)
	fmt.Printf("getppid=%d/%d\n", r, e)
	fmt.Printf("getpid=%s\n", sys(unix.SYS_GETPID))
	return 0
}

func TestNotifyAgent(t *testing.T) {
	r := runChild(t, "notify", false)
	if r.probes["getppid"] != "4242/0" || r.probes["getpid"] != "ok" {
		t.Fatalf("notify: probes %v stderr %q; want getppid answered 4242 by the agent", r.probes, r.stderr)
	}
}

func TestSendListener(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type got struct {
		st  specs.ContainerProcessState
		fds []int
		err error
	}
	gotc := make(chan got, 1)
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			gotc <- got{err: err}
			return
		}
		defer c.Close()
		buf, oob := make([]byte, 64<<10), make([]byte, 128)
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		var g got
		g.err = err
		if err == nil {
			g.err = json.Unmarshal(buf[:n], &g.st)
			msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			for _, m := range msgs {
				fds, _ := unix.ParseUnixRights(&m)
				g.fds = append(g.fds, fds...)
			}
		}
		gotc <- g
	}()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	st := specs.ContainerProcessState{Pid: 1234, Metadata: "meta", State: specs.State{ID: "c1", Status: specs.StateCreating}}
	if err := SendListener(sock, pr, st); err != nil {
		t.Fatal(err)
	}
	g := <-gotc
	if g.err != nil {
		t.Fatal(g.err)
	}
	if g.st.Pid != 1234 || g.st.Metadata != "meta" || g.st.State.ID != "c1" || len(g.st.Fds) != 1 || g.st.Fds[0] != "seccompFd" || g.st.Version == "" {
		t.Fatalf("agent got %+v", g.st)
	}
	if len(g.fds) != 1 {
		t.Fatalf("agent got %d fds", len(g.fds))
	}
	recv := os.NewFile(uintptr(g.fds[0]), "recv")
	defer recv.Close()
	pw.Write([]byte("x"))
	b := make([]byte, 1)
	if _, err := recv.Read(b); err != nil || b[0] != 'x' {
		t.Fatalf("the fd the agent got is not the one sent: %v %q", err, b)
	}
	if err := SendListener(filepath.Join(t.TempDir(), "none.sock"), pr, st); err == nil {
		t.Fatal("SendListener to a missing socket succeeded")
	}
}
