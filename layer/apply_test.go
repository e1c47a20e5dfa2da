package layer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/fixture"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

func TestApplyEntryKinds(t *testing.T) {
	dir, check := sandbox(t)
	exe := file("bin/tool", "#!/bin/sh\n")
	exe.mode = 0o4755
	tmp := dir_("tmp", 0o1777)
	old := time.Unix(1000000000, 0)
	etc := dirE("etc")
	etc.mtime = old
	data := mkTar(t,
		dirE("./"), etc, file("etc/hostname", "box\n"), exe, tmp,
		symlink("etc/mtab", "/proc/self/mounts"), hardlink("bin/tool2", "bin/tool"),
		ent{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600},
		file("/abs/name", "leading slash is the root"),
		file("a/./../b", "cleaned inside the root"),
		file("//x", "double slash"),
	)
	n, err := Apply(dir, bytes.NewReader(data), Options{Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(data)) {
		t.Errorf("Apply read %d bytes, the tar has %d", n, len(data))
	}
	check()
	if got := readFile(t, filepath.Join(dir, "etc/hostname")); got != "box\n" {
		t.Errorf("etc/hostname = %q", got)
	}
	for p, want := range map[string]os.FileMode{"bin/tool": 0o755 | os.ModeSetuid, "tmp": 0o777 | os.ModeSticky | os.ModeDir} {
		fi, err := os.Lstat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s mode %v, want %v", p, fi.Mode(), want)
		}
	}
	if l, _ := os.Readlink(filepath.Join(dir, "etc/mtab")); l != "/proc/self/mounts" {
		t.Errorf("etc/mtab -> %q", l)
	}
	var a, b unix.Stat_t
	unix.Lstat(filepath.Join(dir, "bin/tool"), &a)
	unix.Lstat(filepath.Join(dir, "bin/tool2"), &b)
	if a.Ino != b.Ino {
		t.Error("bin/tool2 is not a hardlink of bin/tool")
	}
	var f unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "run/fifo"), &f); err != nil || f.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("run/fifo not a fifo: %v", err)
	}
	for _, p := range []string{"abs/name", "b", "x"} {
		if !exists(filepath.Join(dir, p)) {
			t.Errorf("%s missing", p)
		}
	}
	// The directory's mtime is the layer's, though files were written
	// into it after it was made.
	fi, _ := os.Stat(filepath.Join(dir, "etc"))
	if !fi.ModTime().Equal(old) {
		t.Errorf("etc mtime %v, want %v", fi.ModTime(), old)
	}
	fi, _ = os.Stat(filepath.Join(dir, "etc/hostname"))
	if !fi.ModTime().Equal(t0) {
		t.Errorf("etc/hostname mtime %v, want %v", fi.ModTime(), t0)
	}
}

func dir_(name string, mode int64) ent {
	e := dirE(name)
	e.mode = mode
	return e
}

