package runtime_test

// containerd interop: Debian's containerd, started on its own socket and
// state directories, runs a busybox image with berth as its runc binary,
// the way a Kubernetes node would use berth.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/fixture"
	"github.com/creack/pty"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ctrd is a containerd of the test's own and the ctr flags that keep
// every file it and its shims make inside the test's directory (as far as
// containerd 1.6 allows: shim sockets always go to /run/containerd/s).
type ctrd struct {
	sock, ns, runcRoot, fifo string
	runtime                  string // the berth-runtime link
}

func (c *ctrd) ctr(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ctr", append([]string{"-a", c.sock, "-n", c.ns}, args...)...)
}

// run is `ctr run` with berth as the runc binary.
func (c *ctrd) run(ctx context.Context, args ...string) *exec.Cmd {
	a := []string{"run", "--runc-binary", c.runtime, "--runc-root", c.runcRoot, "--fifo-dir", c.fifo}
	return c.ctr(ctx, append(a, args...)...)
}

func startContainerd(t *testing.T) *ctrd {
	fixture.RequireRoot(t)
	fixture.RequireBinary(t, "containerd", "containerd")
	fixture.RequireBinary(t, "ctr", "containerd")
	dir := t.TempDir()
	c := &ctrd{
		sock:     filepath.Join(dir, "containerd.sock"),
		ns:       fmt.Sprintf("berth-test-%d", os.Getpid()),
		runcRoot: filepath.Join(dir, "runc-root"),
		fifo:     filepath.Join(dir, "fifo"),
	}
	for _, d := range []string{filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.runcRoot, c.fifo} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	_, err := os.Stat("/run/containerd")
	runExisted := err == nil

	// berth, reached through a link named berth-runtime so that it speaks
	// runc's CLI at top level (BERTH_TEST_RUNTIME: another runc-compatible
	// binary, to check the test itself).
	// make test's berth is used as it ships (its init embedded).
	if b := os.Getenv("BERTH_BIN"); os.Getenv("BERTH_TEST_RUNTIME") == "" && b != "" {
		c.runtime = filepath.Join(dir, "berth-runtime")
		if err := os.Symlink(b, c.runtime); err != nil {
			t.Fatal(err)
		}
	} else if c.runtime = os.Getenv("BERTH_TEST_RUNTIME"); c.runtime == "" {
		bin := filepath.Join(dir, "bin")
		os.MkdirAll(bin, 0o755)
		build := exec.Command("go", "build", "-o", filepath.Join(bin, "berth"), "../cmd/berth")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building berth: %v\n%s", err, out)
		}
		c.runtime = filepath.Join(bin, "berth-runtime")
		if err := os.Symlink("berth", c.runtime); err != nil {
			t.Fatal(err)
		}
	}

	config := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[debug]
  level = "info"
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.sock)
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	d := exec.Command("containerd", "--config", cfg)
	d.Stdout, d.Stderr = logf, logf
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Tasks and containers first, so their shims exit.
		out, _ := c.ctr(ctx, "task", "ls", "-q").Output()
		for _, id := range strings.Fields(string(out)) {
			c.ctr(ctx, "task", "kill", "-s", "SIGKILL", id).Run()
			c.ctr(ctx, "task", "delete", "-f", id).Run()
		}
		out, _ = c.ctr(ctx, "containers", "ls", "-q").Output()
		for _, id := range strings.Fields(string(out)) {
			c.ctr(ctx, "containers", "delete", id).Run()
		}
		d.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { d.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			d.Process.Kill()
			<-done
		}
		logf.Close()
		// Overlay snapshots are unmounted by containerd; make sure.
		fixture.UnmountUnder(dir)
		// The namespace's parent cgroups stay behind in every hierarchy.
		cgs, _ := filepath.Glob("/sys/fs/cgroup/*/" + c.ns)
		for _, cg := range cgs {
			os.Remove(cg)
		}
		if !runExisted {
			os.Remove("/run/containerd/s")
			os.Remove("/run/containerd/fifo")
			os.Remove("/run/containerd/runc")
			os.Remove("/run/containerd")
		}
		if t.Failed() {
			if log, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("containerd log tail:\n%s", tail(string(log), 3000))
			}
		}
	})
	for i := 0; ; i++ {
		if exec.Command("ctr", "-a", c.sock, "version").Run() == nil {
			break
		}
		if i > 100 {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("containerd did not come up:\n%s", tail(string(log), 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return c
}

// readUntil reads f until want appears, EOF or the timeout.
func readUntil(f *os.File, want string, timeout time.Duration) string {
	f.SetReadDeadline(time.Now().Add(timeout))
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for !strings.Contains(out.String(), want) {
		n, err := f.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return out.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// busyboxImage writes a docker-archive of a one-layer busybox image made
// from the busybox-static fixture, named ref.
func busyboxImage(t *testing.T, ref string) string {
	t.Helper()
	dir := t.TempDir()
	layerTar := filepath.Join(dir, "rootfs.tar")
	if err := fixture.BusyboxTar(layerTar); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromFile(layerTar)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = v1.Config{
		Cmd: []string{"/bin/sh"},
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "busybox.tar")
	if err := tarball.WriteToFile(out, tag, img); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestContainerd(t *testing.T) {
	c := startContainerd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	const ref = "localhost/berth-test/busybox:latest"
	archive := busyboxImage(t, ref)
	if out, err := c.ctr(ctx, "images", "import", archive).CombinedOutput(); err != nil {
		t.Fatalf("ctr images import: %v\n%s", err, out)
	}

	t.Run("RunRm", func(t *testing.T) {
		out, err := c.run(ctx, "--rm", ref, "berth-hello", "echo", "hello").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "hello" {
			t.Fatalf("ctr run --rm ... echo hello: %v: %q", err, out)
		}
		// --rm left nothing: the container is gone from containerd and
		// from berth's state root.
		ls, _ := c.ctr(ctx, "containers", "ls", "-q").Output()
		if strings.Contains(string(ls), "berth-hello") {
			t.Errorf("container still listed after --rm: %s", ls)
		}
	})

	t.Run("Terminal", func(t *testing.T) {
		// ctr -t makes the shim listen on a console socket; berth must
		// send it the pty master the way runc does, or nothing prints.
		ptmx, pts, err := pty.Open()
		if err != nil {
			t.Skipf("no pty: %v", err)
		}
		defer ptmx.Close()
		cmd := c.run(ctx, "--rm", "-t", ref, "berth-tty", "sh", "-c", "tty; echo tty-done")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pts.Close()
		out := readUntil(ptmx, "tty-done", 60*time.Second)
		err = cmd.Wait()
		if err != nil || !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "tty-done") {
			t.Fatalf("ctr run -t: %v: %q", err, out)
		}
	})

	t.Run("ExitStatus", func(t *testing.T) {
		err := c.run(ctx, "--rm", ref, "berth-exit", "sh", "-c", "exit 7").Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 7 {
			t.Fatalf("exit 7 through containerd: %v", err)
		}
	})

	t.Run("DetachedKillDelete", func(t *testing.T) {
		const id = "berth-sleeper"
		if out, err := c.run(ctx, "-d", ref, id, "sleep", "300").CombinedOutput(); err != nil {
			t.Fatalf("ctr run -d: %v: %s", err, out)
		}
		var ls []byte
		for i := 0; i < 50; i++ {
			ls, _ = c.ctr(ctx, "task", "ls").Output()
			if bytes.Contains(ls, []byte("RUNNING")) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !bytes.Contains(ls, []byte(id)) || !bytes.Contains(ls, []byte("RUNNING")) {
			t.Fatalf("task not running: %s", ls)
		}
		// The task is a real process on this host, in its own pid namespace.
		var pid int
		for _, l := range strings.Split(string(ls), "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == id {
				fmt.Sscan(f[1], &pid)
			}
		}
		if pid <= 0 {
			t.Fatalf("no pid in %s", ls)
		}
		self, _ := os.Readlink("/proc/self/ns/pid")
		theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
		if err != nil || theirs == self {
			t.Fatalf("task pid %d: ns %q (ours %q), %v", pid, theirs, self, err)
		}
		if out, err := c.ctr(ctx, "task", "exec", "--fifo-dir", c.fifo, "--exec-id", "probe", id, "cat", "/proc/1/cmdline").CombinedOutput(); err != nil ||
			!strings.HasPrefix(string(out), "sleep") {
			t.Errorf("ctr task exec: %v: %q", err, out)
		}
		if out, err := c.ctr(ctx, "task", "kill", "-s", "SIGKILL", id).CombinedOutput(); err != nil {
			t.Fatalf("ctr task kill: %v: %s", err, out)
		}
		for i := 0; i < 100; i++ {
			ls, _ = c.ctr(ctx, "task", "ls").Output()
			if bytes.Contains(ls, []byte("STOPPED")) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !bytes.Contains(ls, []byte("STOPPED")) {
			t.Fatalf("task not stopped after SIGKILL: %s", ls)
		}
		if out, err := c.ctr(ctx, "task", "delete", id).CombinedOutput(); err != nil {
			t.Fatalf("ctr task delete: %v: %s", err, out)
		}
		if out, err := c.ctr(ctx, "containers", "delete", id).CombinedOutput(); err != nil {
			t.Fatalf("ctr containers delete: %v: %s", err, out)
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			t.Errorf("task process %d still exists", pid)
		}
		// berth's state for the container is gone from the runc root.
		left, _ := filepath.Glob(filepath.Join(c.runcRoot, "*", id))
		if len(left) > 0 {
			t.Errorf("runtime state left behind: %v", left)
		}
	})
}

// TestConsoleSocket drives `berth runtime run --console-socket` as a
// runc caller would: listen, receive the pty master with SCM_RIGHTS, and
// read the container's terminal output through it.
func TestConsoleSocket(t *testing.T) {
	e := newSecEnv(t)
	sock := filepath.Join(e.tmp, "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	masters := make(chan *os.File, 1)
	go func() {
		defer close(masters)
		conn, err := l.AcceptUnix()
		if err != nil {
			return
		}
		defer conn.Close()
		buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			return
		}
		masters <- os.NewFile(uintptr(fds[0]), "pty-master")
	}()
	dir, id := e.bundle(t, func(s *specs.Spec) {
		s.Process.Terminal = true
		s.Process.Args = []string{"/bin/sh", "-c", "tty; read line; echo got:$line"}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// create + start, as containerd's shim does (runc refuses a console
	// socket on a foreground run).
	if out, err := e.cli(ctx, "create", "--console-socket", sock, "--bundle", dir, id).CombinedOutput(); err != nil {
		t.Fatalf("create --console-socket: %v: %s", err, out)
	}
	defer e.cli(context.Background(), "delete", "--force", id).Run()
	var master *os.File
	select {
	case master = <-masters:
	case <-time.After(30 * time.Second):
	}
	if master == nil {
		t.Fatal("no pty master arrived on the console socket")
	}
	defer master.Close()
	if out, err := e.cli(ctx, "start", id).CombinedOutput(); err != nil {
		t.Fatalf("start: %v: %s", err, out)
	}
	out := readUntil(master, "/dev/pts/", 30*time.Second)
	// Typing into the master reaches the container's stdin.
	master.Write([]byte("hello\n"))
	out += readUntil(master, "got:hello", 30*time.Second)
	if !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "got:hello") {
		t.Fatalf("terminal output %q", out)
	}
}
