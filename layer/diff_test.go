package layer

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/fixture"
	"golang.org/x/sys/unix"
)

// makeTree fills dir with every kind of entry this user can make.
func makeTree(t testing.TB, dir string) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "etc/hostname"), "box\n", 0o644)
	writeFile(t, filepath.Join(dir, "bin/tool"), strings.Repeat("ELF", 100000), 0o4755)
	writeFile(t, filepath.Join(dir, "etc/secret"), "s", 0o600)
	os.Mkdir(filepath.Join(dir, "tmp"), 0o755)
	unix.Chmod(filepath.Join(dir, "tmp"), 0o1777)
	os.Mkdir(filepath.Join(dir, "empty"), 0o700)
	if err := os.Link(filepath.Join(dir, "bin/tool"), filepath.Join(dir, "bin/tool-link")); err != nil {
		t.Fatal(err)
	}
	os.Symlink("/proc/self/mounts", filepath.Join(dir, "etc/mtab"))
	os.Symlink("../bin/tool", filepath.Join(dir, "etc/rel"))
	unix.Mkfifo(filepath.Join(dir, "tmp/fifo"), 0o640)
	if err := unix.Setxattr(filepath.Join(dir, "etc/hostname"), "user.berth", []byte("v1"), 0); err != nil && err != unix.ENOTSUP {
		t.Fatal(err)
	}
	if isRoot() {
		unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
		unix.Mknod(filepath.Join(dir, "sda"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 0)))
		os.Lchown(filepath.Join(dir, "etc/secret"), 1000, 1002)
		os.Lchown(filepath.Join(dir, "etc/rel"), 5, 6)
		os.Lchown(filepath.Join(dir, "empty"), 33, 33)
		for k, v := range map[string]string{"trusted.berth": "t", "security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"} {
			if err := unix.Setxattr(filepath.Join(dir, "bin/tool"), k, []byte(v), 0); err != nil {
				t.Fatal(err)
			}
		}
		unix.Lsetxattr(filepath.Join(dir, "etc/mtab"), "trusted.link", []byte("l"), 0)
		unix.Setxattr(filepath.Join(dir, "empty"), "trusted.dir", []byte("d"), 0)
	}
	setTimes(t, dir, time.Unix(1600000000, 0))
}

func TestTarApplyRoundTrip(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src)
	var b bytes.Buffer
	if err := Tar(src, &b, DiffOptions{}); err != nil {
		t.Fatal(err)
	}
	dst, check := sandbox(t)
	mustApply(t, dst, b.Bytes(), Options{})
	check()
	want, got := manifest(t, src), manifest(t, dst)
	if want != got {
		t.Errorf("trees differ after Tar -> Apply:\nsource:\n%s\napplied:\n%s", want, got)
	}
	// The tar is deterministic and its hardlink is an entry, not a copy.
	var b2 bytes.Buffer
	if err := Tar(dst, &b2, DiffOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), b2.Bytes()) {
		t.Error("Tar of the applied tree differs from the original tar")
	}
	hdrs := headers(t, b.Bytes())
	if h := hdrs["bin/tool-link"]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "bin/tool" {
		t.Errorf("bin/tool-link header %+v, want a hardlink to bin/tool", h)
	}
	for name, h := range hdrs {
		if h.Uname != "" || h.Gname != "" || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() || h.ModTime.Nanosecond() != 0 {
			t.Errorf("%s: names %q/%q atime %v ctime %v mtime %v", name, h.Uname, h.Gname, h.AccessTime, h.ChangeTime, h.ModTime)
		}
	}
}

// headers reads a tar's headers by name, in order in names.
func headers(t testing.TB, data []byte) map[string]*tar.Header {
	t.Helper()
	out := map[string]*tar.Header{}
	for _, h := range headerList(t, data) {
		out[strings.TrimSuffix(h.Name, "/")] = h
	}
	return out
}

func headerList(t testing.TB, data []byte) []*tar.Header {
	t.Helper()
	var out []*tar.Header
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
}