func TestApplyOwnersDevicesXattrs(t *testing.T) {
	fixture.RequireRoot(t)
	dir, check := sandbox(t)
	f := file("home/u/f", "x")
	f.uid, f.gid, f.mode = 1000, 1001, 0o6750 // set-id bits survive the chown
	f.xattrs = map[string]string{"user.k": "v", "trusted.t": "tv", "security.capability": "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}
	d := dirE("home/u")
	d.uid, d.gid = 1000, 1000
	d.xattrs = map[string]string{"trusted.overlay.opaque": "y", "user.d": "1"}
	l := symlink("home/u/l", "f")
	l.uid, l.gid = 7, 8
	data := mkTar(t, d, f, l,
		ent{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
		ent{name: "dev/loop0", typ: tar.TypeBlock, mode: 0o660, major: 7, minor: 0, gid: 6},
	)
	mustApply(t, dir, data, Options{})
	check()
	var st unix.Stat_t
	unix.Lstat(filepath.Join(dir, "home/u/f"), &st)
	if st.Uid != 1000 || st.Gid != 1001 || st.Mode&0o7777 != 0o6750 {
		t.Errorf("home/u/f owner %d:%d mode %o", st.Uid, st.Gid, st.Mode&0o7777)
	}
	xa, _ := listXattrs(-1, filepath.Join(dir, "home/u/f"))
	for k, v := range f.xattrs {
		if string(xa[k]) != v {
			t.Errorf("xattr %s = %q, want %q", k, xa[k], v)
		}
	}
	xa, _ = listXattrs(-1, filepath.Join(dir, "home/u"))
	if _, ok := xa["trusted.overlay.opaque"]; ok {
		t.Error("an overlayfs xattr was taken from the layer")
	}
	if string(xa["user.d"]) != "1" {
		t.Errorf("dir xattr user.d = %q", xa["user.d"])
	}
	unix.Lstat(filepath.Join(dir, "home/u/l"), &st)
	if st.Uid != 7 || st.Gid != 8 {
		t.Errorf("symlink owner %d:%d, want 7:8", st.Uid, st.Gid)
	}
	unix.Lstat(filepath.Join(dir, "dev/null"), &st)
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) || st.Mode&0o777 != 0o666 {
		t.Errorf("dev/null: mode %o rdev %x", st.Mode, st.Rdev)
	}
	unix.Lstat(filepath.Join(dir, "dev/loop0"), &st)
	if st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != unix.Mkdev(7, 0) || st.Gid != 6 {
		t.Errorf("dev/loop0: mode %o rdev %x gid %d", st.Mode, st.Rdev, st.Gid)
	}
}

// TestApplyTypeChanges replaces entries of an earlier layer with other
// kinds, as docker does: anything over a dir replaces it, a dir over a dir
// merges.
func TestApplyTypeChanges(t *testing.T) {
	dir, check := sandbox(t)
	mustApply(t, dir, mkTar(t, dirE("a"), file("a/old", "1"), file("b", "file"), symlink("c", "/"), dirE("d"), file("d/keep", "k")), Options{})
	mustApply(t, dir, mkTar(t, file("a", "now a file"), dirE("b"), file("b/in", "2"), dirE("c"), file("c/x", "3"), dirE("d"), file("d/new", "n")), Options{})
	check()
	if got := readFile(t, filepath.Join(dir, "a")); got != "now a file" {
		t.Errorf("a = %q", got)
	}
	if got := readFile(t, filepath.Join(dir, "b/in")); got != "2" {
		t.Errorf("b/in = %q", got)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "c")); err != nil || !fi.IsDir() {
		t.Errorf("c is not a directory now: %v", err)
	}
	for _, p := range []string{"d/keep", "d/new", "c/x"} {
		if !exists(filepath.Join(dir, p)) {
			t.Errorf("%s missing after merge", p)
		}
	}
}

func TestWhiteoutsMerged(t *testing.T) {
	dir, check := sandbox(t)
	mustApply(t, dir, mkTar(t, dirE("etc"), file("etc/gone", "1"), dirE("etc/sub"), file("etc/sub/x", "x"),
		dirE("opq"), file("opq/old", "o"), dirE("opq/olddir"), file("opq/olddir/y", "y"), file("keep", "k")), Options{})
	mustApply(t, dir, mkTar(t,
		file("etc/.wh.gone", ""), file("etc/.wh.sub", ""), file("etc/.wh.never-was", ""),
		dirE("opq"), file("opq/new", "n"), file("opq/.wh..wh..opq", ""), dirE("opq/newdir"), file("opq/newdir/z", "z"),
		// a whiteout of an entry this same layer makes does not remove it
		file("fresh", "f"), file(".wh.fresh", ""),
		// nothing to remove, and no directory made for it
		file("nodir/.wh.x", ""),
	), Options{})
	check()
	for p, want := range map[string]bool{"etc": true, "etc/gone": false, "etc/sub": false, "opq/old": false, "opq/olddir": false,
		"opq/new": true, "opq/newdir/z": true, "keep": true, "fresh": true, "etc/.wh.gone": false, "opq/.wh..wh..opq": false, "nodir": false} {
		if got := exists(filepath.Join(dir, p)); got != want {
			t.Errorf("%s exists=%v, want %v", p, got, want)
		}
	}
}

