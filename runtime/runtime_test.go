package runtime

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/fixture"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func sh(script string) []string { return []string{"sh", "-c", script} }

func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	id := e.id("life")
	b := e.bundle("", []string{"sleep", "60"}, nil)
	if err := e.r.Create(id, CreateOpts{Bundle: b}); err != nil {
		t.Fatal(err)
	}
	if err := e.r.Create(id, CreateOpts{Bundle: b}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second create: %v, want already exists", err)
	}
	s, err := e.r.State(id)
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != specs.StateCreated || s.Pid <= 0 || s.Bundle != b {
		t.Fatalf("after create: %+v", s)
	}
	// The init waits in berth, not yet in sleep.
	if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(s.Pid) + "/comm"); strings.TrimSpace(string(comm)) == "sleep" {
		t.Fatal("process runs before start")
	}
	if err := e.r.Start(id); err != nil {
		t.Fatal(err)
	}
	if st := e.status(id); st != specs.StateRunning {
		t.Fatalf("after start: %s", st)
	}
	if err := e.r.Start(id); err == nil {
		t.Fatal("second start succeeded")
	}
	if err := e.r.Delete(id, false); err == nil {
		t.Fatal("delete of a running container without force succeeded")
	}
	list, err := e.r.List()
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("list: %v %v", list, err)
	}
	// sh/sleep as pid 1 ignore SIGTERM without a handler; KILL works.
	if err := e.r.Kill(id, unix.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(id, specs.StateStopped)
	if err := e.r.Kill(id, unix.SIGKILL, false); err == nil {
		t.Fatal("kill of a stopped container succeeded")
	}
	if err := e.r.Delete(id, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.State(id); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state after delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.r.Root, id)); !os.IsNotExist(err) {
		t.Fatalf("state dir left behind: %v", err)
	}
}

func TestDeleteCreated(t *testing.T) {
	e := newEnv(t)
	id := e.id("created")
	if err := e.r.Create(id, CreateOpts{Bundle: e.bundle("", []string{"true"}, nil)}); err != nil {
		t.Fatal(err)
	}
	s, _ := e.r.State(id)
	if err := e.r.Delete(id, false); err != nil {
		t.Fatal(err)
	}
	if _, st, ok := procStart(s.Pid); ok && st != 'Z' {
		t.Fatalf("init %d still alive after delete", s.Pid)
	}
}

func TestExitStatus(t *testing.T) {
	e := newEnv(t)
	if _, code := e.mustRun("exit3", sh("exit 3"), nil); code != 3 {
		t.Fatalf("exit 3: got %d", code)
	}
	// pid 1 of a pid namespace cannot be SIGKILLed from inside: share the host's.
	noPidNS := func(s *specs.Spec) {
		var ns []specs.LinuxNamespace
		for _, n := range s.Linux.Namespaces {
			if n.Type != specs.PIDNamespace {
				ns = append(ns, n)
			}
		}
		s.Linux.Namespaces = ns
	}
	if _, code := e.mustRun("sig", sh("kill -9 $$"), noPidNS); code != 137 {
		t.Fatalf("SIGKILL: got %d, want 137", code)
	}
	_, _, err := e.run(e.id("missing"), e.bundle("", []string{"no-such-program"}, nil))
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing program: %v", err)
	}
}

func nsLinks(t *testing.T, pid string) map[string]string {
	out := map[string]string{}
	for _, n := range []string{"pid", "net", "ipc", "uts", "mnt", "cgroup", "user", "time"} {
		l, err := os.Readlink("/proc/" + pid + "/ns/" + n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = l
	}
	return out
}

func TestNamespaces(t *testing.T) {
	e := newEnv(t)
	host := nsLinks(t, "self")
	script := "for n in pid net ipc uts mnt cgroup user time; do echo $n $(readlink /proc/self/ns/$n); done; echo pid1=$$; hostname"
	out, code := e.mustRun("ns", sh(script), func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
		s.Hostname = "nstest"
	})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	got := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			got[f[0]] = f[1]
		}
	}
	for _, n := range []string{"pid", "net", "ipc", "uts", "mnt", "cgroup", "time"} {
		if got[n] == "" || got[n] == host[n] {
			t.Errorf("%s namespace: container %q, host %q", n, got[n], host[n])
		}
	}
	if got["user"] != host["user"] {
		t.Errorf("user namespace changed without being asked for")
	}
	if !strings.Contains(out, "pid1=1\n") || !strings.Contains(out, "nstest") {
		t.Errorf("pid or hostname wrong: %s", out)
	}
}

