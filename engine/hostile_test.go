package engine

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestForgedRecordByPathID: a 64-byte "ID" that climbs out of containers/
// must not make berth read a record planted elsewhere (here: next to the
// store, as in a world-writable /tmp) and act on it: rm on the forged
// record, whose own ID pointed at a victim directory, deleted that
// directory.
func TestForgedRecordByPathID(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "store")
	e, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(dir, "victim")
	if err := os.MkdirAll(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(victim, "data"), []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	// containers/../../<evil> is dir/<evil>; pad the name to 64 bytes.
	prefix := "../../"
	evil := "evil" + strings.Repeat("x", 64-len(prefix)-4)
	ref := prefix + evil
	if err := os.MkdirAll(filepath.Join(dir, evil), 0o755); err != nil {
		t.Fatal(err)
	}
	// Its ID makes rm rename dir/victim to store/victim and remove that.
	rec := `{"ID":"../../victim","Name":"forged","Image":"x"}`
	if err := os.WriteFile(filepath.Join(dir, evil, "container.json"), []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := e.Lookup(ref); err == nil {
		t.Errorf("Lookup(%q) found the forged record %q", ref, c.ID)
	}
	if err := e.Remove(ref, RemoveOpts{Force: true}); err == nil {
		t.Errorf("Remove(%q) succeeded", ref)
	}
	if b, err := os.ReadFile(filepath.Join(victim, "data")); err != nil || string(b) != "precious" {
		t.Fatalf("victim directory damaged: %v", err)
	}
	// A record under a real ID that names another ID is refused too.
	id := strings.Repeat("ab", 32)
	if err := os.MkdirAll(e.dir(id), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.recordPath(id), []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := e.Lookup(id); err == nil {
		t.Errorf("Lookup(%s) returned a record naming ID %q", id, c.ID)
	}
	if _, err := os.Stat(filepath.Join(victim, "data")); err != nil {
		t.Fatal(err)
	}
}

// TestUserMinusOne: uid/gid 4294967295 is (uid_t)-1, "unchanged" to
// setresuid/setresgid/setgroups: -u 4294967295, or an image user with
// that id, ran the container as root. It must be refused.
func TestUserMinusOne(t *testing.T) {
	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\napp:x:4294967295:4294967295::/app:/bin/sh\nweb:x:33:33::/:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "etc/group"), []byte("root:x:0:\nnogroup:x:4294967295:web\n"), 0o644)
	for _, c := range []struct {
		spec  string
		extra []string
	}{{"4294967295", nil}, {"4294967295:4294967295", nil}, {"33:4294967295", nil}, {"app", nil}, {"web:nogroup", nil}, {"33", []string{"4294967295"}}} {
		if u, err := resolveUser(rootfs, c.spec, c.extra); err == nil && (u.UID == 1<<32-1 || u.GID == 1<<32-1 || slices.Contains(u.Groups, 1<<32-1)) {
			t.Errorf("%q %v: resolved to %+v", c.spec, c.extra, u)
		}
	}
	// web is in nogroup per /etc/group: that id is dropped, not kept.
	if u, err := resolveUser(rootfs, "web", nil); err != nil || len(u.Groups) != 0 {
		t.Errorf("web: %+v %v", u, err)
	}
}

var swapperOnce struct {
	sync.Once
	dir string
	err error
}