func TestWhiteoutsOverlay(t *testing.T) {
	fixture.RequireRoot(t)
	dir, check := sandbox(t)
	mustApply(t, dir, mkTar(t, dirE("etc"), file("etc/.wh.gone", ""), dirE("opq"), file("opq/.wh..wh..opq", ""), file("opq/new", "n")),
		Options{Overlay: true, NoDevices: true})
	check()
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "etc/gone"), &st); err != nil || !isWhiteoutDev(&st) {
		t.Errorf("etc/gone is not a 0:0 char device: %v mode %o rdev %d", err, st.Mode, st.Rdev)
	}
	xa, _ := listXattrs(-1, filepath.Join(dir, "opq"))
	if string(xa["trusted.overlay.opaque"]) != "y" {
		t.Errorf("opq xattrs %v, want trusted.overlay.opaque=y", xa)
	}
	for _, p := range []string{"etc/.wh.gone", "opq/.wh..wh..opq"} {
		if exists(filepath.Join(dir, p)) {
			t.Errorf("%s was written", p)
		}
	}
}

// TestOverlayMount stacks two applied layers in a real overlayfs mount:
// what the upper layer whites out is gone, an opaque dir hides the lower's
// contents.
func TestOverlayMount(t *testing.T) {
	fixture.RequireRoot(t)
	base := t.TempDir()
	l1, l2, mnt := filepath.Join(base, "l1"), filepath.Join(base, "l2"), filepath.Join(base, "mnt")
	for _, d := range []string{l1, l2, mnt} {
		os.Mkdir(d, 0o755)
	}
	mustApply(t, l1, mkTar(t, dirE("etc"), file("etc/a", "a"), file("etc/b", "b"), dirE("opq"), file("opq/old", "o")), Options{Overlay: true})
	mustApply(t, l2, mkTar(t, dirE("etc"), file("etc/.wh.a", ""), dirE("opq"), file("opq/.wh..wh..opq", ""), file("opq/new", "n")), Options{Overlay: true})
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, "lowerdir="+l2+":"+l1); err != nil {
		t.Skipf("overlayfs mount not possible here: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	for p, want := range map[string]bool{"etc/a": false, "etc/b": true, "opq/old": false, "opq/new": true} {
		if got := exists(filepath.Join(mnt, p)); got != want {
			t.Errorf("in the overlay %s exists=%v, want %v", p, got, want)
		}
	}
}