func TestUserNamespace(t *testing.T) {
	e := newEnv(t)
	out, code := e.mustRun("userns", sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; ls -l /dev/null; cat /proc/self/status | grep CapEff"), func(s *specs.Spec) {
		withUserNS(s)
		s.Linux.Resources = nil
	})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if strings.Count(out, "100000") != 2 || !strings.Contains(out, "\n0\n") {
		t.Fatalf("mappings: %s", out)
	}
	if !strings.Contains(out, "1,   3") {
		t.Fatalf("/dev/null in a user namespace: %s", out)
	}
}

func TestJoinNamespaceByPath(t *testing.T) {
	e := newEnv(t)
	a := e.start("holder", []string{"sleep", "60"}, nil)
	sa, _ := e.r.State(a)
	pid := strconv.Itoa(sa.Pid)
	want := nsLinks(t, pid)
	out, code := e.mustRun("joiner", sh("readlink /proc/self/ns/net; readlink /proc/self/ns/uts; readlink /proc/self/ns/ipc"), func(s *specs.Spec) {
		for i, n := range s.Linux.Namespaces {
			switch n.Type {
			case specs.NetworkNamespace, specs.UTSNamespace, specs.IPCNamespace:
				s.Linux.Namespaces[i].Path = "/proc/" + pid + "/ns/" + nsProcName[n.Type]
			}
		}
		s.Hostname = ""
	})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, n := range []string{"net", "uts", "ipc"} {
		if !strings.Contains(out, want[n]) {
			t.Errorf("%s not joined: want %s in %q", n, want[n], out)
		}
	}
}

