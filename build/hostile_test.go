package build

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthproject/berth/image"
	"github.com/berthproject/berth/internal/fixture"
)

// TestLocalOutputKeepsWhatWasThere: --output type=local into an existing
// directory must only add the image's files. A base image's whiteouts
// (".wh.notes", or the opaque marker at its root) removed the user's own
// files there, as if they were a lower layer of the image.
func TestLocalOutputKeepsWhatWasThere(t *testing.T) {
	e := newEnv(t)
	base := mkTar(t, map[string]string{"a": "from the image", ".wh.notes": "", ".wh..wh..opq": "", "d/.wh..wh..opq": ""})
	if _, _, err := image.Import(e.store, bytes.NewReader(base), "localhost/wh:1", image.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM localhost/wh:1\nCOPY f /f\n", "f": "built"})
	dest := t.TempDir()
	for n, c := range map[string]string{"notes": "mine", "thesis.tex": "mine too", "d/keep": "also mine", "f": "replaced"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dest, n)), 0o755)
		if err := os.WriteFile(filepath.Join(dest, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.mustBuild(dir, func(o *Options) { o.Output = "type=local,dest=" + dest })
	for n, want := range map[string]string{"notes": "mine", "thesis.tex": "mine too", "d/keep": "also mine", "a": "from the image", "f": "built"} {
		b, err := os.ReadFile(filepath.Join(dest, n))
		if err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", n, b, err, want)
		}
	}
	ents, _ := os.ReadDir(dest)
	if len(ents) != 5 { // notes thesis.tex d a f: no temp dir left
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("dest holds %v", names)
	}
}

// TestLocalOutputReadOnlyDirs: the merge into dest moves read-only
// directories of the image (and their contents) with their modes (less
// set-id bits: see TestLocalOutputIsTheCallers).
func TestLocalOutputReadOnlyDirs(t *testing.T) {
	e := newEnv(t)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range []*tar.Header{
		{Name: "ro/", Typeflag: tar.TypeDir, Mode: 0o555},
		{Name: "ro/sub/", Typeflag: tar.TypeDir, Mode: 0o2555},
		{Name: "ro/sub/f", Typeflag: tar.TypeReg, Mode: 0o444, Size: 1},
		{Name: "both/", Typeflag: tar.TypeDir, Mode: 0o555},
		{Name: "both/g", Typeflag: tar.TypeReg, Mode: 0o444, Size: 1},
	} {
		tw.WriteHeader(h)
		if h.Size > 0 {
			tw.Write([]byte("x"))
		}
	}
	tw.Close()
	if _, _, err := image.Import(e.store, &b, "localhost/ro:1", image.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM localhost/ro:1\n"})
	dest := t.TempDir()
	os.Mkdir(filepath.Join(dest, "both"), 0o750)
	os.WriteFile(filepath.Join(dest, "both", "mine"), []byte("mine"), 0o644)
	e.mustBuild(dir, func(o *Options) { o.Output = "type=local,dest=" + dest })
	for p, want := range map[string]fs.FileMode{"ro": fs.ModeDir | 0o555, "ro/sub": fs.ModeDir | 0o555, "ro/sub/f": 0o444, "both": fs.ModeDir | 0o750, "both/g": 0o444, "both/mine": 0o644} {
		fi, err := os.Lstat(filepath.Join(dest, p))
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: %v %v, want %v", p, fi.Mode(), err, want)
		}
	}
	// TempDir's cleanup needs to write there.
	t.Cleanup(func() { os.Chmod(filepath.Join(dest, "ro"), 0o755); os.Chmod(filepath.Join(dest, "ro/sub"), 0o755) })
}

// TestBindMountHonoursDockerignore: RUN --mount=type=bind of the context
// must show the step what COPY would take, not the files .dockerignore
// keeps out of the build (BuildKit never even receives them).
func TestBindMountHonoursDockerignore(t *testing.T) {
	fixture.RequireRoot(t)
	e := newEnv(t)
	e.importBusybox("busybox")
	dir := writeContext(t, map[string]string{
		"Dockerfile": `FROM busybox
RUN --mount=type=bind,target=/ctx ls -a /ctx /ctx/sub > /listing; cat /ctx/secret /ctx/sub/key.pem /ctx/sub/keep.pem > /leak 2>/dev/null; cat /ctx/ok.txt > /ok
RUN --mount=type=bind,source=sub,target=/s,rw cat /s/key.pem /s/keep.pem > /leak2 2>/dev/null; echo > /s/new; true
`,
		".dockerignore": "secret\nsub/*.pem\n!sub/keep.pem\n",
		"secret":        "SECRET",
		"sub/key.pem":   "KEY",
		"sub/keep.pem":  "kept\n",
		"ok.txt":        "fine\n",
	})
	r, out := e.mustBuild(dir, nil)
	root := rootfsOf(t, onlyImage(t, r))
	if got := readFile(t, root+"/leak"); got != "kept\n" {
		t.Errorf("/leak = %q: the step read ignored files\n%s", got, out)
	}
	if got := readFile(t, root+"/leak2"); got != "kept\n" {
		t.Errorf("/leak2 = %q: the step read ignored files", got)
	}
	if got := readFile(t, root+"/ok"); got != "fine\n" {
		t.Errorf("/ok = %q", got)
	}
	if l := readFile(t, root+"/listing"); strings.Contains(l, "secret") || strings.Contains(l, "key.pem") || !strings.Contains(l, "Dockerfile") {
		t.Errorf("listing:\n%s", l)
	}
	if _, err := os.Stat(filepath.Join(dir, "sub", "new")); err == nil {
		t.Error("a rw bind wrote into the context")
	}
	// A source that is itself ignored is refused, as COPY refuses it.
	bad := writeContext(t, map[string]string{
		"Dockerfile":    "FROM busybox\nRUN --mount=type=bind,source=secret,target=/s cat /s\n",
		".dockerignore": "secret\n",
		"secret":        "SECRET",
	})
	if _, out, err := e.build(bad, nil); err == nil || !strings.Contains(err.Error(), "dockerignore") {
		t.Errorf("ignored bind source: err = %v\n%s", err, out)
	}
}