func TestSourceDateEpoch(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "new"), "n", 0o644)
	writeFile(t, filepath.Join(src, "old"), "o", 0o644)
	os.Chtimes(filepath.Join(src, "old"), time.Unix(100, 0), time.Unix(100, 0))
	epoch := time.Unix(1000, 0)
	var a, b bytes.Buffer
	if err := Tar(src, &a, DiffOptions{SourceDateEpoch: &epoch}); err != nil {
		t.Fatal(err)
	}
	// Touching a file later does not change the clamped tar.
	os.Chtimes(filepath.Join(src, "new"), time.Now(), time.Now())
	if err := Tar(src, &b, DiffOptions{SourceDateEpoch: &epoch}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("clamped tars differ after a touch")
	}
	h := headers(t, a.Bytes())
	if !h["new"].ModTime.Equal(epoch) || !h["old"].ModTime.Equal(time.Unix(100, 0)) {
		t.Errorf("mtimes new=%v old=%v, want %v and 100", h["new"].ModTime, h["old"].ModTime, epoch)
	}
}

// TestOverlayDiffRoundTrip: an overlayfs-style upper (whiteout devices,
// an opaque dir) goes through Diff and comes back identical from Apply
// with Overlay; applied without Overlay on the lower it gives the merged
// view.
func TestOverlayDiffRoundTrip(t *testing.T) {
	fixture.RequireRoot(t)
	lower, upper := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(lower, "etc/gone"), "g", 0o644)
	writeFile(t, filepath.Join(lower, "etc/kept"), "k", 0o644)
	writeFile(t, filepath.Join(lower, "opq/old"), "o", 0o644)
	writeFile(t, filepath.Join(lower, "opq/sub/deep"), "d", 0o644)

	writeFile(t, filepath.Join(upper, "etc/new"), "n", 0o640)
	if err := unix.Mknod(filepath.Join(upper, "etc/gone"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(upper, "opq/fresh"), "f", 0o644)
	if err := unix.Setxattr(filepath.Join(upper, "opq"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	unix.Setxattr(filepath.Join(upper, "opq"), "user.keep", []byte("1"), 0)
	setTimes(t, upper, time.Unix(1600000000, 0))

	var b bytes.Buffer
	if err := Diff(upper, &b); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range headerList(t, b.Bytes()) {
		names = append(names, h.Name)
		if _, ok := h.PAXRecords["SCHILY.xattr.trusted.overlay.opaque"]; ok {
			t.Errorf("%s carries an overlayfs xattr", h.Name)
		}
	}
	want := []string{"etc/", "etc/.wh.gone", "etc/new", "opq/", "opq/.wh..wh..opq", "opq/fresh"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("Diff entries %q, want %q", names, want)
	}

	dst, check := sandbox(t)
	mustApply(t, dst, b.Bytes(), Options{Overlay: true})
	check()
	if m1, m2 := manifest(t, upper), manifest(t, dst); m1 != m2 {
		t.Errorf("overlay apply differs from the upper:\nupper:\n%s\napplied:\n%s", m1, m2)
	}

	mustApply(t, lower, b.Bytes(), Options{})
	for p, want := range map[string]bool{"etc/gone": false, "etc/kept": true, "etc/new": true, "opq/old": false, "opq/sub": false, "opq/fresh": true} {
		if got := exists(filepath.Join(lower, p)); got != want {
			t.Errorf("merged: %s exists=%v, want %v", p, got, want)
		}
	}
}

func TestChanges(t *testing.T) {
	fixture.RequireRoot(t)
	lower, upper := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(lower, "etc/passwd"), "p", 0o644)
	writeFile(t, filepath.Join(lower, "etc/gone"), "g", 0o644)
	writeFile(t, filepath.Join(upper, "etc/passwd"), "p2", 0o644)
	writeFile(t, filepath.Join(upper, "srv/new/file"), "n", 0o644)
	unix.Mknod(filepath.Join(upper, "etc/gone"), unix.S_IFCHR, 0)
	ch, err := Changes(upper, lower)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range ch {
		got = append(got, c.String())
	}
	want := []string{"C /etc", "D /etc/gone", "C /etc/passwd", "A /srv", "A /srv/new", "A /srv/new/file"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Changes = %q, want %q", got, want)
	}
}

func TestDiffDirs(t *testing.T) {
	lower := t.TempDir()
	makeTree(t, lower)
	upper := t.TempDir()
	var b bytes.Buffer
	if err := Tar(lower, &b, DiffOptions{}); err != nil {
		t.Fatal(err)
	}
	mustApply(t, upper, b.Bytes(), Options{})
	// Change the copy: modify, add, delete, replace a dir by a file.
	writeFile(t, filepath.Join(upper, "etc/hostname"), "changed\n", 0o644)
	writeFile(t, filepath.Join(upper, "srv/www/index.html"), "hi", 0o644)
	os.Remove(filepath.Join(upper, "etc/secret"))
	os.RemoveAll(filepath.Join(upper, "empty"))
	writeFile(t, filepath.Join(upper, "empty"), "was a dir", 0o644)
	os.Chmod(filepath.Join(upper, "bin/tool"), 0o755) // a mode change alone, on a hardlinked file
	setTimes(t, filepath.Join(upper, "srv"), time.Unix(1650000000, 0))
	os.Chtimes(filepath.Join(upper, "etc/hostname"), time.Unix(1650000000, 0), time.Unix(1650000000, 0))

	var d bytes.Buffer
	if err := DiffDirs(lower, upper, &d, DiffOptions{}); err != nil {
		t.Fatal(err)
	}
	hdrs := headers(t, d.Bytes())
	for _, name := range []string{"etc/hostname", "etc/.wh.secret", "srv", "srv/www/index.html", "empty", "etc", "bin/tool", "bin/tool-link"} {
		if hdrs[name] == nil {
			t.Errorf("diff lacks %s", name)
		}
	}
	for _, name := range []string{"etc/mtab", "tmp", "tmp/fifo"} {
		if hdrs[name] != nil {
			t.Errorf("diff has unchanged %s", name)
		}
	}
	// Applying the diff on the lower gives the upper.
	mustApply(t, lower, d.Bytes(), Options{})
	if m1, m2 := manifest(t, upper), manifest(t, lower); m1 != m2 {
		t.Errorf("lower+diff differs from upper:\nupper:\n%s\nlower+diff:\n%s", m1, m2)
	}
}

// TestOverlayUpperDiff changes files through a real overlayfs mount, then
// diffs its upper dir: applied on the lower, the diff gives the merged
// view the container saw.
func TestOverlayUpperDiff(t *testing.T) {
	fixture.RequireRoot(t)
	base := t.TempDir()
	lower, upper, work, mnt, check := filepath.Join(base, "lower"), filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "mnt"), filepath.Join(base, "check")
	for _, d := range []string{lower, upper, work, mnt, check} {
		os.Mkdir(d, 0o755)
	}
	lowerTar := mkTar(t, dirE("etc"), file("etc/passwd", "root"), file("etc/gone", "g"), dirE("var"), dirE("var/cache"),
		file("var/cache/a", "a"), file("var/cache/b", "b"), file("bin/sh", "sh"), hardlink("bin/ash", "bin/sh"))
	mustApply(t, lower, lowerTar, Options{Overlay: true})
	mustApply(t, check, lowerTar, Options{})
	if err := unix.Mount("overlay", mnt, "overlay", 0, "lowerdir="+lower+",upperdir="+upper+",workdir="+work); err != nil {
		t.Skipf("overlayfs mount not possible here: %v", err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	writeFile(t, filepath.Join(mnt, "etc/passwd"), "root\nuser", 0o644)
	os.Remove(filepath.Join(mnt, "etc/gone"))
	os.RemoveAll(filepath.Join(mnt, "var/cache"))
	writeFile(t, filepath.Join(mnt, "var/cache/fresh"), "f", 0o600) // an opaque dir now
	writeFile(t, filepath.Join(mnt, "srv/new"), "n", 0o644)
	os.Chown(filepath.Join(mnt, "bin/sh"), 10, 10) // copy-up of a hardlinked file
	os.Link(filepath.Join(mnt, "srv/new"), filepath.Join(mnt, "srv/new2"))
	setTimes(t, mnt, time.Unix(1700000000, 0))
	merged := manifest(t, mnt)
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	mounted = false

	var b bytes.Buffer
	if err := Diff(upper, &b); err != nil {
		t.Fatal(err)
	}
	hdrs := headers(t, b.Bytes())
	for _, name := range []string{"etc/.wh.gone", "var/cache/.wh..wh..opq", "srv/new2", "etc/passwd"} {
		if hdrs[name] == nil {
			t.Errorf("diff of the upper lacks %s", name)
		}
	}
	if h := hdrs["srv/new2"]; h != nil && (h.Typeflag != tar.TypeLink || h.Linkname != "srv/new") {
		t.Errorf("srv/new2: type %c -> %q, want a hardlink to srv/new", h.Typeflag, h.Linkname)
	}
	mustApply(t, check, b.Bytes(), Options{})
	// The lower's hardlink bin/ash stays the old inode (overlayfs copied up
	// bin/sh alone), which the merged view shows the same way.
	if got := manifest(t, check); got != merged {
		t.Errorf("lower + diff differs from the merged view:\n%s", firstDiff(merged, got))
	}
}
