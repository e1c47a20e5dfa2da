package layer

import (
	"archive/tar"
	"bytes"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
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