// TestOutOfRangeIDs: USER and --chown ids are uid_t, 32-bit. Read as a
// 64-bit int and truncated, USER 4294967296 ran RUN steps as root, and
// --chown=4294967296 made a layer the store then refused with no line.
func TestOutOfRangeIDs(t *testing.T) {
	fixture.RequireRoot(t)
	e := newEnv(t)
	e.importBusybox("busybox")
	for _, df := range []string{
		"FROM busybox\nUSER 4294967296\nRUN id -u > /uid\n",
		"FROM busybox\nUSER 0:4294967296\nRUN id -g > /gid\n",
		"FROM busybox\nUSER -1\nRUN id -u > /uid\n",
		"FROM busybox\nCOPY --chown=4294967296 f /f\n",
		"FROM busybox\nCOPY --chown=1:4294967295 f /f\n",
		"FROM busybox\nCOPY --chown=-1 f /f\n",
		"FROM busybox\nCOPY --link --chown=4294967296:0 f /f\n",
	} {
		dir := writeContext(t, map[string]string{"Dockerfile": df, "f": "x"})
		r, out, err := e.build(dir, nil)
		if err == nil {
			root := rootfsOf(t, onlyImage(t, r))
			t.Errorf("%q built: uid %q gid %q", df, readFileOr(root+"/uid"), readFileOr(root+"/gid"))
			continue
		}
		if !strings.Contains(err.Error(), "Dockerfile:") {
			t.Errorf("%q: error does not name the step: %v\n%s", df, err, out)
		}
	}
}

func readFileOr(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// TestCopyWhiteoutNames: a context file named .wh.NAME or .wh..wh..opq
// would be a whiteout in the COPY layer, deleting the base image's NAME
// (or everything in the directory) instead of adding a file.
func TestCopyWhiteoutNames(t *testing.T) {
	e := newEnv(t)
	base := mkTar(t, map[string]string{"app/keep": "base", "app/config": "base"})
	if _, _, err := image.Import(e.store, bytes.NewReader(base), "localhost/app:1", image.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, files := range []map[string]string{
		{"up/.wh.config": "", "up/new": "x"},
		{"up/.wh..wh..opq": ""},
		{"up/.wh.d/f": ""},
	} {
		files["Dockerfile"] = "FROM localhost/app:1\nCOPY up/ /app/\n"
		dir := writeContext(t, files)
		r, out, err := e.build(dir, nil)
		if err == nil {
			root := rootfsOf(t, onlyImage(t, r))
			t.Errorf("%v built: /app/config %q, /app/keep %q", keys2(files), readFileOr(root+"/app/config"), readFileOr(root+"/app/keep"))
			continue
		}
		if !strings.Contains(err.Error(), ".wh.") || !strings.Contains(err.Error(), "Dockerfile:2") {
			t.Errorf("%v: err = %v\n%s", keys2(files), err, out)
		}
	}
}

// TestLocalOutputIsTheCallers: --output type=local writes host files: an
// image's setuid-root shell, file capabilities or owners must not come
// along (a host user could run the shell as root), nor its device nodes.
func TestLocalOutputIsTheCallers(t *testing.T) {
	e := newEnv(t)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "bin/rootsh", Typeflag: tar.TypeReg, Mode: 0o4755, Size: 1},
		{Name: "bin/grp", Typeflag: tar.TypeReg, Mode: 0o2755, Uid: 1000, Gid: 1000, Size: 1},
		{Name: "bin/capped", Typeflag: tar.TypeReg, Mode: 0o755, Size: 1, PAXRecords: map[string]string{
			"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\xc0\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}},
	} {
		h.Format = tar.FormatPAX
		tw.WriteHeader(h)
		if h.Size > 0 {
			tw.Write([]byte("x"))
		}
	}
	tw.Close()
	if _, _, err := image.Import(e.store, &b, "localhost/suid:1", image.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM localhost/suid:1\n"})
	dest := t.TempDir()
	e.mustBuild(dir, func(o *Options) { o.Output = "type=local,dest=" + dest })
	fixture.CheckHostCopy(t, dest, "bin/rootsh", "bin/grp", "bin/capped")
}