func TestMaliciousLayers(t *testing.T) {
	bomb := func(t testing.TB) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		tw := tar.NewWriter(zw)
		tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: 8 << 20})
		tw.Write(make([]byte, 8<<20))
		tw.Close()
		zw.Close()
		return b.Bytes()
	}
	cases := []struct {
		name  string
		tar   func(testing.TB) []byte
		o     Options
		entry string // the entry the error must name
	}{
		{"dotdot", func(t testing.TB) []byte { return mkTar(t, file("../../etc/passwd", "pwned")) }, Options{}, "../../etc/passwd"},
		{"abs-dotdot", func(t testing.TB) []byte { return mkTar(t, file("/abs/../../x", "pwned")) }, Options{}, "/abs/../../x"},
		{"symlink-root-parent", func(t testing.TB) []byte {
			return mkTar(t, symlink("a", "/"), file("a/etc/passwd", "pwned"))
		}, Options{}, "a/etc/passwd"},
		{"symlink-dotdot-parent", func(t testing.TB) []byte {
			return mkTar(t, symlink("a", "../.."), file("a/x", "pwned"))
		}, Options{}, "a/x"},
		{"symlink-parent-sentinel", func(t testing.TB) []byte {
			return mkTar(t, symlink("a", "../sentinel"), file("a/passwd", "pwned"))
		}, Options{}, "a/passwd"},
		{"symlink-parent-dir-entry", func(t testing.TB) []byte {
			return mkTar(t, symlink("a", "../sentinel"), dirE("a/sub"))
		}, Options{}, "a/sub"},
		{"symlink-parent-whiteout", func(t testing.TB) []byte {
			return mkTar(t, symlink("a", "../sentinel"), file("a/.wh.passwd", ""))
		}, Options{}, "a/.wh.passwd"},
		{"symlink-parent-opaque", func(t testing.TB) []byte {
			return mkTar(t, symlink("a", "../sentinel"), file("a/.wh..wh..opq", ""))
		}, Options{}, "a/.wh..wh..opq"},
		{"hardlink-escape", func(t testing.TB) []byte { return mkTar(t, hardlink("shadow", "../../../etc/shadow")) }, Options{}, "shadow"},
		{"hardlink-missing", func(t testing.TB) []byte { return mkTar(t, hardlink("l", "does/not/exist")) }, Options{}, "l"},
		{"hardlink-through-symlink", func(t testing.TB) []byte {
			return mkTar(t, symlink("s", "../sentinel"), hardlink("l", "s/passwd"))
		}, Options{}, "l"},
		{"device-nodevices", func(t testing.TB) []byte {
			return mkTar(t, ent{name: "dev/sda", typ: tar.TypeBlock, mode: 0o600, major: 8})
		}, Options{NoDevices: true}, "dev/sda"},
		{"chardev-nodevices", func(t testing.TB) []byte {
			return mkTar(t, ent{name: "dev/mem", typ: tar.TypeChar, mode: 0o600, major: 1, minor: 1})
		}, Options{NoDevices: true}, "dev/mem"},
		{"gzip-bomb", bomb, Options{MaxBytes: 1 << 20}, "zeros"},
		{"opaque-as-dir", func(t testing.TB) []byte { return mkTar(t, dirE("d"), dirE("d/.wh..wh..opq")) }, Options{}, "d/.wh..wh..opq"},
		{"under-opaque-name", func(t testing.TB) []byte { return mkTar(t, file("d/.wh..wh..opq/x", "x")) }, Options{}, "d/.wh..wh..opq/x"},
		{"under-whiteout-name", func(t testing.TB) []byte { return mkTar(t, file("d/.wh.f/x", "x")) }, Options{}, "d/.wh.f/x"},
		{"whiteout-dotdot", func(t testing.TB) []byte { return mkTar(t, dirE("d"), file("d/.wh...", "")) }, Options{}, "d/.wh..."},
		{"whiteout-dot", func(t testing.TB) []byte { return mkTar(t, file(".wh..", "")) }, Options{}, ".wh.."},
		{"whiteout-empty", func(t testing.TB) []byte { return mkTar(t, file("d/.wh.", "")) }, Options{}, "d/.wh."},
		{"root-as-file", func(t testing.TB) []byte { return mkTar(t, file(".", "x")) }, Options{}, "."},
		{"dotdot-only", func(t testing.TB) []byte { return mkTar(t, dirE("..")) }, Options{}, ".."},
		{"file-parent", func(t testing.TB) []byte { return mkTar(t, file("f", "x"), file("f/y", "y")) }, Options{}, "f/y"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, overlay := range []bool{false, true} {
				if overlay && !isRoot() {
					continue // overlay whiteouts need mknod
				}
				dir, check := sandbox(t)
				o := c.o
				o.Overlay = overlay
				_, err := Apply(dir, bytes.NewReader(c.tar(t)), o)
				if err == nil {
					t.Fatalf("overlay=%v: Apply accepted it", overlay)
				}
				if !strings.Contains(err.Error(), `"`+c.entry+`"`) {
					t.Errorf("overlay=%v: error does not name %q: %v", overlay, c.entry, err)
				}
				check()
				if readFile(t, filepath.Join(dir, "../sentinel/passwd")) != "keep" {
					t.Fatal("sentinel changed")
				}
			}
		})
	}
}

// TestEscapingSymlinkAllowed: a symlink may point anywhere (it is resolved
// in the container), and replacing it later does not write through it.
func TestEscapingSymlinkAllowed(t *testing.T) {
	dir, check := sandbox(t)
	mustApply(t, dir, mkTar(t, symlink("up", "../sentinel/passwd"), symlink("abs", "/etc/shadow")), Options{})
	mustApply(t, dir, mkTar(t, file("up", "replaces the link")), Options{})
	check()
	if got := readFile(t, filepath.Join(dir, "up")); got != "replaces the link" {
		t.Errorf("up = %q", got)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "abs")); l != "/etc/shadow" {
		t.Errorf("abs -> %q", l)
	}
}

