package build

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/image"
	"github.com/berthproject/berth/internal/fixture"
)

// example copies examples/build/<name> into a temp dir, so files a test
// generates (rootfs.tar, binaries) never land in the repository.
func example(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("..", "examples", "build", name)
	dst := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("copy example: %v %s", err, out)
	}
	return dst
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Seed 002: FROM scratch + ADD rootfs.tar / + CMD is a working base image.
func TestExampleSeed002RootfsBase(t *testing.T) {
	e := newEnv(t)
	dir := example(t, "seed002-rootfs")
	if err := fixture.BusyboxTar(filepath.Join(dir, "rootfs.tar")); err != nil {
		t.Fatal(err)
	}
	r, out := e.mustBuild(dir, func(o *Options) { o.Tags = []string{"mybase:1"} })
	img := onlyImage(t, r)
	cf := configOf(t, img)
	if strings.Join(cf.Config.Cmd, " ") != "/bin/sh" || cf.Architecture != runtime.GOARCH || cf.OS != "linux" {
		t.Fatalf("config: cmd %v platform %s/%s", cf.Config.Cmd, cf.OS, cf.Architecture)
	}
	// Its files are the tarball's, and a stored tag points at it.
	want := t.TempDir()
	if err := fixture.Busybox(want); err != nil {
		t.Fatal(err)
	}
	got := tree(t, rootfsOf(t, img))
	exp := tree(t, want)
	if strings.Join(keys(got), " ") != strings.Join(keys(exp), " ") {
		t.Fatalf("rootfs differs from the tarball\n%s", out)
	}
	for k, v := range exp {
		if got[k] != v {
			t.Errorf("%s: got %v want %v", k, got[k], v)
		}
	}
	if _, err := e.store.Image("mybase:1", ""); err != nil {
		t.Errorf("tag not stored: %v", err)
	}
	if os.Geteuid() == 0 {
		if o, code := e.runImage(img, "/bin/sh", "-c", "echo works; uname -s"); code != 0 || o != "works\nLinux\n" {
			t.Errorf("image run: %q exit %d", o, code)
		}
	}
}

func hostStatic(t *testing.T, dir, name string) {
	t.Helper()
	fixture.RequireBinary(t, "gcc", "gcc")
	out, err := exec.Command("gcc", "-static", "-O2", "-o", filepath.Join(dir, name), filepath.Join(dir, "hello.c")).CombinedOutput()
	if err != nil {
		t.Skipf("gcc -static: %v %s (needs libc6-dev)", err, out)
	}
}

