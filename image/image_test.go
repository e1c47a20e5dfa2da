package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/berthproject/berth/internal/fixture"
	"github.com/berthproject/berth/store"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func treeDigest(t *testing.T, root string) string { return fixture.TreeDigest(t, root) }

func fileSHA(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestImportDebian imports a debootstrapped bookworm rootfs: the stored
// layer is the tarball byte for byte (diffID = its sha256) and the
// unpacked snapshot holds every entry with its type, mode, owner, size,
// content and link target.
func TestImportDebian(t *testing.T) {
	fixture.RequireRoot(t)
	tarPath, err := fixture.DebianTar()
	if err != nil {
		t.Skipf("no Debian rootfs: %v", err)
	}
	s := openStore(t)
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := Import(s, f, "debian:bookworm", ImportOptions{Changes: []string{`CMD ["/bin/bash"]`}})
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if got := "sha256:" + fileSHA(t, tarPath); cf.RootFS.DiffIDs[0].String() != got {
		t.Fatalf("diffID %s, tarball sha256 %s", cf.RootFS.DiffIDs[0], got)
	}
	if cf.Architecture != store.HostPlatform().Architecture || cf.OS != "linux" || strings.Join(cf.Config.Cmd, " ") != "/bin/bash" {
		t.Fatalf("config: %+v", cf)
	}
	stored, err := s.Image("debian:bookworm", "")
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := s.Snapshots(stored)
	if err != nil {
		t.Fatal(err)
	}
	root := dirs[0]
	f.Seek(0, 0)
	tr := tar.NewReader(f)
	n := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, hdr.Name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatalf("%s: %v", hdr.Name, err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != hdr.Uid || int(st.Gid) != hdr.Gid {
			t.Fatalf("%s: owner %d:%d, tar %d:%d", hdr.Name, st.Uid, st.Gid, hdr.Uid, hdr.Gid)
		}
		if hdr.Typeflag != tar.TypeSymlink && uint32(fi.Mode().Perm()) != uint32(hdr.Mode)&0o777 {
			t.Fatalf("%s: mode %v, tar %o", hdr.Name, fi.Mode(), hdr.Mode)
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			h := sha256.New()
			io.Copy(h, tr)
			if !fi.Mode().IsRegular() || fi.Size() != hdr.Size || fileSHA(t, p) != fmt.Sprintf("%x", h.Sum(nil)) {
				t.Fatalf("%s: content differs from the tarball", hdr.Name)
			}
		case tar.TypeSymlink:
			if target, _ := os.Readlink(p); target != hdr.Linkname {
				t.Fatalf("%s: symlink to %q, tar %q", hdr.Name, target, hdr.Linkname)
			}
		case tar.TypeDir:
			if !fi.IsDir() {
				t.Fatalf("%s: not a directory", hdr.Name)
			}
		case tar.TypeLink:
			other, err := os.Lstat(filepath.Join(root, hdr.Linkname))
			if err != nil || !os.SameFile(fi, other) {
				t.Fatalf("%s: not a hardlink of %s", hdr.Name, hdr.Linkname)
			}
		}
		n++
	}
	if n < 5000 {
		t.Fatalf("only %d entries in the Debian tarball", n)
	}
	t.Logf("%d entries match", n)
	if out, err := exec.Command("chroot", root, "/bin/cat", "/etc/debian_version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "12") {
		t.Fatalf("chroot cat /etc/debian_version: %s %v", out, err)
	}
}

func busyboxTar(t *testing.T) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bb.tar")
	if err := fixture.BusyboxTar(p); err != nil {
		t.Skipf("busybox: %v", err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestImportCompressedInputsAndChanges(t *testing.T) {
	plain := busyboxTar(t)
	var gz, zs bytes.Buffer
	zw := pgzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	ze, _ := zstd.NewWriter(&zs)
	ze.Write(plain)
	ze.Close()
	s := openStore(t)
	changes := []string{
		`CMD ["/bin/sh", "-c", "echo hi"]`, `ENTRYPOINT /bin/env`, `ENV A=1 B="two words"`, `WORKDIR /srv`,
		`USER 65534:65534`, `EXPOSE 80 53/udp`, `LABEL org.example=yes`, `VOLUME /data`, `STOPSIGNAL SIGTERM`,
	}
	var ids []string
	for i, in := range [][]byte{plain, gz.Bytes(), zs.Bytes()} {
		img, _, err := Import(s, bytes.NewReader(in), fmt.Sprintf("bb:%d", i), ImportOptions{Changes: changes, Platform: "linux/arm64"})
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		ids = append(ids, cf.RootFS.DiffIDs[0].String())
		c := cf.Config
		if cf.Architecture != "arm64" || strings.Join(c.Cmd, "|") != "/bin/sh|-c|echo hi" || strings.Join(c.Entrypoint, "|") != "/bin/sh|-c|/bin/env" ||
			strings.Join(c.Env, ",") != "A=1,B=two words" || c.WorkingDir != "/srv" || c.User != "65534:65534" ||
			len(c.ExposedPorts) != 2 || c.Labels["org.example"] != "yes" || len(c.Volumes) != 1 || c.StopSignal != "SIGTERM" {
			t.Fatalf("config from --change: %+v", cf)
		}
	}
	sum := sha256.Sum256(plain)
	for _, id := range ids {
		if id != fmt.Sprintf("sha256:%x", sum) {
			t.Fatalf("diffIDs %v, want all sha256 of the plain tar", ids)
		}
	}
	// Three imports of one rootfs: one layer blob.
	res, _ := s.Check(false)
	if res.Blobs != 1+3+3 || len(res.Problems) != 0 {
		t.Fatalf("blobs %d problems %v", res.Blobs, res.Problems)
	}
}

func TestImportRefusesBadInput(t *testing.T) {
	s := openStore(t)
	before := treeDigest(t, s.Root)
	cases := map[string]struct {
		in      []byte
		changes []string
		tag     string
		want    string
	}{
		"not a tar":      {in: bytes.Repeat([]byte("hello "), 200), want: "not a valid tar"},
		"bad change":     {in: busyboxTar(t), changes: []string{"RUN rm -rf /"}, want: "not allowed"},
		"garbage change": {in: busyboxTar(t), changes: []string{"CMD"}, want: "--change"},
		"bad name":       {in: busyboxTar(t), tag: "UPPER:case", want: "invalid reference"},
		"traversal":      {in: evilTar(), want: "escapes"},
	}
	for name, c := range cases {
		tag := c.tag
		if tag == "" {
			tag = "x"
		}
		_, _, err := Import(s, bytes.NewReader(c.in), tag, ImportOptions{Changes: c.changes})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("%s: err = %v, want one line with %q", name, err, c.want)
		}
	}
	if treeDigest(t, s.Root) != before {
		t.Fatal("refused imports changed the store")
	}
}

func evilTar() []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/../../etc/cron.d/evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	return buf.Bytes()
}

func TestListInspectHistory(t *testing.T) {
	s := openStore(t)
	bb := busyboxTar(t)
	img, d, err := Import(s, bytes.NewReader(bb), "localhost/bb:1", ImportOptions{Message: "from test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tag("localhost/bb:1", "bb"); err != nil {
		t.Fatal(err)
	}
	rows, err := List(s)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := img.ConfigName()
	if len(rows) != 2 || rows[0].Repository != "bb" || rows[0].Tag != "latest" || rows[1].Repository != "localhost/bb" || rows[0].ID != id.String() || rows[0].Size == 0 {
		t.Fatalf("rows %+v", rows)
	}
	// SIZE is unpacked, as docker and podman show it: the tar, not the gzip blob.
	if rows[0].Size != int64(len(bb)) {
		t.Fatalf("size %d, the imported tar has %d bytes", rows[0].Size, len(bb))
	}
	in, err := InspectImage(s, "bb", "")
	if err != nil {
		t.Fatal(err)
	}
	if in.Id != id.String() || strings.Join(in.RepoTags, ",") != "bb:latest,localhost/bb:1" || in.RepoDigests[0] != "bb@"+d.String() || in.Os != "linux" || len(in.RootFS.Layers) != 1 || in.Comment != "from test" || in.Size != int64(len(bb)) {
		t.Fatalf("inspect %+v", in)
	}
	hs, err := History(img)
	if err != nil || len(hs) != 1 || hs[0].Comment != "from test" || hs[0].Size == 0 {
		t.Fatalf("history %+v %v", hs, err)
	}
	if hs, err := HistoryIn(s, img); err != nil || len(hs) != 1 || hs[0].Size != int64(len(bb)) {
		t.Fatalf("history in the store %+v %v, want the tar's %d bytes", hs, err, len(bb))
	}
}

// TestUmociReadsTheStore: berth's oci/ dir is a layout umoci can unpack
// by the full ref name.
func TestUmociReadsTheStore(t *testing.T) {
	fixture.RequireRoot(t)
	umoci := fixture.RequireBinary(t, "umoci", "umoci")
	s := openStore(t)
	if _, _, err := Import(s, bytes.NewReader(busyboxTar(t)), "localhost/bb:1", ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "bundle")
	if o, err := exec.Command(umoci, "unpack", "--image", s.Root+"/oci:localhost/bb:1", out).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, o)
	}
	if fileSHA(t, filepath.Join(out, "rootfs/bin/busybox")) != fileSHA(t, fixture.BusyboxBinary) {
		t.Fatal("umoci's rootfs has a different busybox")
	}
	if o, err := exec.Command(umoci, "ls", "--layout", s.Root+"/oci").Output(); err != nil || strings.TrimSpace(string(o)) != "localhost/bb:1" {
		t.Fatalf("umoci ls: %q %v", o, err)
	}
}