// Joining a user and a time namespace by path: the container's other new
// namespaces belong to the joined user namespace (so its root may mount
// proc and sysfs), its pid is 1 in its own pid namespace, and the exit
// status comes through the relay unchanged.
func TestJoinUserAndTimeNamespaceByPath(t *testing.T) {
	e := newEnv(t)
	requireTimeNS(t)
	h := e.start("uholder", []string{"sleep", "60"}, both(withUserNS, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
		s.Linux.Resources = nil
	}))
	sh0, _ := e.r.State(h)
	pid := strconv.Itoa(sh0.Pid)
	want := nsLinks(t, pid)
	join := func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces,
			specs.LinuxNamespace{Type: specs.UserNamespace, Path: "/proc/" + pid + "/ns/user"},
			specs.LinuxNamespace{Type: specs.TimeNamespace, Path: "/proc/" + pid + "/ns/time"})
		s.Linux.Resources = nil
	}
	out, code := e.mustRun("ujoiner", sh("cat /proc/self/uid_map; readlink /proc/self/ns/user; readlink /proc/self/ns/time; echo pid=$$ uid=$(id -u); exit 3"), join)
	if code != 3 {
		t.Fatalf("exit %d, want 3: %s", code, out)
	}
	for _, w := range []string{"100000", want["user"], want["time"], "pid=1 uid=0"} {
		if !strings.Contains(out, w) {
			t.Errorf("want %q in %q", w, out)
		}
	}
	if mine := nsLinks(t, "self"); strings.Contains(out, mine["mnt"]) || strings.Contains(out, mine["user"]) {
		t.Errorf("the container shares the host's namespaces: %s", out)
	}
	// Killed, it exits as killed: the relay dies of the same signal.
	id := e.id("ukilled")
	done := make(chan int, 1)
	go func() {
		_, code, err := e.run(id, e.bundle("", []string{"sleep", "60"}, join))
		if err != nil {
			t.Errorf("run: %v", err)
		}
		done <- code
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Running, and the process is sleep already: run's container
		// shows as running while it is still being set up (it has no
		// exec fifo), and a kill then is a failed start, not an exit.
		if st, err := e.r.State(id); err == nil && st.Status == specs.StateRunning {
			if cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(st.Pid) + "/cmdline"); strings.HasPrefix(string(cmd), "sleep\x00") {
				e.r.Kill(id, unix.SIGKILL, false)
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the joining container never ran")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case code := <-done:
		if code != 137 {
			t.Errorf("killed container exited %d, want 137", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after the kill")
	}
}

func TestMounts(t *testing.T) {
	e := newEnv(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("hostdata"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := "cat /ro/f; echo x > /ro/g 2>/dev/null && echo ro-writable; echo y > /rw/g && echo rw-ok; " +
		"cp /bin/busybox /scratch/bb && /scratch/bb true 2>/dev/null && echo noexec-broken; " +
		"grep ' /ro ' /proc/self/mountinfo; touch /newfile 2>/dev/null && echo root-writable; echo done"
	out, code := e.mustRun("mounts", sh(script), func(s *specs.Spec) {
		s.Mounts = append(s.Mounts,
			specs.Mount{Destination: "/ro", Type: "bind", Source: src, Options: []string{"bind", "ro", "nosuid"}},
			specs.Mount{Destination: "/rw", Type: "none", Source: src, Options: []string{"rbind"}},
			specs.Mount{Destination: "/scratch", Type: "tmpfs", Source: "tmpfs", Options: []string{"noexec", "size=8m"}},
		)
	})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, bad := range []string{"ro-writable", "noexec-broken", "root-writable"} {
		if strings.Contains(out, bad) {
			t.Errorf("%s: %s", bad, out)
		}
	}
	if !strings.Contains(out, "hostdata") || !strings.Contains(out, "rw-ok") || !strings.Contains(out, "done") {
		t.Errorf("output: %s", out)
	}
	if !strings.Contains(out, " ro,nosuid") {
		t.Errorf("/ro mount flags: %s", out)
	}
	if data, err := os.ReadFile(filepath.Join(src, "g")); err != nil || string(data) != "y\n" {
		t.Errorf("rw bind did not write through: %q %v", data, err)
	}
}

// A symlink in the image pointing out of it must not redirect a bind
// mount or a device node to the host.
func TestMountSymlinkEscape(t *testing.T) {
	e := newEnv(t)
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := fixture.Busybox(rootfs); err != nil {
		t.Fatal(err)
	}
	host := t.TempDir() // what the symlinks point at on the host
	if err := os.Symlink(host, filepath.Join(rootfs, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../.."+host, filepath.Join(rootfs, "rel")); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "marker"), []byte("m"), 0o644)
	b := e.bundle(rootfs, sh("ls /abs/m1 /rel/m2; ls -l /abs/dev/evil"), func(s *specs.Spec) {
		s.Mounts = append(s.Mounts,
			specs.Mount{Destination: "/abs/m1", Type: "bind", Source: src, Options: []string{"bind"}},
			specs.Mount{Destination: "/rel/m2", Type: "bind", Source: src, Options: []string{"bind"}},
		)
		mode := os.FileMode(0o666)
		s.Linux.Devices = []specs.LinuxDevice{{Path: "/abs/dev/evil", Type: "c", Major: 1, Minor: 3, FileMode: &mode}}
		s.Root.Readonly = false
	})
	out, code, err := e.run(e.id("escape"), b)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(host)
	if len(ents) != 0 {
		t.Fatalf("mount or device escaped the rootfs into %s: %v", host, ents)
	}
	if code != 0 || strings.Count(out, "marker") != 2 {
		t.Fatalf("mounts did not land inside the rootfs (exit %d): %s", code, out)
	}
	if _, err := os.Stat(filepath.Join(rootfs, host, "m1")); err != nil {
		t.Fatalf("mountpoint not created inside the rootfs: %v", err)
	}
}

func TestDevicesAndPaths(t *testing.T) {
	e := newEnv(t)
	script := "stat -c '%n %t,%T %a %F' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/xnull; " +
		"readlink /dev/ptmx; readlink /dev/fd; readlink /dev/stdin; " +
		"cat /proc/keys | wc -c; ls /sys/firmware | wc -l; " +
		"echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo procsys-writable; " +
		"echo h > /proc/sysrq-trigger 2>/dev/null && echo sysrq-writable; " +
		"echo 1 > /sys/kernel/profiling 2>/dev/null && echo sys-writable; " +
		"test -d /dev/shm && echo shm; cat /proc/sys/net/ipv4/ip_forward"
	out, code := e.mustRun("devices", sh(script), func(s *specs.Spec) {
		mode := os.FileMode(0o600)
		s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/xnull", Type: "c", Major: 1, Minor: 3, FileMode: &mode}}
		s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
	})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, want := range []string{
		"/dev/null 1,3 666 character special file", "/dev/zero 1,5 666", "/dev/full 1,7 666", "/dev/random 1,8 666",
		"/dev/urandom 1,9 666", "/dev/tty 5,0 666", "/dev/xnull 1,3 600", "pts/ptmx\n/proc/self/fd\n/proc/self/fd/0",
		"shm", "\n0\n0\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	for _, bad := range []string{"procsys-writable", "sysrq-writable", "sys-writable"} {
		if strings.Contains(out, bad) {
			t.Errorf("%s:\n%s", bad, out)
		}
	}
	if !strings.HasSuffix(strings.TrimSpace(out), "1") {
		t.Errorf("sysctl not applied:\n%s", out)
	}
}

func TestUserAndCapabilities(t *testing.T) {
	e := newEnv(t)
	script := "id; grep -E 'Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs' /proc/self/status; umask; pwd"
	umask := uint32(0o077)
	out, code := e.mustRun("caps", sh(script), func(s *specs.Spec) {
		s.Process.User = specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{2000, 2001}, Umask: &umask}
		c := []string{"CAP_NET_BIND_SERVICE", "CAP_KILL"}
		s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: c, Effective: c, Permitted: c, Inheritable: c, Ambient: []string{"CAP_NET_BIND_SERVICE"}}
		s.Process.Cwd = "/tmp"
	})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	// Not root and no file caps: after execve only the ambient set
	// survives into permitted and effective (capabilities(7)).
	for _, want := range []string{"uid=1000 gid=1001 groups=2000,2001", "CapInh:\t0000000000000420", "CapPrm:\t0000000000000400",
		"CapEff:\t0000000000000400", "CapBnd:\t0000000000000420", "CapAmb:\t0000000000000400", "NoNewPrivs:\t1", "0077", "/tmp"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	// Root with the default set: effective = the spec's three.
	out, _ = e.mustRun("rootcaps", sh("grep CapEff /proc/self/status"), nil)
	if !strings.Contains(out, "CapEff:\t0000000020000420") {
		t.Errorf("root caps: %s", out)
	}
}

func TestRlimits(t *testing.T) {
	e := newEnv(t)
	var host unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &host); err != nil {
		t.Fatal(err)
	}
	out, code := e.mustRun("rlimit", sh("ulimit -n; ulimit -Hn; ulimit -c"), func(s *specs.Spec) {
		s.Process.Rlimits = []specs.POSIXRlimit{
			{Type: "RLIMIT_NOFILE", Soft: 512, Hard: host.Max}, // hard as it is: allowed without CAP_SYS_RESOURCE
			{Type: "RLIMIT_CORE", Soft: 0, Hard: 0},
		}
	})
	want := "512\n" + strconv.FormatUint(host.Max, 10) + "\n0\n"
	if code != 0 || out != want {
		t.Fatalf("exit %d, got %q want %q", code, out, want)
	}
}

func TestPauseResumeAndKillAll(t *testing.T) {
	e := newEnv(t)
	id := e.start("pause", sh("sleep 60 & sleep 60 & wait"), func(s *specs.Spec) {
		s.Linux.CgroupsPath = "/berth-test/pause-" + strconv.Itoa(os.Getpid())
	})
	if err := e.r.Pause(id); err != nil {
		t.Fatal(err)
	}
	if st := e.status(id); st != StatePaused {
		t.Fatalf("after pause: %s", st)
	}
	s, _ := e.r.State(id)
	if data, _ := os.ReadFile("/sys/fs/cgroup/freezer/berth-test/pause-" + strconv.Itoa(os.Getpid()) + "/freezer.state"); strings.TrimSpace(string(data)) != "FROZEN" {
		t.Fatalf("freezer state %q", data)
	}
	if err := e.r.Resume(id); err != nil {
		t.Fatal(err)
	}
	limit := int64(50)
	if err := e.r.Update(id, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &limit}}); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile("/sys/fs/cgroup/pids/berth-test/pause-" + strconv.Itoa(os.Getpid()) + "/pids.max"); strings.TrimSpace(string(data)) != "50" {
		t.Fatalf("pids.max after update: %q", data)
	}
	if st := e.status(id); st != specs.StateRunning {
		t.Fatalf("after resume: %s", st)
	}
	// The shell forks its sleeps in its own time: wait for them.
	var pids []int
	for deadline := time.Now().Add(10 * time.Second); len(pids) < 3 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		pids, _ = e.r.Ps(id)
	}
	if len(pids) != 3 {
		t.Fatalf("ps: %v, want init and two sleeps", pids)
	}
	if err := e.r.Kill(id, unix.SIGKILL, true); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(id, specs.StateStopped)
	_ = s
	if err := e.r.Delete(id, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/berth-test/pause-" + strconv.Itoa(os.Getpid())); !os.IsNotExist(err) {
		t.Fatalf("cgroup left behind: %v", err)
	}
}

// delete --force after the init was SIGKILLed from outside: the container
// reads as stopped and everything of it goes.
func TestDeleteAfterAbruptDeath(t *testing.T) {
	e := newEnv(t)
	cg := "/berth-test/abrupt-" + strconv.Itoa(os.Getpid())
	id := e.start("abrupt", []string{"sleep", "60"}, func(s *specs.Spec) { s.Linux.CgroupsPath = cg })
	s, _ := e.r.State(id)
	if err := unix.Kill(s.Pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(id, specs.StateStopped)
	if err := e.r.Delete(id, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/sys/fs/cgroup/pids" + cg); !os.IsNotExist(err) {
		t.Fatalf("cgroup left behind: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.r.Root, id)); !os.IsNotExist(err) {
		t.Fatal("state left behind")
	}
}

func TestExec(t *testing.T) {
	e := newEnv(t)
	cg := "/berth-test/exec-" + strconv.Itoa(os.Getpid())
	id := e.start("exec", []string{"sleep", "60"}, func(s *specs.Spec) { s.Linux.CgroupsPath = cg })
	base, err := e.r.Process(id)
	if err != nil {
		t.Fatal(err)
	}
	p := *base
	p.Args = []string{"sh", "-c", "cat /proc/1/cmdline; echo; hostname; id -u; pwd; echo $FOO; echo procs=$(wc -l < /sys/fs/cgroup/pids/cgroup.procs); grep CapEff /proc/self/status; ls /proc/self/fd"}
	p.Env = append(p.Env, "FOO=bar")
	p.Cwd = "/etc"
	p.User = specs.User{UID: 65534, GID: 65534}
	out, code, err := e.execOut(id, &p)
	if err != nil || code != 0 {
		t.Fatalf("exec: %v, exit %d: %s", err, code, out)
	}
	// The cgroup mount shows the container's cgroup: init, sh and wc.
	for _, want := range []string{"sleep\x0060", "berth", "65534", "/etc", "bar", "procs=3", "CapEff:\t0000000000000000"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	p.Args = []string{"sh", "-c", "exit 7"}
	if _, code, err := e.execOut(id, &p); err != nil || code != 7 {
		t.Fatalf("exit status through exec: %d %v", code, err)
	}
	p.Args = []string{"nope"}
	if _, _, err := e.execOut(id, &p); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("exec of a missing program: %v", err)
	}
}

func TestBadBundles(t *testing.T) {
	e := newEnv(t)
	cg := "/berth-test/bad-" + strconv.Itoa(os.Getpid())
	cases := []struct {
		name, want string
		edit       func(dir string)
	}{
		{"missing-rootfs", "rootfs", func(dir string) {
			e.rewrite(dir, func(s *specs.Spec) { s.Root.Path = filepath.Join(dir, "nope") })
		}},
		{"malformed", "malformed config.json", func(dir string) {
			os.WriteFile(filepath.Join(dir, "config.json"), []byte("{\"ociVersion\": \"1.0.0\",\n \"process\": {"), 0o644)
		}},
		{"unknown-ns", `unknown namespace type "bogus"`, func(dir string) {
			e.rewrite(dir, func(s *specs.Spec) {
				s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "bogus"})
			})
		}},
		{"wrong-ns-kind", "namespace user path /proc/self/ns/net: it is another kind of namespace", func(dir string) {
			e.rewrite(dir, func(s *specs.Spec) {
				s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: "/proc/self/ns/net"})
			})
		}},
		{"not-a-ns", "namespace network path /etc/hostname: not a namespace", func(dir string) {
			e.rewrite(dir, func(s *specs.Spec) {
				for i := range s.Linux.Namespaces {
					if s.Linux.Namespaces[i].Type == specs.NetworkNamespace {
						s.Linux.Namespaces[i].Path = "/etc/hostname"
					}
				}
			})
		}},
		{"version", `unsupported ociVersion "2.0.0"`, func(dir string) {
			e.rewrite(dir, func(s *specs.Spec) { s.Version = "2.0.0" })
		}},
		{"no-config", "config.json not found", func(dir string) { os.Remove(filepath.Join(dir, "config.json")) }},
		{"uid-minus-one", "4294967295 is no id", func(dir string) {
			e.rewrite(dir, func(s *specs.Spec) { s.Process.User.UID = 1<<32 - 1 })
		}},
		{"gid-minus-one", "4294967295 is no id", func(dir string) {
			e.rewrite(dir, func(s *specs.Spec) { s.Process.User.GID = 1<<32 - 1 })
		}},
		{"bad-resources", "cpuset", func(dir string) {
			e.rewrite(dir, func(s *specs.Spec) { s.Linux.Resources.CPU = &specs.LinuxCPU{Cpus: "999"} })
		}},
		{"bad-mount", "mount", func(dir string) {
			e.rewrite(dir, func(s *specs.Spec) {
				s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Type: "bind", Source: "/no/such/source"})
			})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := e.bundle("", []string{"true"}, func(s *specs.Spec) { s.Linux.CgroupsPath = cg })
			c.edit(dir)
			err := e.r.Create(e.id(c.name), CreateOpts{Bundle: dir})
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want one line containing %q", err, c.want)
			}
			ents, _ := os.ReadDir(e.r.Root)
			if len(ents) != 0 {
				t.Fatalf("state left behind: %v", ents)
			}
			if _, err := os.Stat("/sys/fs/cgroup/pids" + cg); !os.IsNotExist(err) {
				t.Fatalf("cgroup left behind")
			}
		})
	}
}

