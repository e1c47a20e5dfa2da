package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCopyIntoScratch(t *testing.T) {
	e := newEnv(t)
	dir := writeContext(t, map[string]string{
		"Dockerfile":    "FROM scratch\nCOPY a.txt /a.txt\nCOPY dir /d/\nCOPY dir/sub/c.txt /\nCOPY a.txt b* /multi/\nCMD [\"/a\"]\n",
		"a.txt":         "A",
		"b1":            "B1",
		"b2":            "B2",
		"dir/x":         "X",
		"dir/sub/c.txt": "C",
	})
	r, out := e.mustBuild(dir, nil)
	img := onlyImage(t, r)
	fs := tree(t, rootfsOf(t, img))
	want := []string{"a.txt", "c.txt", "d", "d/sub", "d/sub/c.txt", "d/x", "multi", "multi/a.txt", "multi/b1", "multi/b2"}
	if got := strings.Join(keys(fs), " "); got != strings.Join(want, " ") {
		t.Fatalf("rootfs: got %s\nwant %s\n%s", got, strings.Join(want, " "), out)
	}
	if fs["a.txt"].UID != 0 || fs["a.txt"].Mode != 0o644 {
		t.Errorf("a.txt: %v", fs["a.txt"])
	}
	cf := configOf(t, img)
	if strings.Join(cf.Config.Cmd, " ") != "/a" {
		t.Errorf("cmd %v", cf.Config.Cmd)
	}
	t.Log(out)
}

// A single file COPYed to an existing directory without a trailing slash
// lands inside it; to a new path it becomes that file.
func TestCopyIntoExistingDir(t *testing.T) {
	e := newEnv(t)
	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM scratch\nCOPY f /existing/keep\nCOPY f /existing\nCOPY f /newname\nCOPY link /d/\n",
		"f":          "F",
	})
	os.Symlink("f", filepath.Join(dir, "link"))
	r, out := e.mustBuild(dir, nil)
	fs := tree(t, rootfsOf(t, onlyImage(t, r)))
	for p, typ := range map[string]string{"existing": "dir", "existing/f": "file", "existing/keep": "file", "newname": "file", "d/link": "file"} {
		if fs[p].Type != typ {
			t.Errorf("/%s: %v, want %s\n%s", p, fs[p], typ, out)
		}
	}
}

func TestCopyExclude(t *testing.T) {
	e := newEnv(t)
	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM scratch\nCOPY --exclude=*.log --exclude=tmp src/ /app/\n",
		"src/a.go":   "a", "src/b.log": "b", "src/tmp/x": "x", "src/sub/c.go": "c",
	})
	r, out := e.mustBuild(dir, nil)
	got := strings.Join(keys(tree(t, rootfsOf(t, onlyImage(t, r)))), " ")
	if got != "app app/a.go app/sub app/sub/c.go" {
		t.Errorf("got %s\n%s", got, out)
	}
}
