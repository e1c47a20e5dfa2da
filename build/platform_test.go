package build

import (
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/berthproject/berth/internal/fixture"
)

// armHello builds a static linux/arm64 program that records that it ran.
func armHello(t *testing.T, dir string) {
	t.Helper()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module hello\ngo 1.21\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte(`package main
import ("fmt"; "os"; "runtime")
func main() {
	fmt.Println("hello from", runtime.GOOS+"/"+runtime.GOARCH)
	os.WriteFile("/ran", []byte(runtime.GOARCH), 0o644)
}
`), 0o644)
	cmd := exec.Command(filepath.Join(goruntime.GOROOT(), "bin", "go"), "build", "-o", filepath.Join(dir, "hello-arm64"), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOARCH=arm64", "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot build an arm64 test program: %v %s", err, out)
	}
}

const foreignRun = "FROM scratch\nCOPY hello-arm64 /hello\nRUN [\"/hello\"]\n"

// Without a binfmt handler, a RUN for a foreign CPU fails before anything
// is built, naming the platform and the missing handler.
func TestForeignRunWithoutEmulator(t *testing.T) {
	e := newEnv(t)
	dir := writeContext(t, map[string]string{"Dockerfile": foreignRun, "hello-arm64": "not run"})
	old := binfmtDir
	binfmtDir = t.TempDir() // no handlers registered
	defer func() { binfmtDir = old }()
	_, out, err := e.build(dir, func(o *Options) { o.Platforms = []string{"linux/arm64"} })
	if err == nil {
		t.Fatal("foreign RUN without emulation succeeded")
	}
	for _, w := range []string{"linux/arm64", "binfmt_misc handler for aarch64", "qemu-aarch64"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if strings.Contains(out, "COPY") {
		t.Errorf("steps ran before the check:\n%s", out)
	}
}

// With Debian's qemu-user-static handler registered (the test registers
// it and restores the previous state), the same RUN executes.
func TestForeignRunWithEmulator(t *testing.T) {
	fixture.RequireRoot(t)
	fixture.RequireBinary(t, "update-binfmts", "binfmt-support")
	if _, err := os.Stat("/usr/bin/qemu-aarch64-static"); err != nil {
		t.Skip("qemu-aarch64-static not installed (qemu-user-static)")
	}
	mounted := false
	if _, err := os.Stat("/proc/sys/fs/binfmt_misc/register"); err != nil {
		if err := syscall.Mount("binfmt_misc", "/proc/sys/fs/binfmt_misc", "binfmt_misc", 0, ""); err != nil {
			t.Skipf("mount binfmt_misc: %v", err)
		}
		mounted = true
	}
	was, _ := os.ReadFile("/proc/sys/fs/binfmt_misc/qemu-aarch64")
	if !strings.HasPrefix(string(was), "enabled") {
		if out, err := exec.Command("update-binfmts", "--enable", "qemu-aarch64").CombinedOutput(); err != nil {
			t.Skipf("update-binfmts --enable qemu-aarch64: %v %s", err, out)
		}
	}
	t.Cleanup(func() {
		if !strings.HasPrefix(string(was), "enabled") {
			exec.Command("update-binfmts", "--disable", "qemu-aarch64").Run()
		}
		if mounted {
			syscall.Unmount("/proc/sys/fs/binfmt_misc", 0)
		}
	})
	e := newEnv(t)
	dir := writeContext(t, map[string]string{"Dockerfile": foreignRun})
	armHello(t, dir)
	r, out := e.mustBuild(dir, func(o *Options) { o.Platforms = []string{"linux/arm64"} })
	if !strings.Contains(out, "hello from linux/arm64") {
		t.Errorf("RUN output:\n%s", out)
	}
	img := r.Images["linux/arm64"]
	if img == nil {
		t.Fatalf("no arm64 image: %v", r.Images)
	}
	if got := readFile(t, filepath.Join(rootfsOf(t, img), "ran")); got != "arm64" {
		t.Errorf("/ran = %q", got)
	}
	if cf := configOf(t, img); cf.Architecture != "arm64" {
		t.Errorf("config architecture %s", cf.Architecture)
	}
}

// Cross-building: a stage FROM --platform=$BUILDPLATFORM runs natively
// (no emulator needed) and the foreign final stage only COPYs from it.
func TestCrossBuildWithBuildPlatformStage(t *testing.T) {
	fixture.RequireRoot(t)
	e := newEnv(t)
	e.importBusybox("busybox")
	old := binfmtDir
	binfmtDir = t.TempDir() // no emulators: none may be needed
	defer func() { binfmtDir = old }()
	dir := writeContext(t, map[string]string{"Dockerfile": `FROM --platform=$BUILDPLATFORM busybox AS build
ARG TARGETARCH
RUN echo "built on $(uname -m) for $TARGETARCH" > /out
FROM scratch
COPY --from=build /out /out
`})
	r, out := e.mustBuild(dir, func(o *Options) { o.Platforms = []string{"linux/arm64"} })
	img := r.Images["linux/arm64"]
	if img == nil {
		t.Fatalf("no arm64 image\n%s", out)
	}
	if got := readFile(t, filepath.Join(rootfsOf(t, img), "out")); got != "built on x86_64 for arm64\n" && goruntime.GOARCH == "amd64" {
		t.Errorf("/out = %q", got)
	}
	if cf := configOf(t, img); cf.Architecture != "arm64" {
		t.Errorf("final image architecture %s", cf.Architecture)
	}
}
