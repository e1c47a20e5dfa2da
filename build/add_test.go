package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func mkTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, n := range keys2(files) {
		c := files[n]
		if strings.HasSuffix(n, "/") {
			tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeDir, Mode: 0o755})
			continue
		}
		tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o640, Size: int64(len(c)), Uid: 7, Gid: 8})
		tw.Write([]byte(c))
	}
	tw.Close()
	return b.Bytes()
}

func keys2(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sortStrings(ks)
	return ks
}

// ADD extracts local archives (plain, gzip, zstd) into the destination,
// keeping the archive's owners and modes; a file that is not an archive
// is copied as is.
func TestAddArchives(t *testing.T) {
	e := newEnv(t)
	plain := mkTar(t, map[string]string{"p/": "", "p/one": "1"})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(mkTar(t, map[string]string{"g/two": "2"}))
	zw.Close()
	var zs bytes.Buffer
	zsw, _ := zstd.NewWriter(&zs)
	zsw.Write(mkTar(t, map[string]string{"z/three": "3"}))
	zsw.Close()
	dir := writeContext(t, map[string]string{
		"Dockerfile":  "FROM scratch\nADD plain.tar /x/\nADD a.tar.gz /x\nADD b.tar.zst /x/\nADD notatar.txt /x/\nADD --unpack=false plain.tar /kept/\n",
		"notatar.txt": "just text",
	})
	os.WriteFile(filepath.Join(dir, "plain.tar"), plain, 0o644)
	os.WriteFile(filepath.Join(dir, "a.tar.gz"), gz.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, "b.tar.zst"), zs.Bytes(), 0o644)
	r, out := e.mustBuild(dir, nil)
	fs := tree(t, rootfsOf(t, onlyImage(t, r)))
	for _, p := range []string{"x/p/one", "x/g/two", "x/z/three", "x/notatar.txt", "kept/plain.tar"} {
		if _, ok := fs[p]; !ok {
			t.Errorf("%s missing: %v\n%s", p, keys(fs), out)
		}
	}
	if f := fs["x/g/two"]; f.UID != 7 || f.GID != 8 || f.Mode != 0o640 {
		t.Errorf("archive owner/mode not kept: %v", f)
	}
}

// A hostile archive (an entry climbing out with ..) is refused.
func TestAddHostileArchive(t *testing.T) {
	e := newEnv(t)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "../../escape", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM scratch\nADD evil.tar /x/\n"})
	os.WriteFile(filepath.Join(dir, "evil.tar"), b.Bytes(), 0o644)
	_, _, err := e.build(dir, nil)
	if err == nil || !strings.Contains(err.Error(), "climbs out") || !strings.Contains(err.Error(), "Dockerfile:2") {
		t.Errorf("hostile archive: %v", err)
	}
}

// ADD URL: fetched, not extracted, mode 0600, --checksum verified; an
// unreachable server is a clear error.
func TestAddURL(t *testing.T) {
	e := newEnv(t)
	body := "remote content\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(body))
	}))
	defer srv.Close()
	sum := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(body)))
	dir := writeContext(t, map[string]string{
		"Dockerfile": fmt.Sprintf("FROM scratch\nADD %s/files/remote.txt /dl/\nADD --checksum=%s %s/files/remote.txt /checked.txt\n", srv.URL, sum, srv.URL),
	})
	r, out := e.mustBuild(dir, nil)
	root := rootfsOf(t, onlyImage(t, r))
	if got := readFile(t, filepath.Join(root, "dl/remote.txt")); got != body {
		t.Errorf("fetched %q", got)
	}
	if f := tree(t, root)["dl/remote.txt"]; f.Mode != 0o600 {
		t.Errorf("mode %o", f.Mode)
	}
	if got := readFile(t, filepath.Join(root, "checked.txt")); got != body {
		t.Errorf("checked %q\n%s", got, out)
	}
	bad := "sha256:" + strings.Repeat("0", 64)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(fmt.Sprintf("FROM scratch\nADD --checksum=%s %s/files/remote.txt /x\n", bad, srv.URL)), 0o644)
	if _, _, err := e.build(dir, nil); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("bad checksum: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nADD http://127.0.0.1:1/nothing /x\n"), 0o644)
	if _, _, err := e.build(dir, nil); err == nil || !strings.Contains(err.Error(), "cannot fetch (offline or unreachable?)") || !strings.Contains(err.Error(), "Dockerfile:2") {
		t.Errorf("offline: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY "+srv.URL+"/x /x\n"), 0o644)
	if _, _, err := e.build(dir, nil); err == nil || !strings.Contains(err.Error(), "COPY does not fetch URLs") {
		t.Errorf("COPY URL: %v", err)
	}
}