func TestCompressionDetected(t *testing.T) {
	raw := mkTar(t, dirE("d"), file("d/f", strings.Repeat("berth ", 10000)))
	var gz, zs bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	ze, _ := zstd.NewWriter(&zs)
	ze.Write(raw)
	ze.Close()
	for name, data := range map[string][]byte{"none": raw, "gzip": gz.Bytes(), "zstd": zs.Bytes()} {
		rc, c, err := Decompress(bytes.NewReader(data))
		if err != nil || string(c) != name {
			t.Errorf("%s detected as %q (%v)", name, c, err)
			continue
		}
		rc.Close()
		dir, _ := sandbox(t)
		n, err := Apply(dir, bytes.NewReader(data), Options{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if n != int64(len(raw)) {
			t.Errorf("%s: %d uncompressed bytes, want %d", name, n, len(raw))
		}
		if got := readFile(t, filepath.Join(dir, "d/f")); got != strings.Repeat("berth ", 10000) {
			t.Errorf("%s: content differs", name)
		}
	}
	if _, err := Apply(t.TempDir(), strings.NewReader("BZh91AY&SY garbage"), Options{}); err == nil || !strings.Contains(err.Error(), "bzip2") {
		t.Errorf("bzip2 layer: %v", err)
	}
	// A truncated gzip stream is an error, not a short layer.
	if _, err := Apply(t.TempDir(), bytes.NewReader(gz.Bytes()[:gz.Len()-10]), Options{}); err == nil {
		t.Error("truncated gzip accepted")
	}
}

func TestSparseFile(t *testing.T) {
	tarBin := fixture.RequireBinary(t, "tar", "tar")
	src := t.TempDir()
	f, _ := os.Create(filepath.Join(src, "sparse"))
	f.WriteAt([]byte("start"), 0)
	f.WriteAt([]byte("end"), 64<<20)
	f.Close()
	tarPath := filepath.Join(t.TempDir(), "s.tar")
	if out, err := exec.Command(tarBin, "--sparse", "-C", src, "-cf", tarPath, "sparse").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	data, _ := os.ReadFile(tarPath)
	dir, _ := sandbox(t)
	mustApply(t, dir, data, Options{})
	b := readFile(t, filepath.Join(dir, "sparse"))
	if len(b) != 64<<20+3 || b[:5] != "start" || b[len(b)-3:] != "end" {
		t.Fatalf("sparse file content wrong (len %d)", len(b))
	}
	var st unix.Stat_t
	unix.Stat(filepath.Join(dir, "sparse"), &st)
	if st.Blocks*512 > 8<<20 {
		t.Errorf("sparse file takes %d bytes on disk: holes were filled", st.Blocks*512)
	}
}

// TestLongNames: GNU long names and links and PAX paths (past ustar's 100
// bytes) come through archive/tar.
func TestLongNames(t *testing.T) {
	long := strings.Repeat("d", 120) + "/" + strings.Repeat("f", 150)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range []*tar.Header{
		{Name: long, Typeflag: tar.TypeReg, Mode: 0o644, Size: 1, Format: tar.FormatGNU},
		{Name: "gnu-link", Linkname: long, Typeflag: tar.TypeLink, Format: tar.FormatGNU},
		{Name: strings.Repeat("p", 200), Linkname: strings.Repeat("t", 300), Typeflag: tar.TypeSymlink, Format: tar.FormatPAX},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("x"))
		}
	}
	tw.Close()
	dir, check := sandbox(t)
	mustApply(t, dir, b.Bytes(), Options{})
	check()
	if readFile(t, filepath.Join(dir, "gnu-link")) != "x" || readFile(t, filepath.Join(dir, long)) != "x" {
		t.Error("long-named file or its hardlink missing")
	}
	if l, _ := os.Readlink(filepath.Join(dir, strings.Repeat("p", 200))); l != strings.Repeat("t", 300) {
		t.Errorf("long symlink target %d bytes", len(l))
	}
}

