package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthproject/berth/image"
	"github.com/berthproject/berth/internal/fixture"
	"github.com/berthproject/berth/store"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func startRegistry(t *testing.T, user, pass string) string {
	return fixture.StartRegistry(t, user, pass)
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func treeDigest(t *testing.T, root string) string { return fixture.TreeDigest(t, root) }

func importBusybox(t *testing.T, s *store.Store, tag string) v1.Image {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bb.tar")
	if err := fixture.BusyboxTar(p); err != nil {
		t.Skipf("busybox: %v", err)
	}
	f, _ := os.Open(p)
	defer f.Close()
	img, _, err := image.Import(s, f, tag, image.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func platformImage(t *testing.T, arch, variant string) v1.Image {
	t.Helper()
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf.OS, cf.Architecture, cf.Variant = "linux", arch, variant
	img, _ = mutate.ConfigFile(img, cf)
	return img
}

func digest(img v1.Image) v1.Hash { d, _ := img.Digest(); return d }

var ctx = context.Background()

func TestPushPullRoundTrip(t *testing.T) {
	reg := startRegistry(t, "", "")
	src := openStore(t)
	bb := importBusybox(t, src, "bb:1")
	amd, arm := platformImage(t, "amd64", ""), platformImage(t, "arm64", "v8")
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}})
	if _, err := src.WriteIndex(idx, "multi"); err != nil {
		t.Fatal(err)
	}
	d, err := Push(ctx, src, "bb:1", reg+"/bb:1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d != digest(bb) {
		t.Fatalf("pushed %s, image is %s", d, digest(bb))
	}
	if _, err := Push(ctx, src, "multi", reg+"/multi:1", Options{}); err != nil {
		t.Fatal(err)
	}
	dst := openStore(t)
	p, err := Pull(ctx, dst, reg+"/bb:1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := bb.ConfigName()
	if p.Digest != digest(bb) || p.ID != id || p.Name != reg+"/bb:1" {
		t.Fatalf("pulled %+v, want digest %s id %s", p, digest(bb), id)
	}
	// By digest too.
	if p, err := Pull(ctx, dst, reg+"/bb@"+digest(bb).String(), Options{}); err != nil || p.Digest != digest(bb) {
		t.Fatalf("pull by digest: %+v %v", p, err)
	}
	// Multi-platform: the host's by default, --platform, --all-platforms.
	host := store.HostPlatform()
	want := map[string]v1.Hash{"amd64": digest(amd), "arm64": digest(arm)}[host.Architecture]
	if p, err := Pull(ctx, dst, reg+"/multi:1", Options{}); err != nil || p.Digest != want {
		t.Fatalf("pull multi for the host: %+v %v, want %s", p, err, want)
	}
	if p, err := Pull(ctx, dst, reg+"/multi:1", Options{Platform: "linux/arm64"}); err != nil || p.Digest != digest(arm) {
		t.Fatalf("pull --platform linux/arm64: %+v %v", p, err)
	}
	before := treeDigest(t, dst.Root)
	_, err = Pull(ctx, dst, reg+"/multi:1", Options{Platform: "linux/s390x"})
	if err == nil || !strings.Contains(err.Error(), "linux/amd64, linux/arm64/v8") {
		t.Fatalf("no such platform: err = %v, want the list of platforms", err)
	}
	if treeDigest(t, dst.Root) != before {
		t.Fatal("failed pull changed the store")
	}
	p, err = Pull(ctx, dst, reg+"/multi:1", Options{AllPlatforms: true})
	if err != nil || p.Digest != digest2(idx) {
		t.Fatalf("pull --all-platforms: %+v %v, want index %s", p, err, digest2(idx))
	}
	for plat, want := range map[string]v1.Hash{"linux/amd64": digest(amd), "linux/arm64": digest(arm)} {
		img, err := dst.Image(reg+"/multi:1", plat)
		if err != nil || digest(img) != want {
			t.Fatalf("stored index, %s: %v", plat, err)
		}
	}
	if res, _ := dst.Check(false); len(res.Problems) != 0 {
		t.Fatal(res.Problems)
	}
	// Round trip again: pull's copy pushes to the same digests.
	d2, err := Push(ctx, dst, reg+"/multi:1", reg+"/again:1", Options{})
	if err != nil || d2 != digest2(idx) {
		t.Fatalf("re-push of the index: %s %v", d2, err)
	}
	// Unknown reference: one line, store unchanged.
	before = treeDigest(t, dst.Root)
	_, err = Pull(ctx, dst, reg+"/nope:1", Options{})
	if err == nil || !strings.Contains(err.Error(), "not found") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("unknown ref: %v", err)
	}
	if treeDigest(t, dst.Root) != before {
		t.Fatal("failed pull changed the store")
	}
}

func digest2(idx v1.ImageIndex) v1.Hash { d, _ := idx.Digest(); return d }

func TestUnreachableRegistry(t *testing.T) {
	s := openStore(t)
	importBusybox(t, s, "bb")
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	before := treeDigest(t, s.Root)
	for name, err := range map[string]error{
		"pull": func() error { _, err := Pull(ctx, s, addr+"/x:1", Options{}); return err }(),
		"push": func() error { _, err := Push(ctx, s, "bb", addr+"/x:1", Options{}); return err }(),
	} {
		if err == nil || !strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("%s to a closed port: %v", name, err)
		}
	}
	if _, err := Pull(ctx, s, "UPPER/x", Options{}); err == nil || !strings.Contains(err.Error(), "invalid reference") {
		t.Fatalf("bad reference: %v", err)
	}
	if treeDigest(t, s.Root) != before {
		t.Fatal("failed pull/push changed the store")
	}
}

