package inspect

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/berthproject/berth/internal/fixture"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// file is one entry of a test layer.
type file struct {
	mode int64
	data string
	link string // symlink target
	typ  byte
}

func layerOf(t testing.TB, files map[string]file) v1.Layer {
	t.Helper()
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		f := files[n]
		h := &tar.Header{Name: n, Mode: f.mode, Typeflag: f.typ}
		switch {
		case f.typ != 0:
		case strings.HasSuffix(n, "/"):
			h.Typeflag = tar.TypeDir
		case f.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.link
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, f.data)
	}
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func imageOf(t testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64", Config: cfg, RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func tarLayer(t testing.TB, path string) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func goBin(t testing.TB) string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

var buildOnce sync.Map

// TestMain removes the programs build compiled once the tests are done.
func TestMain(m *testing.M) {
	code := m.Run()
	buildOnce.Range(func(_, p any) bool {
		os.RemoveAll(filepath.Dir(p.(string)))
		return true
	})
	os.Exit(code)
}

// build compiles a fixture program once per test binary.
func build(t testing.TB, name string, args func(dir string) *exec.Cmd) string {
	t.Helper()
	if p, ok := buildOnce.Load(name); ok {
		return p.(string)
	}
	dir, err := os.MkdirTemp("", "berth-inspect-"+name)
	if err != nil {
		t.Fatal(err)
	}
	cmd := args(dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", name, err, out)
	}
	p := filepath.Join(dir, name)
	buildOnce.Store(name, p)
	return p
}

const helloGo = "package main\nimport \"fmt\"\nfunc main(){ fmt.Println(\"hello from go\") }\n"
const helloC = "#include <stdio.h>\n#include <pwd.h>\nint main(){ struct passwd *p = getpwuid(0); printf(\"hello from c, uid 0 is %s\\n\", p ? p->pw_name : \"?\"); return 0; }\n"

func staticGo(t testing.TB) string {
	return build(t, "hello-go", func(dir string) *exec.Cmd {
		os.WriteFile(filepath.Join(dir, "main.go"), []byte(helloGo), 0o644)
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\ngo 1.21\n"), 0o644)
		cmd := exec.Command(goBin(t), "build", "-o", "hello-go", ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
		return cmd
	})
}

func dynamicC(t testing.TB) string {
	fixture.RequireBinary(t, "gcc", "gcc")
	return build(t, "hello-c", func(dir string) *exec.Cmd {
		os.WriteFile(filepath.Join(dir, "hello.c"), []byte(helloC), 0o644)
		cmd := exec.Command("gcc", "-O2", "-o", "hello-c", "hello.c")
		cmd.Dir = dir
		return cmd
	})
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func debianLayer(t testing.TB) v1.Layer {
	t.Helper()
	p, err := fixture.DebianTar()
	if err != nil {
		t.Skipf("debian fixture: %v", err)
	}
	return tarLayer(t, p)
}

const nodeApp = "const os = require('os');\nconst path = require('path');\nconsole.log('hello from node', path.join('a', 'b'), os.platform(), 6*7);\n"

// nodeTar returns a Debian rootfs with nodejs installed by apt from the
// Debian mirror, made once (chroot into the debootstrapped fixture) and
// cached beside it.
func nodeTar(t testing.TB) string {
	t.Helper()
	fixture.RequireRoot(t)
	deb, err := fixture.DebianTar()
	if err != nil {
		t.Skipf("debian fixture: %v", err)
	}
	// Named after the Debian tarball it grows from, so a new one of those
	// makes a new one of these.
	cache := filepath.Join(fixture.CacheDir, strings.TrimSuffix(filepath.Base(deb), ".tar")+"-nodejs.tar")
	if _, err := os.Stat(cache); err == nil {
		return cache
	}
	lock, err := os.OpenFile(filepath.Join(fixture.CacheDir, ".lock-nodejs"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	syscall.Flock(int(lock.Fd()), syscall.LOCK_EX)
	if _, err := os.Stat(cache); err == nil {
		return cache
	}
	dir, err := os.MkdirTemp(fixture.CacheDir, "nodejs-")
	if err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, tail(out))
		}
	}
	proc := filepath.Join(dir, "proc")
	mounted := false
	// Remove the staging tree only once nothing host-side is mounted in it.
	defer func() {
		if mounted && syscall.Unmount(proc, syscall.MNT_DETACH) != nil {
			return
		}
		os.RemoveAll(dir)
	}()
	run("tar", "-C", dir, "-xf", deb)
	run("mount", "-t", "proc", "proc", proc)
	mounted = true
	run("cp", "/etc/resolv.conf", filepath.Join(dir, "etc/resolv.conf"))
	run("chroot", dir, "/bin/sh", "-c", "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*")
	if err := syscall.Unmount(proc, 0); err != nil {
		t.Fatalf("umount %s: %v", proc, err)
	}
	mounted = false
	os.Remove(filepath.Join(dir, "etc/resolv.conf"))
	tmp := cache + ".tmp"
	run("tar", "--numeric-owner", "-C", dir, "-cf", tmp, ".")
	if err := os.Rename(tmp, cache); err != nil {
		t.Fatal(err)
	}
	return cache
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func mustDoctor(t testing.TB, name string, img v1.Image) *Report {
	t.Helper()
	r, err := Doctor(name, img)
	if err != nil {
		t.Fatalf("doctor %s: %v", name, err)
	}
	return r
}

func dump(r *Report) string {
	var b bytes.Buffer
	r.WriteText(&b)
	return b.String()
}

var _ = fmt.Sprintf