// swapper runs, detached in a busybox container, testdata/swapper: it
// swaps dir with a symlink to the host path target as fast as it can
// (making files, or directories for names ending in /, in dir first).
// It returns the container's ID.
func swapper(t *testing.T, dir, target string, files ...string) string {
	t.Helper()
	bb := busyboxImage(t)
	swapperOnce.Do(func() {
		swapperOnce.dir = filepath.Join(testDir, "swapper")
		build := exec.Command("go", "build", "-o", filepath.Join(swapperOnce.dir, "swapper"), "./testdata/swapper")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			swapperOnce.err = fmt.Errorf("building the swapper: %v\n%s", err, out)
		}
	})
	if swapperOnce.err != nil {
		t.Fatal(swapperOnce.err)
	}
	args := append(append([]string{"run", "-d", "-v", swapperOnce.dir + ":/swapper:ro"}, sec(t)...), bb, "/swapper/swapper", dir, target)
	id := strings.TrimSpace(berthOK(t, append(args, files...)...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	return id
}

// TestCpIntoSwappingContainer: a running container swaps a directory on
// the cp destination's path for a symlink to a host directory, over and
// over. cp must always land inside the container, never in the host
// directory (the lookup and the extraction must be one resolution).
func TestCpIntoSwappingContainer(t *testing.T) {
	host := t.TempDir()
	if err := os.Mkdir(filepath.Join(host, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	id := swapper(t, "/w", host, "sub/")
	e := testEngine(t)
	payload := mkTarBytes(t, "payload", "pwned")
	landed := 0
	for i := 0; i < 2000; i++ {
		if e.CopyTo(id, "/w/sub", bytes.NewReader(payload)) == nil {
			landed++
		}
		if _, err := os.Lstat(filepath.Join(host, "sub", "payload")); err == nil {
			t.Fatalf("copy %d wrote into the host directory %s", i, host)
		}
	}
	t.Logf("%d of 2000 copies landed in the container", landed)
}

// TestCpFromSwappingContainer: the same swap on the source side must not
// make cp list (or read) the host directory the symlink names.
func TestCpFromSwappingContainer(t *testing.T) {
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "host-secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	id := swapper(t, "/r/sub", host, "mine")
	e := testEngine(t)
	for i := 0; i < 2000; i++ {
		var buf bytes.Buffer
		e.CopyFrom(id, "/r", "r", false, &buf) // may fail midway; what it wrote counts
		tr := tar.NewReader(&buf)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if strings.Contains(h.Name, "host-secret") {
				t.Fatalf("copy %d listed the host directory: %s", i, h.Name)
			}
		}
	}
}

// TestCpStatSwappingContainer: cp's look at the destination must not
// report a file that only the host directory behind the symlink has.
func TestCpStatSwappingContainer(t *testing.T) {
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "host-only"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	id := swapper(t, "/s", host, "mine")
	e := testEngine(t)
	seen := 0
	for i := 0; i < 2000; i++ {
		if ok, _, _ := e.StatPath(id, "/s/host-only", true); ok {
			t.Fatalf("stat %d saw the host's file", i)
		}
		if ok, _, _ := e.StatPath(id, "/s/mine", true); ok {
			seen++
		}
	}
	if seen == 0 {
		t.Fatal("the container's own file was never seen")
	}
}

// TestCpWhiteoutNamesAreFiles: a tar copied into a container is not a
// layer: its .wh.passwd is a file, not the removal of /etc/passwd.
func TestCpWhiteoutNamesAreFiles(t *testing.T) {
	bb := busyboxImage(t)
	id := strings.TrimSpace(berthOK(t, "create", bb, "true"))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	e := testEngine(t)
	for _, n := range []string{".wh.passwd", ".wh..wh..opq"} {
		if err := e.CopyTo(id, "/etc", bytes.NewReader(mkTarBytes(t, n, ""))); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"/etc/passwd", "/etc/" + n} {
			if ok, _, err := e.StatPath(id, p, true); err != nil || !ok {
				t.Errorf("after copying %s: %s is gone (%v)", n, p, err)
			}
		}
	}
}

// TestCpFileBindMount: a file bound into the container is still found
// and copied out now that lookups go through a root (a directory).
func TestCpFileBindMount(t *testing.T) {
	bb := busyboxImage(t)
	src := filepath.Join(t.TempDir(), "bound")
	if err := os.WriteFile(src, []byte("bound content"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(berthOK(t, "create", "-v", src+":/etc/x", bb, "true"))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	e := testEngine(t)
	if ok, isDir, err := e.StatPath(id, "/etc/x", true); err != nil || !ok || isDir {
		t.Fatalf("stat /etc/x: exists %v dir %v err %v", ok, isDir, err)
	}
	if ok, _, _ := e.StatPath(id, "/etc/x/y", true); ok {
		t.Error("/etc/x/y exists below a file")
	}
	var buf bytes.Buffer
	if err := e.CopyFrom(id, "/etc/x", "x", false, &buf); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	h, err := tr.Next()
	if err != nil || h.Name != "x" {
		t.Fatalf("first entry %v, %v", h, err)
	}
	if b, _ := io.ReadAll(tr); string(b) != "bound content" {
		t.Errorf("content %q", b)
	}
}

// mkTarBytes is a tar holding one file.
func mkTarBytes(t *testing.T, name, body string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(body))
	tw.Close()
	return b.Bytes()
}

// TestCpOutIsAHostCopy: what cp copies out of a container lands on the
// host as the caller's plain files: a container's .wh..wh..opq does not
// empty the destination, set-id bits go, and device nodes are refused.
func TestCpOutIsAHostCopy(t *testing.T) {
	bb := busyboxImage(t)
	id := strings.TrimSpace(berthOK(t, "create", bb, "true"))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	e := testEngine(t)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range []*tar.Header{
		{Name: "data/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "data/.wh..wh..opq", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "data/suid", Typeflag: tar.TypeReg, Mode: 0o4755},
		{Name: "dev0/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "dev0/tty9", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 4, Devminor: 9},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	if err := e.CopyTo(id, "/", &b); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	keep := filepath.Join(dst, "data", "keep")
	if err := os.MkdirAll(filepath.Dir(keep), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keep, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.CopyOut(id, "/data", dst, "data", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("the host's own file is gone: %v", err)
	}
	if st, err := os.Lstat(filepath.Join(dst, "data", ".wh..wh..opq")); err != nil || !st.Mode().IsRegular() {
		t.Errorf(".wh..wh..opq did not land as a file: %v", err)
	}
	if st, err := os.Stat(filepath.Join(dst, "data", "suid")); err != nil || st.Mode()&os.ModeSetuid != 0 {
		t.Errorf("suid: %v, mode %v: the set-id bit reached the host", err, st.Mode())
	}
	if err := e.CopyOut(id, "/dev0", dst, "dev0", false); err == nil {
		t.Error("a device node was copied out to the host")
	}
	if _, err := os.Lstat(filepath.Join(dst, "dev0", "tty9")); err == nil {
		t.Error("the device node exists on the host")
	}
}

// TestJoinedNetnsIsChecked: a container made with --network container:NAME
// is checked, before it starts, to be in NAME's network namespace; one that
// is elsewhere (NAME died and its pid went to another process) is refused.
func TestJoinedNetnsIsChecked(t *testing.T) {
	bb := busyboxImage(t)
	id := strings.TrimSpace(berthOK(t, "run", "-d", "--network", "none", bb, "sleep", "60"))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	e := testEngine(t)
	st, err := e.Runtime.State(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.checkJoinedNetns("container:"+id, st.Pid); err != nil {
		t.Errorf("the container's own init: %v", err)
	}
	// This test process stands for the pid's new owner: the host's netns.
	if err := e.checkJoinedNetns("container:"+id, os.Getpid()); err == nil || !strings.Contains(err.Error(), "went away") {
		t.Errorf("a process in another network namespace: %v, want refused", err)
	}
	berthOK(t, "stop", "-t", "0", id)
	if err := e.checkJoinedNetns("container:"+id, st.Pid); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("after the container stopped: %v, want not running", err)
	}
}