func TestAuthRegistry(t *testing.T) {
	reg := startRegistry(t, "berth", "s3cret")
	auth := filepath.Join(t.TempDir(), "auth.json")
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // never the machine's ~/.docker
	o := Options{AuthFile: auth}
	s := openStore(t)
	bb := importBusybox(t, s, "bb")
	if _, err := Push(ctx, s, "bb", reg+"/bb:1", o); err == nil || !strings.Contains(err.Error(), "authentication") {
		t.Fatalf("push without login: %v", err)
	}
	err := Login(ctx, reg, "berth", "wrong", o)
	if err == nil || err.Error() != "login "+reg+": wrong username or password" {
		t.Fatalf("login with a wrong password: %v", err)
	}
	if _, err := os.Stat(auth); err == nil {
		t.Fatal("a failed login wrote credentials")
	}
	if err := Login(ctx, reg, "berth", "s3cret", o); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(auth); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("auth file: %v %v", fi, err)
	}
	d, err := Push(ctx, s, "bb", reg+"/bb:1", o)
	if err != nil || d != digest(bb) {
		t.Fatalf("push after login: %v", err)
	}
	dst := openStore(t)
	if p, err := Pull(ctx, dst, reg+"/bb:1", o); err != nil || p.Digest != digest(bb) {
		t.Fatalf("pull after login: %+v %v", p, err)
	}
	if err := Logout(reg, o); err != nil {
		t.Fatal(err)
	}
	if _, err := Pull(ctx, openStore(t), reg+"/bb:1", o); err == nil {
		t.Fatal("pull after logout worked")
	}
	if err := Logout(reg, o); err == nil {
		t.Fatal("second logout succeeded")
	}
}

// TestSkopeoInterop copies from berth's OCI layout with skopeo to a
// registry and back: digests stay identical both ways.
func TestSkopeoInterop(t *testing.T) {
	skopeo := fixture.RequireBinary(t, "skopeo", "skopeo")
	reg := startRegistry(t, "", "")
	s := openStore(t)
	bb := importBusybox(t, s, "localhost/bb:1")
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(skopeo, append([]string{"--insecure-policy"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("skopeo %v: %v\n%s", args, err, out)
		}
	}
	run("copy", "--dest-tls-verify=false", "oci:"+s.Root+"/oci:localhost/bb:1", "docker://"+reg+"/from-skopeo:1")
	dst := openStore(t)
	p, err := Pull(ctx, dst, reg+"/from-skopeo:1", Options{})
	if err != nil || p.Digest != digest(bb) {
		t.Fatalf("berth pull of skopeo's push: %+v %v, want %s", p, err, digest(bb))
	}
	if _, err := Push(ctx, dst, reg+"/from-skopeo:1", reg+"/from-berth:1", Options{}); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	run("copy", "--src-tls-verify=false", "docker://"+reg+"/from-berth:1", "oci:"+out+":x")
	raw, err := exec.Command(skopeo, "inspect", "--raw", "oci:"+out+":x").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("sha256:%x", sha256.Sum256(raw)); got != digest(bb).String() {
		t.Fatalf("skopeo got manifest %s, berth stored %s", got, digest(bb))
	}
}

// TestCLILoginPushPull drives berth login/push/pull/logout against an
// htpasswd registry through the binary.
func TestCLILoginPushPull(t *testing.T) {
	bin := os.Getenv("BERTH_BIN")
	if bin == "" {
		dir := t.TempDir()
		bin = filepath.Join(dir, "berth")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/berthproject/berth/cmd/berth").CombinedOutput(); err != nil {
			t.Skipf("cannot build berth: %v %s", err, out)
		}
	}
	reg := startRegistry(t, "berth", "s3cret")
	root := t.TempDir()
	env := append(os.Environ(), "BERTH_AUTH_FILE="+filepath.Join(t.TempDir(), "auth.json"), "DOCKER_CONFIG="+t.TempDir())
	run := func(stdin string, args ...string) (string, string, int) {
		cmd := exec.Command(bin, append([]string{"--root", root}, args...)...)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(stdin)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return o.String(), e.String(), code
	}
	s, err := store.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	bb := importBusybox(t, s, "bb")
	_, e, code := run("", "login", "-u", "berth", "-p", "nope", reg)
	warn := "WARNING! --password shows the password to every user of this host (ps, /proc/PID/cmdline): use --password-stdin\n"
	if code != 125 || e != warn+"berth: login "+reg+": wrong username or password\n" {
		t.Fatalf("login with a wrong password: exit %d, %q", code, e)
	}
	if o, e, code := run("s3cret\n", "login", "-u", "berth", "--password-stdin", reg); code != 0 || o != "Login Succeeded\n" || e != "" {
		t.Fatalf("login: %d %q %q", code, o, e)
	}
	if o, e, code := run("", "push", "-q", "bb", reg+"/bb:1"); code != 0 {
		t.Fatalf("push: %d %q %q", code, o, e)
	}
	run("", "rmi", "bb")
	o, e, code := run("", "pull", "-q", reg+"/bb:1")
	id, _ := bb.ConfigName()
	if code != 0 || strings.TrimSpace(o) != id.String() {
		t.Fatalf("pull: %d %q %q, want %s", code, o, e, id)
	}
	if _, _, code := run("", "logout", reg); code != 0 {
		t.Fatal("logout failed")
	}
	_, e, code = run("", "pull", "-q", reg+"/bb:1")
	if code != 125 || !strings.Contains(e, "authentication") || strings.Count(e, "\n") != 1 {
		t.Fatalf("pull after logout: exit %d, %q", code, e)
	}
}
