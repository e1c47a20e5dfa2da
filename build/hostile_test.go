package build

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/berthproject/berth/image"
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
// directories of the image (and their contents) with their modes.
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
	for p, want := range map[string]fs.FileMode{"ro": fs.ModeDir | 0o555, "ro/sub": fs.ModeDir | fs.ModeSetgid | 0o555, "ro/sub/f": 0o444, "both": fs.ModeDir | 0o750, "both/g": 0o444, "both/mine": 0o644} {
		fi, err := os.Lstat(filepath.Join(dest, p))
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: %v %v, want %v", p, fi.Mode(), err, want)
		}
	}
	// TempDir's cleanup needs to write there.
	t.Cleanup(func() { os.Chmod(filepath.Join(dest, "ro"), 0o755); os.Chmod(filepath.Join(dest, "ro/sub"), 0o755) })
}