// The stored layer's compression can be chosen; the diffID is the tar's
// whatever it is, and the layer unpacks.
func TestImportCompressionChoice(t *testing.T) {
	s := openStore(t)
	bb := busyboxTar(t)
	want := fmt.Sprintf("sha256:%x", sha256.Sum256(bb))
	for comp, mt := range map[string]types.MediaType{"zstd": types.OCILayerZStd, "none": types.OCIUncompressedLayer, "": types.OCILayer} {
		img, _, err := Import(s, bytes.NewReader(bb), "localhost/c:"+comp+"x", ImportOptions{Compression: comp})
		if err != nil {
			t.Fatalf("%q: %v", comp, err)
		}
		m, _ := img.Manifest()
		cf, _ := img.ConfigFile()
		if m.Layers[0].MediaType != mt || cf.RootFS.DiffIDs[0].String() != want {
			t.Fatalf("%q: layer %s, diffID %s; want %s, %s", comp, m.Layers[0].MediaType, cf.RootFS.DiffIDs[0], mt, want)
		}
		if comp == "none" && m.Layers[0].Digest.String() != want {
			t.Fatalf("plain layer stored as %s, not the tar itself", m.Layers[0].Digest)
		}
		dirs, err := s.Snapshots(img)
		if err != nil {
			t.Fatalf("%q: unpack: %v", comp, err)
		}
		if _, err := os.Lstat(filepath.Join(dirs[0], "bin", "busybox")); err != nil {
			t.Fatalf("%q: unpacked layer: %v", comp, err)
		}
	}
	before := treeDigest(t, s.Root)
	if _, _, err := Import(s, bytes.NewReader(bb), "localhost/c:bad", ImportOptions{Compression: "lz4"}); err == nil || !strings.Contains(err.Error(), "lz4") {
		t.Fatalf("unknown compression: err = %v", err)
	}
	if treeDigest(t, s.Root) != before {
		t.Fatal("a refused import changed the store")
	}
}
