package runtime_test

// Attacks found in an audit of the runtime, each tried from a container
// (or with a bundle) and checked to fail. Like runtime_security_test.go
// they run the built berth binary, or BERTH_TEST_RUNTIME (runc) to check
// the tests themselves.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/fixture"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// detach runs the bundle's container in the background (run -d) and
// deletes it when the test ends.
func (e *secEnv) detach(t *testing.T, dir, id string) {
	t.Helper()
	if err := e.tryDetach(t, dir, id); err != nil {
		t.Fatal(err)
	}
}

func (e *secEnv) tryDetach(t *testing.T, dir, id string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A detached container keeps its stdio: a file, not a pipe that would
	// hold run until the container ends.
	logf, err := os.Create(filepath.Join(dir, "run.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	run := e.cli(ctx, "run", "-d", "--bundle", dir, id)
	run.Stdout, run.Stderr = logf, logf
	if err := run.Run(); err != nil {
		log, _ := os.ReadFile(logf.Name())
		return fmt.Errorf("run -d: %v: %s", err, log)
	}
	t.Cleanup(func() { e.cli(context.Background(), "delete", "--force", id).Run() })
	return nil
}

// execOut runs `exec args...` and returns its combined output and error.
func (e *secEnv) execOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := e.cli(ctx, append([]string{"exec"}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("exec %v timed out: %s", args, out)
	}
	return string(out), err
}

var capBnd = regexp.MustCompile(`CapBnd:\s*([0-9a-f]+)`)

func TestAudit(t *testing.T) {
	e := newSecEnv(t)

	t.Run("ExecWithoutMountNamespaceStaysInRootfs", func(t *testing.T) {
		// A container without a mount namespace is only chrooted into its
		// rootfs. An exec'd process that joined "its" mount namespace (the
		// host's) without the chroot would see and write the host's files.
		dir, id := e.bundle(t, func(s *specs.Spec) {
			var ns []specs.LinuxNamespace
			for _, n := range s.Linux.Namespaces {
				if n.Type != specs.MountNamespace {
					ns = append(ns, n)
				}
			}
			s.Linux.Namespaces = ns
			s.Mounts, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil, nil
			s.Root.Readonly = false
			s.Process.Args = []string{"sleep", "60"}
		})
		if err := e.tryDetach(t, dir, id); err != nil {
			fixture.UnmountUnder(dir) // runc's failed start leaves its rootfs bind on the host
			t.Skipf("the runtime does not run a container without a mount namespace (runc needs /proc): %v", err)
		}
		// e.tmp exists on the host, not in the rootfs; /probe only there.
		out, err := e.execOut(t, id, "/bin/sh", "-c", "test -e "+e.tmp+" && echo HOST-VISIBLE; test -e /probe && echo IN-ROOTFS")
		if strings.Contains(out, "HOST-VISIBLE") {
			t.Fatalf("the exec'd process sees the host's filesystem (%s exists): %q", e.tmp, out)
		}
		if err == nil && !strings.Contains(out, "IN-ROOTFS") {
			t.Fatalf("exec ran, but not in the container's rootfs: %q", out)
		}
	})

	t.Run("ExecWithoutCapabilitiesGetsTheContainers", func(t *testing.T) {
		// A process.json that names no capabilities must not run with all
		// of the runtime's: it gets the container's, as under runc.
		dir, id := e.bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sleep", "60"} })
		e.detach(t, dir, id)
		proc := filepath.Join(dir, "process.json")
		if err := os.WriteFile(proc, []byte(`{"args":["/bin/grep","CapBnd","/proc/self/status","/proc/1/status"],"cwd":"/","user":{"uid":0,"gid":0}}`), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := e.execOut(t, "-p", proc, id)
		if err != nil {
			t.Fatalf("exec -p: %v: %s", err, out)
		}
		m := capBnd.FindAllStringSubmatch(out, -1)
		if len(m) != 2 {
			t.Fatalf("no CapBnd lines: %q", out)
		}
		if m[0][1] != m[1][1] {
			t.Fatalf("exec'd process has bounding set %s, the container's init %s", m[0][1], m[1][1])
		}
	})

	t.Run("ExecCannotReachHostDevices", func(t *testing.T) {
		// Without resource limits berth keeps devices out of reach with
		// nodev mounts and no CAP_MKNOD, not a device cgroup. A process
		// exec'd with CAP_MKNOD could make a host node in the /dev tmpfs
		// (not nodev) and open it; under runc the device cgroup stops it.
		dir, id := e.bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"sleep", "60"} })
		e.detach(t, dir, id)
		out, _ := e.execOut(t, "--cap", "CAP_MKNOD", id, "/bin/sh", "-c",
			"mknod /dev/lc c 10 237 && echo MADE; : < /dev/lc && echo HOSTDEV-OPEN")
		if strings.Contains(out, "HOSTDEV-OPEN") {
			t.Fatalf("a process exec'd with CAP_MKNOD opened a host device: %q", out)
		}
		// Without CAP_MKNOD exec still works.
		if out, err := e.execOut(t, "--cap", "CAP_CHOWN", id, "/bin/true"); err != nil {
			t.Fatalf("exec --cap CAP_CHOWN: %v: %s", err, out)
		}
	})

	t.Run("WritableCgroupMountShowsOnlyItsOwnCgroup", func(t *testing.T) {
		// A rw cgroup mount shows the container's own cgroup. Without
		// resource limits berth made none, and the mount showed berth's:
		// here the host's root, with every other cgroup writable below it.
		hier := "/sys/fs/cgroup/pids"
		if _, err := os.Stat(filepath.Join(hier, "cgroup.procs")); err != nil {
			t.Skip("needs the cgroup v1 pids hierarchy at", hier)
		}
		name := "berth-audit-victim-" + strconv.Itoa(os.Getpid())
		victim := filepath.Join(hier, name)
		if err := os.Mkdir(victim, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(victim) })
		if err := os.WriteFile(filepath.Join(victim, "pids.max"), []byte("7"), 0); err != nil {
			t.Fatal(err)
		}
		for _, cgns := range []bool{false, true} {
			r := e.run(t, func(s *specs.Spec) {
				s.Linux.Resources = nil
				var ns []specs.LinuxNamespace
				for _, n := range s.Linux.Namespaces {
					if n.Type != specs.CgroupNamespace {
						ns = append(ns, n)
					}
				}
				if cgns {
					ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
				}
				s.Linux.Namespaces = ns
				for i := range s.Mounts {
					if s.Mounts[i].Type == "cgroup" {
						s.Mounts[i].Options = []string{"nosuid", "noexec", "nodev"}
					}
				}
			}, sh("ls /sys/fs/cgroup/pids >/dev/null && echo MOUNTED; echo max > /sys/fs/cgroup/pids/"+name+"/pids.max && echo WROTE")...)
			if !strings.Contains(r.out, "MOUNTED") {
				t.Fatalf("cgroupns %v: no pids hierarchy in the container: %q %q", cgns, r.out, r.err)
			}
			got, err := os.ReadFile(filepath.Join(victim, "pids.max"))
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(string(got)) != "7" || strings.Contains(r.out, "WROTE") {
				t.Fatalf("cgroupns %v: the container rewrote a host cgroup's pids.max (now %q): %q", cgns, got, r.out)
			}
		}
	})

	t.Run("HostSysctlsRefused", func(t *testing.T) {
		// The init writes linux.sysctl as host root: a sysctl no namespace
		// of the container's confines (vm.*, kernel.core_pattern, or net.*
		// in the host's network namespace) would change the host. Each is
		// set to the host's current value, harmless should it get through.
		host := func(p string) string {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(b))
		}
		hostNet := "/proc/" + strconv.Itoa(os.Getpid()) + "/ns/net"
		for _, c := range []struct {
			key, file   string
			joinHostNet bool
		}{
			{"vm.stat_interval", "/proc/sys/vm/stat_interval", false},
			{"kernel/core_pattern", "/proc/sys/kernel/core_pattern", false},
			{"net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward", true},
		} {
			r := e.run(t, func(s *specs.Spec) {
				s.Linux.Sysctl = map[string]string{c.key: host(c.file)}
				if c.joinHostNet {
					for i := range s.Linux.Namespaces {
						if s.Linux.Namespaces[i].Type == specs.NetworkNamespace {
							s.Linux.Namespaces[i].Path = hostNet
						}
					}
				}
			}, "/bin/echo", "RAN")
			if r.code == 0 || strings.Contains(r.out, "RAN") {
				t.Errorf("sysctl %s (host network namespace %v) was set: exit %d, %q", c.key, c.joinHostNet, r.code, r.out)
			}
		}
		// One of the container's own namespaces is fine.
		r := e.run(t, func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "123456"}
		}, "/bin/cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/shmmax")
		if r.code != 0 || r.out != "1\n123456\n" {
			t.Fatalf("namespaced sysctls: exit %d, %q %q", r.code, r.out, r.err)
		}
	})

	t.Run("MaskBindsOnlyTheNullDevice", func(t *testing.T) {
		// CVE-2025-31133: masked files are covered with a bind of the
		// container's /dev/null. Whatever shares that /dev (another
		// container with the same rootfs or a /dev volume) can swap the node
		// for a symlink between its making and the masking, and have the
		// runtime bind the link's target instead. A createContainer hook
		// stands in for that racer: it runs in the container's mount
		// namespace after the nodes are made.
		dir, id := e.bundle(t, nil)
		rootfs := filepath.Join(dir, "rootfs")
		if err := os.WriteFile(filepath.Join(rootfs, "target"), []byte("REDIRECTED\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rootfs, "masked"), []byte("SECRET\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		hook := filepath.Join(dir, "swap-null")
		script := "#!/bin/sh\nrm -f " + rootfs + "/dev/null && ln -s /target " + rootfs + "/dev/null\n"
		if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		e.rewriteSpec(t, dir, func(s *specs.Spec) {
			s.Process.Args = []string{"/bin/cat", "/masked"}
			s.Linux.MaskedPaths = []string{"/masked"}
			s.Hooks = &specs.Hooks{CreateContainer: []specs.Hook{{Path: hook}}}
		})
		r := e.runBundle(t, dir, id)
		if strings.Contains(r.out, "REDIRECTED") || strings.Contains(r.out, "SECRET") {
			t.Fatalf("masked path shows %q (exit %d, %s)", r.out, r.code, r.err)
		}
	})

	t.Run("NoMountInsideProc", func(t *testing.T) {
		// A symlink in the image sends a volume to /proc/sys/kernel: the
		// init would write kernel.* sysctls into files of the volume's
		// choosing (or where its symlinks point, in the container's /proc),
		// and the container would not see its own. runc refuses it too.
		vol := filepath.Join(e.tmp, "proc-vol")
		if err := os.MkdirAll(vol, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(vol, "from-the-volume"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		dir, id := e.bundle(t, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: vol, Options: []string{"rbind"}})
			s.Process.Args = []string{"/bin/ls", "/proc/sys/kernel"}
		})
		if err := os.Symlink("/proc/sys/kernel", filepath.Join(dir, "rootfs/data")); err != nil {
			t.Fatal(err)
		}
		r := e.runBundle(t, dir, id)
		if strings.Contains(r.out, "from-the-volume") {
			t.Fatalf("the volume covers /proc/sys/kernel: %q", r.out)
		}
		// An lxcfs-style bind over a /proc file stays allowed.
		file := filepath.Join(vol, "meminfo")
		if err := os.WriteFile(file, []byte("MemTotal: 1 kB\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		r = e.run(t, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/proc/meminfo", Type: "bind", Source: file, Options: []string{"bind"}})
		}, "/bin/cat", "/proc/meminfo")
		if r.code != 0 || r.out != "MemTotal: 1 kB\n" {
			t.Fatalf("bind over /proc/meminfo: exit %d, %q %q", r.code, r.out, r.err)
		}
	})

	t.Run("ExecIntoUserNamespaceNotHijacked", func(t *testing.T) {
		// Exec into a container with its own user namespace goes through
		// nsenter, which then execs the runtime by a /proc/self/fd path.
		// Resolved in the container's /proc, that path is the container's
		// to fake: its root has CAP_SYS_ADMIN in its user namespace and can
		// cover /proc with a tmpfs holding a program of its own, which the
		// next exec would run instead, outside the container's seccomp and
		// capabilities, with the exec's stdio and the runtime's socket.
		fixture.RequireBinary(t, "nsenter", "util-linux")
		dir, id := e.bundle(t, func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
			s.Linux.Resources, s.Linux.Seccomp = nil, nil
			c := s.Process.Capabilities
			c.Bounding = append(c.Bounding, "CAP_SYS_ADMIN")
			c.Effective = append(c.Effective, "CAP_SYS_ADMIN")
			c.Permitted = append(c.Permitted, "CAP_SYS_ADMIN")
			s.Root.Readonly = false
			s.Process.Args = sh(`mount -t tmpfs fake /proc || exit 1
mkdir -p /proc/self/fd
for n in $(seq 3 16); do
	printf '#!/bin/sh\necho HIJACKED > /tmp/hijacked\necho HIJACKED\n' > /proc/self/fd/$n
	chmod 755 /proc/self/fd/$n
done
touch /tmp/ready
sleep 60`)
		})
		rootfs := filepath.Join(dir, "rootfs")
		// The container's root (host uid 100000) must reach its rootfs
		// through the test's 0700 temp dirs.
		for _, d := range []string{filepath.Dir(e.tmp), e.tmp, dir} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		e.detach(t, dir, id)
		for i := 0; ; i++ {
			if _, err := os.Stat(filepath.Join(rootfs, "tmp/ready")); err == nil {
				break
			}
			if i > 100 {
				log, _ := os.ReadFile(filepath.Join(dir, "run.log"))
				t.Fatalf("the container did not fake its /proc: %s", log)
			}
			time.Sleep(50 * time.Millisecond)
		}
		out, err := e.execOut(t, id, "/bin/echo", "from-the-exec")
		if _, serr := os.Stat(filepath.Join(rootfs, "tmp/hijacked")); serr == nil || strings.Contains(out, "HIJACKED") {
			t.Fatalf("exec ran the container's program instead of the runtime: %v: %q", err, out)
		}
		// Refusing the exec is safe too (runc does, its /proc being fake).
		if err == nil && out != "from-the-exec\n" {
			t.Fatalf("exec: %q", out)
		}
	})

	t.Run("PidFileNotWrittenThroughSymlink", func(t *testing.T) {
		// The pid file is written to a temporary name beside it, then
		// renamed: whoever can write to that directory (a /tmp) could put
		// a symlink at the temporary name and have root overwrite any file.
		pd := filepath.Join(e.tmp, "piddir")
		if err := os.MkdirAll(pd, 0o1777); err != nil {
			t.Fatal(err)
		}
		victim := filepath.Join(e.tmp, "victim")
		if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
			t.Fatal(err)
		}
		dir, id := e.bundle(t, func(s *specs.Spec) { s.Process.Args = []string{"/bin/true"} })
		pidFile := filepath.Join(pd, id+".pid")
		if err := os.Symlink(victim, filepath.Join(pd, "."+id+".pid.tmp")); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := e.cli(ctx, "run", "--pid-file", pidFile, "--bundle", dir, id).CombinedOutput()
		if err != nil {
			t.Fatalf("run --pid-file: %v: %s", err, out)
		}
		if got, _ := os.ReadFile(victim); string(got) != "precious" {
			t.Fatalf("the file behind the symlink was overwritten with %q", got)
		}
		st, err := os.Lstat(pidFile)
		if err != nil || !st.Mode().IsRegular() {
			t.Fatalf("pid file %s: %v, %v", pidFile, st, err)
		}
	})

	t.Run("ExecInitNeverHasTheHostRoot", func(t *testing.T) {
		// The init exec'd into a running container is in its pid
		// namespace from birth. Had it the host's root (or cwd) until it
		// entered the container's mount namespace, a container process
		// allowed to ptrace it (CAP_SYS_PTRACE) could reach the host's
		// files through /proc/<pid>/root or cwd; runc joins the mount
		// namespace first. With a user namespace nsenter forks the init:
		// the same holds for nsenter's child.
		fixture.RequireBinary(t, "nsenter", "util-linux")
		marker := filepath.Join(e.tmp, "host-only-marker")
		if err := os.MkdirAll(marker, 0o755); err != nil {
			t.Fatal(err)
		}
		// The user namespace's root (host uid 100000) must be able to see
		// the marker, were it to get there.
		for _, d := range []string{filepath.Dir(e.tmp), e.tmp} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, userns := range []bool{false, true} {
			dir, id := e.bundle(t, func(s *specs.Spec) {
				c := s.Process.Capabilities
				c.Bounding = append(c.Bounding, "CAP_SYS_PTRACE")
				c.Effective = append(c.Effective, "CAP_SYS_PTRACE")
				c.Permitted = append(c.Permitted, "CAP_SYS_PTRACE")
				s.Process.Args = []string{"/probe", "rootrace", marker, "/stop-race"}
				if userns {
					s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
					s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
					s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
					s.Linux.Resources = nil
				}
			})
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			e.detach(t, dir, id)
			for i := 0; i < 30; i++ {
				if out, err := e.execOut(t, id, "/bin/true"); err != nil {
					t.Fatalf("user namespace %v: exec: %v: %s", userns, err, out)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "rootfs/stop-race"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			var log []byte
			for i := 0; i < 200 && !strings.Contains(string(log), "rootrace: done"); i++ {
				time.Sleep(50 * time.Millisecond)
				log, _ = os.ReadFile(filepath.Join(dir, "run.log"))
			}
			if !strings.Contains(string(log), "rootrace: done") {
				t.Fatalf("user namespace %v: the racer did not finish: %q", userns, log)
			}
			if strings.Contains(string(log), "ESCAPED") {
				t.Fatalf("user namespace %v: a container process reached the host's files through the exec'd init:\n%s", userns, log)
			}
			t.Logf("user namespace %v: %s", userns, log)
		}
	})

	t.Run("LSMLabelsNotDropped", func(t *testing.T) {
		// A profile or label the spec asks for that cannot be applied (no
		// such profile, or no AppArmor or SELinux on the host) must stop
		// the container, not let it run unconfined.
		for _, edit := range []func(*specs.Process){
			func(p *specs.Process) { p.ApparmorProfile = "berth-audit-no-such-profile" },
			func(p *specs.Process) { p.SelinuxLabel = "system_u:system_r:berth_audit_no_such_t:s0" },
		} {
			r := e.run(t, func(s *specs.Spec) { edit(s.Process) }, "/bin/echo", "RAN")
			if r.code == 0 || strings.Contains(r.out, "RAN") {
				t.Errorf("ran without the profile or label it asked for: exit %d, %q", r.code, r.out)
			}
		}
	})

	t.Run("MaskedPathThroughSymlinkStaysMasked", func(t *testing.T) {
		// Likewise a masked path the image made a symlink.
		dir, id := e.bundle(t, func(s *specs.Spec) {
			s.Linux.MaskedPaths = append(s.Linux.MaskedPaths, "/masklink", "/maskdirlink")
			s.Process.Args = sh("cat /masklink; ls /maskdirlink; echo RAN")
		})
		rootfs := filepath.Join(dir, "rootfs")
		if err := os.WriteFile(filepath.Join(rootfs, "secret"), []byte("SECRET\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(rootfs, "secretdir/SECRET-FILE"), 0o755); err != nil {
			t.Fatal(err)
		}
		for l, target := range map[string]string{"masklink": "/secret", "maskdirlink": "secretdir"} {
			if err := os.Symlink(target, filepath.Join(rootfs, l)); err != nil {
				t.Fatal(err)
			}
		}
		r := e.runBundle(t, dir, id)
		if strings.Contains(r.out, "SECRET") || !strings.Contains(r.out, "RAN") {
			t.Fatalf("masked paths through symlinks: exit %d, %q %q", r.code, r.out, r.err)
		}
	})

	t.Run("ReadonlyPathThroughSymlinkStaysReadonly", func(t *testing.T) {
		// A readonly path the image made a symlink was skipped: what it
		// names stayed writable. runc follows it (inside the root).
		dir, id := e.bundle(t, func(s *specs.Spec) {
			s.Root.Readonly = false
			s.Linux.ReadonlyPaths = append(s.Linux.ReadonlyPaths, "/rolink")
			s.Process.Args = sh("touch /rolink/x && echo WROTE; touch /rw/x && echo RW-OK")
		})
		rootfs := filepath.Join(dir, "rootfs")
		for _, d := range []string{"rodir", "rw"} {
			if err := os.Mkdir(filepath.Join(rootfs, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink("/rodir", filepath.Join(rootfs, "rolink")); err != nil {
			t.Fatal(err)
		}
		r := e.runBundle(t, dir, id)
		if strings.Contains(r.out, "WROTE") {
			t.Fatalf("wrote through a symlinked readonly path: %q %q", r.out, r.err)
		}
		if !strings.Contains(r.out, "RW-OK") {
			t.Fatalf("the container did not run (the rest of its root should be writable): exit %d, %q %q", r.code, r.out, r.err)
		}
	})
}

// rewriteSpec edits the config.json of a bundle made by bundle.
func (e *secEnv) rewriteSpec(t *testing.T, dir string, edit func(*specs.Spec)) {
	t.Helper()
	p := filepath.Join(dir, "config.json")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	edit(&s)
	if raw, err = json.Marshal(&s); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}
