package engine

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berthproject/berth/internal/fixture"
)

var (
	berthBin string // the berth binary the CLI tests drive
	testDir  string // scratch space for this test binary
	testRoot string // the store root the tests share
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		os.Exit(m.Run()) // root tests skip themselves
	}
	var err error
	testDir, err = os.MkdirTemp("", "berth-engine-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testRoot = filepath.Join(testDir, "root")
	// make test builds bin/berth first and says where (BERTH_BIN);
	// otherwise build one for this run.
	berthBin = os.Getenv("BERTH_BIN")
	if _, err := os.Stat(berthBin); berthBin == "" || err != nil {
		berthBin = filepath.Join(testDir, "berth")
		build := exec.Command("go", "build", "-o", berthBin, "../cmd/berth")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building berth: %v\n%s", err, out)
			os.RemoveAll(testDir)
			os.Exit(1)
		}
	}
	code := m.Run()
	// Whatever a failed test left: containers, then mounts under testDir.
	if out, err := exec.Command(berthBin, "--root", testRoot, "ps", "-aq", "--no-trunc").Output(); err == nil {
		for _, id := range strings.Fields(string(out)) {
			exec.Command(berthBin, "--root", testRoot, "rm", "-f", "-v", id).Run()
		}
	}
	fixture.UnmountUnder(testDir)
	os.Remove(runtimeRoot(testRoot)) // empty once every container is gone
	os.RemoveAll(testDir)
	os.Exit(code)
}

// requireRuntime skips tests that start containers unless they run as root.
func requireRuntime(t *testing.T) {
	t.Helper()
	fixture.RequireRoot(t)
}

// berth runs the berth binary on the test store; it returns stdout,
// stderr and the exit status.
func berth(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(berthBin, append([]string{"--root", testRoot}, args...)...)
	cmd.Env = append(os.Environ(), "BERTH_ROOT="+testRoot)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("berth %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// berthOK runs berth and fails the test unless it exits 0.
func berthOK(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := berth(t, "", args...)
	if code != 0 {
		t.Fatalf("berth %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func testEngine(t *testing.T) *Engine {
	t.Helper()
	e, err := Open(testRoot)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var (
	imgOnce sync.Map // name -> *onceImage
)

type onceImage struct {
	once sync.Once
	err  error
}

// writeImage stores an image made of layers (tar files) and cfg under
// ref, once per test binary.
func writeImage(t *testing.T, ref string, mk func() (v1.Image, error)) string {
	t.Helper()
	fixture.RequireRoot(t)
	v, _ := imgOnce.LoadOrStore(ref, &onceImage{})
	oi := v.(*onceImage)
	oi.once.Do(func() {
		img, err := mk()
		if err != nil {
			oi.err = err
			return
		}
		e, err := Open(testRoot)
		if err != nil {
			oi.err = err
			return
		}
		_, oi.err = e.Store.Write(img, ref)
	})
	if oi.err != nil {
		t.Fatalf("image %s: %v", ref, oi.err)
	}
	return ref
}

func imageFromTar(path, arch string, cfg v1.Config) (v1.Image, error) {
	l, err := tarball.LayerFromFile(path)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config = cfg
	return mutate.ConfigFile(img, cf)
}

// busyboxImage is a busybox image (Debian's busybox-static) with CMD sh.
func busyboxImage(t *testing.T) string {
	return writeImage(t, "busybox:test", func() (v1.Image, error) {
		p := filepath.Join(testDir, "busybox.tar")
		if err := fixture.BusyboxTar(p); err != nil {
			return nil, err
		}
		return imageFromTar(p, "amd64", v1.Config{Cmd: []string{"/bin/sh"},
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}})
	})
}

// debianImage is a debootstrapped Debian bookworm minbase image.
func debianImage(t *testing.T) string {
	return writeImage(t, "debian:test", func() (v1.Image, error) {
		p, err := fixture.DebianTar()
		if err != nil {
			return nil, err
		}
		return imageFromTar(p, "amd64", v1.Config{Cmd: []string{"bash"},
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}})
	})
}

// tarFile is one entry of a generated layer.
type tarFile struct {
	Name string
	Mode int64
	Body []byte
	Link string // symlink target
}

// scratchImage is an image with one layer holding just files.
func scratchImage(t *testing.T, ref, arch string, files []tarFile, cfg v1.Config) string {
	return writeImage(t, ref, func() (v1.Image, error) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, f := range files {
			h := &tar.Header{Name: f.Name, Mode: f.Mode, Size: int64(len(f.Body)), Typeflag: tar.TypeReg}
			switch {
			case f.Link != "":
				h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, f.Link, 0
			case strings.HasSuffix(f.Name, "/"):
				h.Typeflag, h.Size = tar.TypeDir, 0
			}
			if err := tw.WriteHeader(h); err != nil {
				return nil, err
			}
			tw.Write(f.Body)
		}
		tw.Close()
		data := buf.Bytes()
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		})
		if err != nil {
			return nil, err
		}
		img, err := mutate.AppendLayers(empty.Image, l)
		if err != nil {
			return nil, err
		}
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", arch
		cf.Config = cfg
		return mutate.ConfigFile(img, cf)
	})
}

// goBinary builds a tiny static Go program for arch and returns its bytes.
func goBinary(t *testing.T, arch, src string) []byte {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/p\ngo 1.21\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644)
	cmd := exec.Command("go", "build", "-o", "prog", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build (%s): %v\n%s", arch, err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "prog"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
