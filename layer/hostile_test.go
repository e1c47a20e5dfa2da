package layer

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/berthproject/berth/internal/fixture"
)

// TestOwnerOutOfRange: tar ids are 64-bit, the kernel's uid_t 32-bit. A
// setuid file "owned by" 1<<32 (or by -1, chown's "leave it") would land
// root-owned, with its bit, while the tar listing shows no root owner.
func TestOwnerOutOfRange(t *testing.T) {
	for _, id := range []int{1 << 32, 1<<32 - 1, -1, 1<<32 + 1000} {
		for _, gid := range []bool{false, true} {
			dir, check := sandbox(t)
			e := ent{name: "bin/su", body: "x", typ: tar.TypeReg, mode: 0o4755, uid: 1000, gid: 1000}
			if gid {
				e.gid = id
			} else {
				e.uid = id
			}
			_, err := Apply(dir, bytes.NewReader(mkTar(t, dirE("bin"), e)), Options{})
			if err == nil {
				var st syscall.Stat_t
				syscall.Lstat(filepath.Join(dir, "bin/su"), &st)
				t.Fatalf("id %d (gid=%v) accepted: owner %d:%d mode %o", id, gid, st.Uid, st.Gid, st.Mode)
			}
			if !strings.Contains(err.Error(), `"bin/su"`) {
				t.Errorf("error does not name the entry: %v", err)
			}
			check()
		}
	}
	// The largest valid id still applies.
	dir, _ := sandbox(t)
	mustApply(t, dir, mkTar(t, ent{name: "f", typ: tar.TypeReg, mode: 0o644, uid: 1<<32 - 2, gid: 1<<32 - 2}), Options{})
}

// TestHostCopy: a tree a container hands to the host (cp out) keeps no
// device node, owner, set-id bit or capability of the container's, and
// its .wh. names are files: a container's /data/.wh..wh..opq emptied the
// host directory `cp CTR:/data/. DIR` copied into.
func TestHostCopy(t *testing.T) {
	dir, check := sandbox(t)
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	tr := mkTar(t,
		ent{name: "sh", body: "x", typ: tar.TypeReg, mode: 0o6755, uid: 0, gid: 0},
		ent{name: "mine", body: "x", typ: tar.TypeReg, mode: 0o644, uid: 1000, gid: 1000},
		ent{name: "capped", body: "x", typ: tar.TypeReg, mode: 0o755, xattrs: map[string]string{"security.capability": "\x01\x00\x00\x02\xc0\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}},
		ent{name: "sgid/", typ: tar.TypeDir, mode: 0o2755, uid: 1000},
		file(".wh.precious", ""),
		file(".wh..wh..opq", ""),
	)
	mustApply(t, dir, tr, Options{HostCopy: true, PlainWhiteouts: true})
	check()
	if got := readFile(t, filepath.Join(dir, "precious")); got != "mine" {
		t.Errorf("precious = %q: a .wh. name removed the host's file", got)
	}
	for _, n := range []string{".wh.precious", ".wh..wh..opq"} {
		if _, err := os.Lstat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s not copied as a file: %v", n, err)
		}
	}
	fixture.CheckHostCopy(t, dir, "sh", "mine", "capped", "sgid")
	// A device node is refused outright.
	dir2, _ := sandbox(t)
	_, err := Apply(dir2, bytes.NewReader(mkTar(t, ent{name: "sda", typ: tar.TypeBlock, mode: 0o666, major: 8})), Options{HostCopy: true})
	if err == nil || !strings.Contains(err.Error(), `"sda"`) {
		t.Errorf("device node: err = %v", err)
	}
}