func (e *testEnv) rewrite(dir string, edit func(*specs.Spec)) {
	s, _, _, err := loadBundle(dir)
	if err != nil {
		e.t.Fatal(err)
	}
	edit(s)
	data, _ := json.Marshal(s)
	os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644)
}

// The default spec's only resource is a deny-all device rule: berth
// enforces it without a cgroup, by nodev mounts; a device node shipped in
// the image must stay unusable, the ones berth makes must work.
func TestDevicePolicyWithoutCgroup(t *testing.T) {
	e := newEnv(t)
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := fixture.Busybox(rootfs); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(rootfs, "imagenull"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	id := e.id("nodev")
	b := e.bundle(rootfs, sh("echo x > /dev/null && echo devnull-ok; echo x > /imagenull && echo imagenode-open; mknod /n c 1 3 && echo mknod-ok; true"), func(s *specs.Spec) {
		s.Root.Readonly = false
	})
	s, _, _, _ := loadBundle(b)
	if needCgroup(s) {
		t.Fatal("default spec without limits should not need a cgroup")
	}
	out, code, err := e.run(id, b)
	if err != nil || code != 0 {
		t.Fatalf("run: %v %d %s", err, code, out)
	}
	if !strings.Contains(out, "devnull-ok") || strings.Contains(out, "imagenode-open") || strings.Contains(out, "mknod-ok") {
		t.Fatalf("device policy: %s", out)
	}
	// With CAP_MKNOD the rule needs the devices cgroup.
	s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_MKNOD")
	if !needCgroup(s) {
		t.Fatal("CAP_MKNOD must bring the devices cgroup back")
	}
}

func TestHooks(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	hook := func(name string) specs.Hook {
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "cat > " + filepath.Join(dir, name)}}
	}
	id := e.id("hooks")
	out, code, err := e.run(id, e.bundle("", sh("cat /started"), func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{
			CreateRuntime:   []specs.Hook{hook("createRuntime")},
			CreateContainer: []specs.Hook{hook("createContainer")},
			// In the container: its /bin/sh, its /tmp.
			StartContainer: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "cat > /started"}}},
			Poststart:      []specs.Hook{hook("poststart")},
			Poststop:       []specs.Hook{hook("poststop")},
		}
		s.Root.Readonly = false
	}))
	if err != nil || code != 0 {
		t.Fatalf("run: %v, exit %d: %s", err, code, out)
	}
	if !strings.Contains(out, `"status":"running"`) || !strings.Contains(out, id) {
		t.Errorf("startContainer hook state: %s", out)
	}
	for name, status := range map[string]string{"createRuntime": "creating", "createContainer": "creating", "poststart": "running", "poststop": "stopped"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s hook did not run: %v", name, err)
			continue
		}
		var s specs.State
		if err := json.Unmarshal(data, &s); err != nil || s.ID != id || string(s.Status) != status {
			t.Errorf("%s hook got state %s (%v), want status %s", name, data, err, status)
		}
	}
	// A failing createRuntime hook fails create and leaves nothing.
	_, _, err = e.run(e.id("hookfail"), e.bundle("", []string{"true"}, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/false"}}}
	}))
	if err == nil || !strings.Contains(err.Error(), "/bin/false") {
		t.Fatalf("failing hook: %v", err)
	}
	if ents, _ := os.ReadDir(e.r.Root); len(ents) != 0 {
		t.Fatalf("state left after a failed hook: %v", ents)
	}
}