// A static binary into scratch with COPY only: one image per platform,
// an index tagged in the store, no emulation needed.
func TestExampleStaticMultiPlatform(t *testing.T) {
	e := newEnv(t)
	dir := example(t, "static-prebuilt")
	hostStatic(t, dir, "hello-amd64")
	// The arm64 file only has to exist (COPY does not run it); its own
	// content shows each platform got its own ${TARGETARCH}.
	if err := os.WriteFile(filepath.Join(dir, "hello-arm64"), []byte("arm64 stand-in"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, out := e.mustBuild(dir, func(o *Options) {
		o.Platforms = []string{"linux/amd64,linux/arm64"}
		o.Tags = []string{"hello:multi"}
	})
	if len(r.Images) != 2 {
		t.Fatalf("want 2 images, got %d\n%s", len(r.Images), out)
	}
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		img, err := e.store.Image("hello:multi", p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		cf := configOf(t, img)
		if cf.OS+"/"+cf.Architecture != p {
			t.Errorf("%s: config says %s/%s", p, cf.OS, cf.Architecture)
		}
		fs := tree(t, rootfsOf(t, img))
		if h := fs["hello"]; h.UID != 65532 || h.GID != 65532 || h.Mode != 0o755 {
			t.Errorf("%s: /hello %v", p, h)
		}
		if isArm := fs["hello"].Size == int64(len("arm64 stand-in")); isArm != (p == "linux/arm64") {
			t.Errorf("%s: /hello is the other platform's file (%d bytes)", p, fs["hello"].Size)
		}
		if cf.Config.User != "65532" || cf.Config.Labels["org.opencontainers.image.title"] != "static hello" {
			t.Errorf("%s: config %+v", p, cf.Config)
		}
	}
	// The same as an OCI archive: an index with both platforms.
	oci := filepath.Join(t.TempDir(), "multi.tar")
	e.mustBuild(dir, func(o *Options) {
		o.Platforms = []string{"linux/amd64", "linux/arm64"}
		o.Output = "type=oci,dest=" + oci
	})
	if idx := tarEntry(t, oci, "index.json"); !strings.Contains(idx, "image.index") {
		t.Errorf("oci index.json: %s", idx)
	}
	if os.Geteuid() == 0 {
		img := r.Images["linux/amd64"]
		if o, code := e.runImage(img); code != 0 || o != "hello from a static binary, uid 65532\n" {
			t.Errorf("run: %q exit %d", o, code)
		}
	}
}

func TestExampleTenSteps(t *testing.T) {
	fixture.RequireRoot(t)
	e := newEnv(t)
	e.importBusybox("busybox")
	dir := example(t, "ten-steps")
	t0 := time.Now()
	r, out := e.mustBuild(dir, nil)
	uncached := time.Since(t0)
	if o, code := e.runImage(onlyImage(t, r)); code != 0 || o != "app 1.0 built name=ten\n" {
		t.Fatalf("run: %q exit %d\n%s", o, code, out)
	}
	if !strings.Contains(out, "    selftest ok") {
		t.Errorf("RUN output not shown:\n%s", out)
	}
	t0 = time.Now()
	r2, out2 := e.mustBuild(dir, nil)
	cachedT := time.Since(t0)
	if c, ran := cachedSteps(out2); len(c) != 10 || len(ran) != 0 {
		t.Errorf("rebuild: cached %d ran %v\n%s", len(c), ran, out2)
	}
	d1, _ := onlyImage(t, r).Digest()
	d2, _ := onlyImage(t, r2).Digest()
	if d1 != d2 {
		t.Errorf("cached rebuild changed the digest")
	}
	// A build arg changes the steps from its ARG on.
	r3, out3 := e.mustBuild(dir, func(o *Options) { o.BuildArgs = map[string]string{"VERSION": "2.0"} })
	if c, _ := cachedSteps(out3); len(c) != 6 {
		t.Errorf("with --build-arg: %d cached, want 6\n%s", len(c), out3)
	}
	if o, _ := e.runImage(onlyImage(t, r3)); o != "app 2.0 built name=ten\n" {
		t.Errorf("run with VERSION=2.0: %q", o)
	}
	t.Logf("uncached %v, cached %v (in-process, test store)", uncached, cachedT)
}

func TestExampleEveryInstruction(t *testing.T) {
	fixture.RequireRoot(t)
	e := newEnv(t)
	e.importBusybox("busybox")
	dir := example(t, "every-instruction")
	r, out := e.mustBuild(dir, nil)
	img := onlyImage(t, r)
	c := configOf(t, img).Config
	check := func(what string, got, want any) {
		t.Helper()
		if g, w := strings.TrimSpace(strings.ReplaceAll(fmtv(got), "\n", " ")), fmtv(want); g != w {
			t.Errorf("%s: got %s want %s", what, g, w)
		}
	}
	check("labels", c.Labels, map[string]string{"org.example.a": "one", "b": "two"})
	check("env", c.Env, []string{defaultPath, "A=1", "B=two words", "C=1-x"})
	check("workdir", c.WorkingDir, "/srv/sub")
	check("user", c.User, "root")
	check("shell", c.Shell, []string{"/bin/sh", "-e", "-c"})
	check("entrypoint", c.Entrypoint, []string{"/bin/sh", "-e", "-c", "echo entry"})
	check("cmd", c.Cmd, []string{"ignored"})
	check("ports", c.ExposedPorts, map[string]struct{}{"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}})
	check("volumes", c.Volumes, map[string]struct{}{"/var/lib/demo": {}})
	check("stopsignal", c.StopSignal, "SIGTERM")
	check("onbuild", c.OnBuild, []string{"RUN echo triggered > /onbuild.txt"})
	if c.Healthcheck == nil || strings.Join(c.Healthcheck.Test, " ") != "CMD-SHELL test -f /heredoc.txt" || c.Healthcheck.Interval != 30*time.Second || c.Healthcheck.Timeout != 3*time.Second {
		t.Errorf("healthcheck %+v", c.Healthcheck)
	}
	if a := configOf(t, img).Author; a != "berth <berth@example.org>" {
		t.Errorf("author %q", a)
	}
	root := rootfsOf(t, img)
	fs := tree(t, root)
	if f := fs["srv/sub/secret.txt"]; f.Mode != 0o600 || f.Type != "file" {
		t.Errorf("secret.txt %v", f)
	}
	if f := fs["notes/notes.txt"]; f.UID != 1 || f.GID != 1 {
		t.Errorf("notes.txt %v", f)
	}
	if f := fs["opt/pkg/bin/tool"]; f.Mode != 0o755 {
		t.Errorf("ADD layer.tar.gz not extracted: %v", f)
	}
	files := map[string]string{
		"etc/motd": "welcome 1\n", "heredoc.txt": "heredoc\n", "cache-count": "1\n", "from-tools.txt": "tool\n",
		"netdevs": "1\n", "platform": "linux/" + runtime.GOARCH + "\n", "data/one.txt": "d1\n", "data/nested/two.txt": "d2\n",
	}
	for p, want := range files {
		if got, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(got) != want {
			t.Errorf("/%s: %q (%v), want %q", p, got, err, want)
		}
	}
	if _, ok := fs["tool.txt"]; ok {
		t.Errorf("the tools stage leaked into the final image")
	}
	if _, ok := fs["mnt/tool.txt"]; ok {
		t.Errorf("bind mount target left in the image")
	}
	// The cache mount persists across builds.
	r2, _ := e.mustBuild(dir, func(o *Options) { o.NoCache = true })
	if got := readFile(t, filepath.Join(rootfsOf(t, onlyImage(t, r2)), "cache-count")); got != "2\n" {
		t.Errorf("cache mount not persistent: count %q", got)
	}
	if o, code := e.runImage(img); code != 0 || o != "entry\n" {
		t.Errorf("run: %q exit %d", o, code)
	}
	_ = out
}

func TestExampleOnbuild(t *testing.T) {
	fixture.RequireRoot(t)
	e := newEnv(t)
	e.importBusybox("busybox")
	dir := example(t, "onbuild")
	e.mustBuild(dir, func(o *Options) {
		o.Dockerfile = filepath.Join(dir, "Dockerfile.parent")
		o.Tags = []string{"berth-example/onbuild-parent"}
	})
	r, out := e.mustBuild(dir, nil)
	img := onlyImage(t, r)
	cf := configOf(t, img)
	if len(cf.Config.OnBuild) != 0 || cf.Config.Labels["child"] != "yes" {
		t.Errorf("child config: %+v", cf.Config)
	}
	if o, _ := e.runImage(img); !strings.Contains(o, "child.txt") {
		t.Errorf("triggers did not run: %q\n%s", o, out)
	}
}

func TestExampleDockerignore(t *testing.T) {
	e := newEnv(t)
	dir := example(t, "dockerignore")
	r, out := e.mustBuild(dir, nil)
	fs := tree(t, rootfsOf(t, onlyImage(t, r)))
	got := strings.Join(keys(fs), " ")
	want := "ctx ctx/.dockerignore ctx/Dockerfile ctx/keep.log ctx/src ctx/src/deep ctx/src/main.c"
	if got != want {
		t.Errorf("got %s\nwant %s\n%s", got, want, out)
	}
	// Changing an ignored file does not invalidate the cache.
	os.WriteFile(filepath.Join(dir, "drop.log"), []byte("changed"), 0o644)
	_, out2 := e.mustBuild(dir, nil)
	if c, ran := cachedSteps(out2); len(ran) != 0 || len(c) != 1 {
		t.Errorf("ignored change rebuilt: %v\n%s", ran, out2)
	}
}

// Seed 004: the first stage (a debootstrapped Debian) installs gcc with
// apt over the network the machine has, compiles a program; the last is
// FROM scratch with COPY --from=build --chown=65532:65532.
func TestExampleSeed004MultiStageStatic(t *testing.T) {
	fixture.RequireRoot(t)
	if c, err := net.DialTimeout("tcp", "deb.debian.org:80", 5*time.Second); err != nil {
		t.Skipf("Debian's mirror is not reachable (%v): apt-get cannot run", err)
	} else {
		c.Close()
	}
	tarPath, err := fixture.DebianTar()
	if err != nil {
		t.Skipf("debian fixture: %v", err)
	}
	e := newEnv(t)
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, _, err := image.Import(e.store, f, "debian:bookworm", image.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := example(t, "seed004-static")
	r, out := e.mustBuild(dir, func(o *Options) { o.Tags = []string{"hello:static"} })
	img := onlyImage(t, r)
	fs := tree(t, rootfsOf(t, img))
	if strings.Join(keys(fs), " ") != "hello" {
		t.Fatalf("final image holds %v, want only /hello\n%s", keys(fs), out)
	}
	if h := fs["hello"]; h.UID != 65532 || h.GID != 65532 {
		t.Errorf("/hello owned %d:%d", h.UID, h.GID)
	}
	if o, code := e.runImage(img); code != 0 || o != "hello from a static binary, uid 65532\n" {
		t.Errorf("run: %q exit %d", o, code)
	}
	if !strings.Contains(out, "[build 2/5] RUN apt-get") || !strings.Contains(out, "FROM debian:bookworm AS build") {
		t.Errorf("step lines:\n%s", out)
	}
}
