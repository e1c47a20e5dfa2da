package runtime

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/fixture"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The runtime re-executes /proc/self/exe (this test binary) as the
// container init, as it does berth; initproc's init function runs it.
func TestMain(m *testing.M) {
	code := m.Run()
	if sharedRootfs != "" {
		os.RemoveAll(filepath.Dir(sharedRootfs))
	}
	os.Exit(code)
}

var (
	sharedRootfsOnce sync.Once
	sharedRootfs     string
	sharedRootfsErr  error
)

// busyboxRootfs is one busybox rootfs shared by the tests that do not
// change it (the runtime only adds mountpoints to it).
func busyboxRootfs(t *testing.T) string {
	t.Helper()
	sharedRootfsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-rt-rootfs-")
		if err != nil {
			sharedRootfsErr = err
			return
		}
		// Readable by a user namespace's root (an unmapped host uid).
		if sharedRootfsErr = os.Chmod(dir, 0o755); sharedRootfsErr != nil {
			return
		}
		sharedRootfs = filepath.Join(dir, "rootfs")
		sharedRootfsErr = fixture.Busybox(sharedRootfs)
	})
	if sharedRootfsErr != nil {
		t.Fatal(sharedRootfsErr)
	}
	return sharedRootfs
}

// requireStaticTestBinary skips a test that runs the init (this test
// binary) from inside the container's mount namespace, where the host's
// dynamic loader is not.
func requireStaticTestBinary(t *testing.T) {
	t.Helper()
	if exe, _ := os.ReadFile("/proc/self/exe"); strings.Contains(string(exe[:min(len(exe), 4096)]), "/lib64/ld-linux") {
		t.Skip("test binary is dynamically linked: build with CGO_ENABLED=0 (make test does)")
	}
}

// testEnv is a runtime with its own state root, removing every container
// it made at the end.
type testEnv struct {
	t *testing.T
	r *Runtime
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	fixture.RequireRoot(t)
	e := &testEnv{t: t, r: New(t.TempDir())}
	t.Cleanup(func() {
		states, _ := e.r.List()
		for _, s := range states {
			_ = e.r.Delete(s.ID, true)
		}
		// The parent of the tests' cgroupsPaths, once no test uses it.
		hs, _ := filepath.Glob("/sys/fs/cgroup/*/berth-test")
		for _, h := range hs {
			_ = os.Remove(h)
		}
	})
	return e
}

// bundle writes a bundle running args on the shared rootfs (or rootfs if
// given), with the default spec changed by edit.
func (e *testEnv) bundle(rootfs string, args []string, edit func(*specs.Spec)) string {
	e.t.Helper()
	if rootfs == "" {
		rootfs = busyboxRootfs(e.t)
	}
	dir := e.t.TempDir()
	s := DefaultSpec(false)
	s.Root.Path = rootfs
	s.Process.Terminal = false
	s.Process.Args = args
	if edit != nil {
		edit(s)
	}
	data, err := json.Marshal(s)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		e.t.Fatal(err)
	}
	return dir
}

// withUserNS gives a spec a new user namespace, its root host uid and
// gid 100000 (65536 ids).
func withUserNS(s *specs.Spec) {
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
}

// id makes a container id unique to this test and process.
func (e *testEnv) id(s string) string {
	return fmt.Sprintf("%s-%d", s, os.Getpid())
}

// run runs the bundle to completion and returns its output and status.
func (e *testEnv) run(id, bundle string) (string, int, error) {
	e.t.Helper()
	return e.capture(func(stdio []*os.File) (int, error) {
		return e.r.Run(id, CreateOpts{Bundle: bundle, Stdio: stdio})
	})
}

// capture runs f with stdout and stderr on one pipe and returns what came
// through it with f's status.
func (e *testEnv) capture(f func(stdio []*os.File) (int, error)) (string, int, error) {
	rd, wr, err := os.Pipe()
	if err != nil {
		e.t.Fatal(err)
	}
	var out []byte
	done := make(chan struct{})
	go func() { out, _ = io.ReadAll(rd); close(done) }()
	code, err := f([]*os.File{nil, wr, wr})
	wr.Close()
	<-done
	rd.Close()
	return string(out), code, err
}

// mustRun is run that fails the test on a runtime error.
func (e *testEnv) mustRun(name string, args []string, edit func(*specs.Spec)) (string, int) {
	e.t.Helper()
	out, code, err := e.run(e.id(name), e.bundle("", args, edit))
	if err != nil {
		e.t.Fatalf("run %v: %v", args, err)
	}
	return out, code
}

// start creates and starts a long-running container and returns its id.
func (e *testEnv) start(name string, args []string, edit func(*specs.Spec)) string {
	e.t.Helper()
	id := e.id(name)
	devnull, _ := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	defer devnull.Close()
	if err := e.r.Create(id, CreateOpts{Bundle: e.bundle("", args, edit), Stdio: []*os.File{devnull, devnull, devnull}}); err != nil {
		e.t.Fatalf("create: %v", err)
	}
	if err := e.r.Start(id); err != nil {
		e.t.Fatalf("start: %v", err)
	}
	return id
}

func (e *testEnv) status(id string) specs.ContainerState {
	e.t.Helper()
	s, err := e.r.State(id)
	if err != nil {
		e.t.Fatalf("state %s: %v", id, err)
	}
	return s.Status
}

// waitStatus polls until id reaches want (a process takes a moment to
// die and be reaped).
func (e *testEnv) waitStatus(id string, want specs.ContainerState) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if e.status(id) == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("container %s: status %s, want %s", id, e.status(id), want)
}

// execOut runs args in container id and returns output and status.
func (e *testEnv) execOut(id string, p *specs.Process) (string, int, error) {
	e.t.Helper()
	out, code, err := e.capture(func(stdio []*os.File) (int, error) {
		return e.r.Exec(id, p, ExecOpts{Stdio: stdio})
	})
	return strings.TrimSpace(out), code, err
}