func TestNoPivotAndPropagation(t *testing.T) {
	e := newEnv(t)
	for _, prop := range []string{"private", "rslave", "rshared"} {
		b := e.bundle("", sh("awk '$5==\"/\"' /proc/self/mountinfo; echo ok"), func(s *specs.Spec) { s.Linux.RootfsPropagation = prop })
		id := e.id("prop-" + prop)
		rd, wr, _ := os.Pipe()
		code, err := e.r.Run(id, CreateOpts{Bundle: b, NoPivot: prop == "private", Stdio: []*os.File{nil, wr, wr}})
		wr.Close()
		data, _ := io.ReadAll(rd)
		rd.Close()
		out := string(data)
		if err != nil || code != 0 || !strings.Contains(out, "ok") {
			t.Fatalf("%s: %v %d %s", prop, err, code, out)
		}
		if prop == "rshared" && !strings.Contains(out, "shared:") {
			t.Errorf("rshared root is not shared: %s", out)
		}
		// (slave of a host root that is not shared shows no master)
		if prop != "rshared" && strings.Contains(out, "shared:") {
			t.Errorf("rslave root: %s", out)
		}
	}
}

// With process.terminal the init gets a pty from the container's devpts,
// sends the master over --console-socket, and runs on the slave.
func TestTerminal(t *testing.T) {
	e := newEnv(t)
	sock := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	masterc := make(chan *os.File, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			masterc <- nil
			return
		}
		defer c.Close()
		uc := c.(*net.UnixConn)
		buf, oob := make([]byte, 64), make([]byte, 64)
		_, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
		if err != nil {
			masterc <- nil
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		fds, _ := unix.ParseUnixRights(&msgs[0])
		masterc <- os.NewFile(uintptr(fds[0]), "master")
	}()
	id := e.id("tty")
	b := e.bundle("", sh("tty; readlink /proc/self/fd/0; test -c /dev/console && echo console"), func(s *specs.Spec) { s.Process.Terminal = true })
	if err := e.r.Create(id, CreateOpts{Bundle: b, ConsoleSocket: sock}); err != nil {
		t.Fatal(err)
	}
	master := <-masterc
	if master == nil {
		t.Fatal("no pty master received")
	}
	defer master.Close()
	if err := e.r.Start(id); err != nil {
		t.Fatal(err)
	}
	var out []byte
	buf := make([]byte, 1024)
	for !strings.Contains(string(out), "console") {
		master.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := master.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			break
		}
	}
	if !strings.Contains(string(out), "/dev/pts/0") || !strings.Contains(string(out), "console") {
		t.Fatalf("terminal output: %q", out)
	}
}

