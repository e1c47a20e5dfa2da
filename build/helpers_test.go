package build

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berthproject/berth/image"
	"github.com/berthproject/berth/internal/fixture"
	brt "github.com/berthproject/berth/runtime"
	"github.com/berthproject/berth/store"
)

// env is a private berth root for one test.
type env struct {
	t     *testing.T
	root  string
	store *store.Store
	run   Runner
}

func newEnv(t *testing.T) *env {
	t.Helper()
	root := t.TempDir()
	s, err := store.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, root: root, store: s}
	e.run = testRunner(t)
	t.Cleanup(func() {
		// RUN steps leave nothing mounted; make sure, so TempDir can go.
		if out, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(out, []byte(root)) {
			t.Errorf("mounts left under %s", root)
			for _, l := range strings.Split(string(out), "\n") {
				if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], root) {
					syscall.Unmount(f[4], syscall.MNT_DETACH)
				}
			}
		}
	})
	return e
}

// importBusybox stores the busybox fixture as tag.
func (e *env) importBusybox(tag string) v1.Image {
	e.t.Helper()
	p := filepath.Join(e.t.TempDir(), "busybox.tar")
	if err := fixture.BusyboxTar(p); err != nil {
		e.t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Import(e.store, f, tag, image.ImportOptions{Changes: []string{`CMD ["/bin/sh"]`}})
	if err != nil {
		e.t.Fatal(err)
	}
	return img
}

// writeContext makes a context dir from name -> content ("" ending in / = dir).
func writeContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for n, c := range files {
		p := filepath.Join(dir, n)
		if strings.HasSuffix(n, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// build runs a build and returns its result and progress output.
func (e *env) build(dir string, mod func(*Options)) (*Result, string, error) {
	var out bytes.Buffer
	o := Options{Context: dir, StoreRoot: e.root, Store: e.store, Runtime: e.run, Out: &out, Progress: "plain"}
	if mod != nil {
		mod(&o)
	}
	r, err := Build(o)
	return r, out.String(), err
}

func (e *env) mustBuild(dir string, mod func(*Options)) (*Result, string) {
	e.t.Helper()
	r, out, err := e.build(dir, mod)
	if err != nil {
		e.t.Fatalf("build: %v\n%s", err, out)
	}
	return r, out
}

func onlyImage(t *testing.T, r *Result) v1.Image {
	t.Helper()
	if len(r.Images) != 1 {
		t.Fatalf("want one image, got %d", len(r.Images))
	}
	for _, img := range r.Images {
		return img
	}
	return nil
}

// fileInfo is what the rootfs comparisons look at.
type fileInfo struct {
	Type string
	Mode fs.FileMode
	UID  uint32
	GID  uint32
	Size int64
	Hash string // content sha256 or link target
}

func (f fileInfo) String() string {
	return fmt.Sprintf("%s %o %d:%d %d %s", f.Type, f.Mode, f.UID, f.GID, f.Size, f.Hash)
}

// tree lists every path under dir with its type, mode, owner, size and content hash.
func tree(t *testing.T, dir string) map[string]fileInfo {
	t.Helper()
	m := map[string]fileInfo{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		f := fileInfo{Mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky), UID: st.Uid, GID: st.Gid}
		switch {
		case fi.IsDir():
			f.Type = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			f.Type = "symlink"
			f.Hash, _ = os.Readlink(p)
		case fi.Mode().IsRegular():
			f.Type = "file"
			f.Size = fi.Size()
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			f.Hash = hex.EncodeToString(h[:])
		default:
			f.Type = "other"
		}
		m[filepath.ToSlash(rel)] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// rootfsOf unpacks an image's final filesystem.
func rootfsOf(t *testing.T, img v1.Image) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rootfs")
	if err := exportRootfs(img, dir, false); err != nil {
		t.Fatal(err)
	}
	return dir
}

func configOf(t *testing.T, img v1.Image) *v1.ConfigFile {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

func keys(m map[string]fileInfo) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// berthRunner runs RUN bundles with berth's own runtime, in process (its
// init re-executes this test binary, where runtime/initproc's init
// function takes over).
type berthRunner struct{ rt *brt.Runtime }

func (r berthRunner) RunBundle(id, bundle string, stdio []*os.File) (int, error) {
	return r.rt.Run(id, brt.CreateOpts{Bundle: bundle, Stdio: stdio})
}

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == NetHookArg {
		os.Exit(NetHook(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// runImage runs argv in the image's rootfs (a fresh copy) and returns
// its combined output and exit status.
func (e *env) runImage(img v1.Image, argv ...string) (string, int) {
	e.t.Helper()
	fixture.RequireRoot(e.t)
	bundle := e.t.TempDir()
	if err := exportRootfs(img, filepath.Join(bundle, "rootfs"), false); err != nil {
		e.t.Fatal(err)
	}
	cf := configOf(e.t, img)
	if len(argv) == 0 {
		argv = append(append([]string{}, cf.Config.Entrypoint...), cf.Config.Cmd...)
	}
	wd := cf.Config.WorkingDir
	if wd == "" {
		wd = "/"
	}
	env := cf.Config.Env
	if len(env) == 0 {
		env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	lv := &fsView{layers: []string{filepath.Join(bundle, "rootfs")}}
	uid, gid, extra, err := resolveUser(cf.Config.User, lv)
	if err != nil {
		e.t.Fatal(err)
	}
	spec := buildSpec(argv, env, wd, uid, gid, extra, "none")
	b, _ := jsonMarshal(spec)
	os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600)
	rd, wr, _ := os.Pipe()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, rd); close(done) }()
	null, _ := os.Open(os.DevNull)
	code, err := e.run.RunBundle("berth-test-"+randHex(4), bundle, []*os.File{null, wr, wr})
	wr.Close()
	null.Close()
	<-done
	if err != nil {
		e.t.Fatalf("run %v: %v", argv, err)
	}
	return out.String(), code
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// testRunner is what executes RUN steps in tests: berth's runtime with
// its state in the test's temp dir.
func testRunner(t *testing.T) Runner {
	return berthRunner{brt.New(filepath.Join(t.TempDir(), "runtime"))}
}

// fmtv prints maps sorted, for comparisons.
func fmtv(v any) string { return fmt.Sprintf("%v", v) }

func sortStrings(s []string) { sort.Strings(s) }