// TestDebianRootfs unpacks a real Debian rootfs tarball with Apply and with
// GNU tar: the trees must match entry for entry (modes, owners, mtimes,
// hardlinks, xattrs, content); then Tar of the tree applies back the same.
func TestDebianRootfs(t *testing.T) {
	fixture.RequireRoot(t)
	tarBin := fixture.RequireBinary(t, "tar", "tar")
	src, err := fixture.DebianTar()
	if err != nil {
		t.Skipf("no Debian rootfs: %v", err)
	}
	base := t.TempDir()
	mine, gnu, again := filepath.Join(base, "mine"), filepath.Join(base, "gnu"), filepath.Join(base, "again")
	for _, d := range []string{mine, gnu, again} {
		os.Mkdir(d, 0o755)
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Apply(mine, f, Options{}); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tarBin, "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", src, "-C", gnu).CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v %s", err, out)
	}
	m1, m2 := manifest(t, mine), manifest(t, gnu)
	if m1 != m2 {
		t.Fatalf("Apply and tar -x differ:\n%s", firstDiff(m1, m2))
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(Tar(mine, pw, DiffOptions{})) }()
	if _, err := Apply(again, pr, Options{}); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	// Tar has no entry for the root itself (like docker export).
	if err := os.Chmod(again, mode(t, mine)); err != nil {
		t.Fatal(err)
	}
	if m3 := manifest(t, again); m3 != m1 {
		t.Fatalf("Tar -> Apply of the Debian tree differs:\n%s", firstDiff(m1, m3))
	}
}

func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(la) && i < len(lb); i++ {
		if la[i] != lb[i] {
			return "- " + la[i] + "\n+ " + lb[i]
		}
	}
	return "(one is a prefix of the other)"
}

func mode(t testing.TB, p string) os.FileMode {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestInRootSymlinks: with InRootSymlinks, parents that are symlinks are
// followed as in the container (dir is "/"), never out of dir.
func TestInRootSymlinks(t *testing.T) {
	dir, check := sandbox(t)
	mustApply(t, dir, mkTar(t, dirE("usr"), dirE("usr/lib"), symlink("lib", "usr/lib"), symlink("abs", "/usr"),
		symlink("esc", "../../../.."), symlink("dang", "nowhere")), Options{})
	o := Options{InRootSymlinks: true}
	mustApply(t, dir, mkTar(t, file("lib/x", "x"), file("abs/y", "y"), file("esc/z", "z"), file("esc/sentinel/passwd", "pwned"),
		hardlink("h", "lib/x"), file("lib/.wh.gone", "")), o)
	check()
	for p, want := range map[string]string{"usr/lib/x": "x", "usr/y": "y", "z": "z", "sentinel/passwd": "pwned", "h": "x"} {
		if got := readFile(t, filepath.Join(dir, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if fi, err := os.Lstat(filepath.Join(dir, "lib")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("lib is no longer a symlink: %v", err)
	}
	_, err := Apply(dir, bytes.NewReader(mkTar(t, file("dang/f", "f"))), o)
	if err == nil || !strings.Contains(err.Error(), `"dang/f"`) {
		t.Errorf("write through a dangling symlink: %v", err)
	}
	check()
	// Without the option the same layer is refused.
	if _, err := Apply(dir, bytes.NewReader(mkTar(t, file("lib/x2", "x"))), Options{}); err == nil {
		t.Error("a symlink parent was followed without InRootSymlinks")
	}
}

// TestLockedDirs: directories whose modes forbid writing (or, without
// root, even entering) still get their contents, and the modes and times
// they list, the later listing of a dir winning.
func TestLockedDirs(t *testing.T) {
	dir, check := sandbox(t)
	ro := dir_("ro", 0o555)
	shut := dir_("ro/shut", 0)
	again := dir_("ro", 0o500)
	again.mtime = time.Unix(1200000000, 0)
	mustApply(t, dir, mkTar(t, file("ro/shut/sub/g", "g"), dirE("ro/shut/sub"), ro, shut, file("ro/shut/f", "f"), again), Options{})
	check()
	for p, want := range map[string]os.FileMode{"ro": 0o500, "ro/shut": 0} {
		if got := mode(t, filepath.Join(dir, p)); got != want {
			t.Errorf("%s mode %o, want %o", p, got, want)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "ro")); !fi.ModTime().Equal(again.mtime) {
		t.Errorf("ro mtime %v, want the later entry's %v", fi.ModTime(), again.mtime)
	}
	makeRemovable(dir)
	if readFile(t, filepath.Join(dir, "ro/shut/sub/g")) != "g" {
		t.Error("content of locked dirs missing")
	}
}