// exec into a container with its own user namespace goes through nsenter
// and lands as the namespace's root, in all the container's namespaces.
func TestExecUserNamespace(t *testing.T) {
	fixture.RequireBinary(t, "nsenter", "util-linux")
	requireStaticTestBinary(t)
	e := newEnv(t)
	id := e.start("execuserns", []string{"sleep", "60"}, func(s *specs.Spec) {
		withUserNS(s)
		s.Linux.CgroupsPath = "/berth-test/execuserns-" + strconv.Itoa(os.Getpid())
	})
	st, _ := e.r.State(id)
	want := nsLinks(t, strconv.Itoa(st.Pid))
	base, err := e.r.Process(id)
	if err != nil {
		t.Fatal(err)
	}
	p := *base
	p.Args = []string{"sh", "-c", "id -u; cat /proc/self/uid_map; cat /proc/1/cmdline; echo; for n in user mnt pid net; do readlink /proc/self/ns/$n; done; echo procs=$(wc -l < /sys/fs/cgroup/pids/cgroup.procs)"}
	out, code, err := e.execOut(id, &p)
	if err != nil || code != 0 {
		t.Fatalf("exec: %v, exit %d: %s", err, code, out)
	}
	if !strings.HasPrefix(out, "0\n") || !strings.Contains(out, "100000") || !strings.Contains(out, "sleep\x0060") {
		t.Fatalf("exec in user namespace: %s", out)
	}
	for _, n := range []string{"user", "mnt", "pid", "net"} {
		if !strings.Contains(out, want[n]) {
			t.Errorf("%s namespace not the container's (%s): %s", n, want[n], out)
		}
	}
	// init, sh and wc share the container's cgroup.
	if !strings.HasSuffix(out, "procs=3") {
		t.Errorf("exec'd process not in the container's cgroup: %s", out)
	}
}

// An ignored signal survives execve: a berth started under nohup (or by a
// harness that ignores signals) must still give the container default
// dispositions, as runc does.
func TestIgnoredSignalsReset(t *testing.T) {
	e := newEnv(t)
	signal.Ignore(syscall.SIGHUP)
	defer signal.Reset(syscall.SIGHUP)
	out, code := e.mustRun("sigign", sh("grep SigIgn /proc/self/status | cat"), nil)
	if code != 0 || out != "SigIgn:\t0000000000000000\n" {
		t.Fatalf("exit %d, %q: the container inherited ignored signals", code, out)
	}
}

// A container started by Run is not seen before its process is the user's:
// a concurrent State waits (Run holds the lock from create through start),
// so "running" never names a pid that is still berth's init.
func TestRunNotSeenDuringSetup(t *testing.T) {
	e := newEnv(t)
	self, err := os.Stat("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	b := e.bundle("", []string{"/bin/true"}, nil)
	seen := 0
	for i := 0; i < 40; i++ {
		id := e.id("setup-" + strconv.Itoa(i))
		done := make(chan error, 1)
		go func() {
			_, err := e.r.Run(id, CreateOpts{Bundle: b, Stdio: []*os.File{nil, nil, nil}})
			done <- err
		}()
	poll:
		for {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				break poll
			default:
			}
			st, err := e.r.State(id)
			if err != nil || st.Status != specs.StateRunning {
				continue
			}
			seen++
			if exe, err := os.Stat("/proc/" + strconv.Itoa(st.Pid) + "/exe"); err == nil && os.SameFile(exe, self) {
				t.Fatalf("state says running while pid %d is still berth's init", st.Pid)
			}
		}
	}
	if seen == 0 {
		t.Fatal("no run was ever seen running: the test tested nothing")
	}
}

// linux.mountLabel on a host without SELinux is ignored, as under runc: the
// container starts and its tmpfs mounts carry no context option.
func TestMountLabelWithoutSELinux(t *testing.T) {
	e := newEnv(t)
	var fs unix.Statfs_t
	if unix.Statfs("/sys/fs/selinux", &fs) == nil && fs.Type == unix.SELINUX_MAGIC {
		t.Skip("SELinux is enabled here: the label would be applied")
	}
	out, code := e.mustRun("mountlabel", sh("echo $(grep -c context= /proc/self/mountinfo) $(grep -c ' - tmpfs ' /proc/self/mountinfo)"), func(s *specs.Spec) {
		s.Linux.MountLabel = "system_u:object_r:container_file_t:s0:c1,c2"
	})
	if f := strings.Fields(out); code != 0 || len(f) != 2 || f[0] != "0" || f[1] == "0" {
		t.Fatalf("exit %d: want no context= option on some tmpfs mounts, got %q", code, out)
	}
}
