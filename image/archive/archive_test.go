package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthproject/berth/image"
	"github.com/berthproject/berth/internal/fixture"
	"github.com/berthproject/berth/store"
	v1 "github.com/google/go-containerregistry/pkg/v1"
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

// withImages returns a store holding busybox as bb:1 and bb:2 and a
// second image sharing nothing, with their config digests.
func withImages(t *testing.T) (*store.Store, v1.Hash, v1.Hash) {
	t.Helper()
	s := openStore(t)
	p := filepath.Join(t.TempDir(), "bb.tar")
	if err := fixture.BusyboxTar(p); err != nil {
		t.Skipf("busybox: %v", err)
	}
	f, _ := os.Open(p)
	defer f.Close()
	img, _, err := image.Import(s, f, "bb:1", image.ImportOptions{Changes: []string{`CMD ["sh"]`}})
	if err != nil {
		t.Fatal(err)
	}
	s.Tag("bb:1", "localhost/bb:2")
	other, _, err := image.Import(s, bytes.NewReader(tarOf(t, map[string]string{"hello": "world\n"})), "other", image.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := img.ConfigName()
	b, _ := other.ConfigName()
	return s, a, b
}

func tarOf(t *testing.T, files map[string]string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n, c := range files {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg})
		tw.Write([]byte(c))
	}
	tw.Close()
	return buf.Bytes()
}

func TestSaveLoadRoundTrip(t *testing.T) {
	src, bbID, otherID := withImages(t)
	for _, format := range []string{DockerArchive, OCIArchive} {
		for _, gz := range []bool{false, true} {
			var buf bytes.Buffer
			if err := Save(src, &buf, []string{"bb:1", "localhost/bb:2", "other"}, format, nil); err != nil {
				t.Fatal(err)
			}
			data := buf.Bytes()
			if gz {
				var z bytes.Buffer
				zw := gzip.NewWriter(&z)
				zw.Write(data)
				zw.Close()
				data = z.Bytes()
			}
			dst := openStore(t)
			loaded, err := Load(dst, bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s gz=%v: %v", format, gz, err)
			}
			if len(loaded) == 0 {
				t.Fatalf("%s: nothing loaded", format)
			}
			for ref, want := range map[string]v1.Hash{"bb:1": bbID, "localhost/bb:2": bbID, "other": otherID} {
				img, err := dst.Image(ref, "")
				if err != nil {
					t.Fatalf("%s gz=%v: %s not loaded: %v", format, gz, ref, err)
				}
				if id, _ := img.ConfigName(); id != want {
					t.Fatalf("%s: %s has ID %s, want %s (IDs survive save/load)", format, ref, id, want)
				}
				if format == OCIArchive {
					a, _ := img.Digest()
					orig, _ := src.Image(ref, "")
					b, _ := orig.Digest()
					if a != b {
						t.Fatalf("oci-archive: %s manifest %s, want %s", ref, a, b)
					}
				}
			}
			if res, _ := dst.Check(false); len(res.Problems) != 0 {
				t.Fatalf("%s: loaded store has problems: %v", format, res.Problems)
			}
			// Nothing but the images' own blobs: legacy files are dropped.
			if res, _ := dst.Check(false); res.Blobs != 6 {
				t.Fatalf("%s: %d blobs in the loaded store, want 6", format, res.Blobs)
			}
		}
	}
}

func TestLoadRefusesBadArchives(t *testing.T) {
	dst := openStore(t)
	// Something there before, so "unchanged" means something.
	pre, _, err := image.Import(dst, bytes.NewReader(tarOf(t, map[string]string{"a": "b"})), "pre", image.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := treeDigest(t, dst.Root)
	evil := tarOf(t, map[string]string{"../../etc/cron.d/evil": "* * * * * root id\n"})
	evilSum := sha256.Sum256(evil)
	cfg := fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%x"]}}`, evilSum)
	cfgSum := sha256.Sum256([]byte(cfg))
	goodLayer := tarOf(t, map[string]string{"ok": "fine"})
	goodSum := sha256.Sum256(goodLayer)
	wrongCfg := fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%x"]}}`, evilSum)
	wrongCfgSum := sha256.Sum256([]byte(wrongCfg))
	cases := map[string]struct {
		files map[string]string
		want  string
	}{
		"traversal layer": {map[string]string{
			fmt.Sprintf("%x.json", cfgSum): cfg, "evil.tar": string(evil),
			"manifest.json": fmt.Sprintf(`[{"Config":"%x.json","RepoTags":["evil:1"],"Layers":["evil.tar"]}]`, cfgSum),
		}, "escapes"},
		"layer differs from config": {map[string]string{
			"c.json": wrongCfg, "good.tar": string(goodLayer),
			"manifest.json": `[{"Config":"c.json","RepoTags":["x:1"],"Layers":["good.tar"]}]`,
		}, "config says"},
		"missing layer": {map[string]string{
			"c.json":        cfg,
			"manifest.json": `[{"Config":"c.json","RepoTags":["x:1"],"Layers":["nope.tar"]}]`,
		}, "no file"},
		"oci blob with a wrong digest": {map[string]string{
			"oci-layout":                            `{"imageLayoutVersion":"1.0.0"}`,
			fmt.Sprintf("blobs/sha256/%x", goodSum): `{"not":"the layer"}`,
			"index.json":                            `{"schemaVersion":2,"manifests":[]}`,
		}, "digest"},
		"not an archive": {map[string]string{"hello.txt": "{}"}, "not a docker or OCI archive"},
		"bad tag":        {map[string]string{"manifest.json": `[{"Config":"c.json","RepoTags":["UP:x"],"Layers":[]}]`}, "invalid reference"},
	}
	_ = wrongCfgSum
	// Layers are checked in parallel: a hostile one among good ones.
	good2 := tarOf(t, map[string]string{"ok2": "fine too"})
	threeCfg := fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%x","sha256:%x","sha256:%x"]}}`, goodSum, evilSum, sha256.Sum256(good2))
	cases["hostile layer among good ones"] = struct {
		files map[string]string
		want  string
	}{map[string]string{
		"c.json": threeCfg, "good.tar": string(goodLayer), "evil.tar": string(evil), "good2.tar": string(good2),
		"manifest.json": `[{"Config":"c.json","RepoTags":["x:1"],"Layers":["good.tar","evil.tar","good2.tar"]}]`,
	}, "escapes"}
	// A layer the store has, under another layer's diffID: its snapshot
	// would be taken for that other layer's.
	pm, _ := pre.Manifest()
	preLayer, _ := os.ReadFile(dst.BlobPath(pm.Layers[0].Digest))
	lieCfg := fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%x"]}}`, goodSum)
	lieCfgSum := sha256.Sum256([]byte(lieCfg))
	lieMan := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%x","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]}`,
		lieCfgSum, len(lieCfg), pm.Layers[0].Digest, pm.Layers[0].Size)
	lieManSum := sha256.Sum256([]byte(lieMan))
	cases["stored layer under another diffID"] = struct {
		files map[string]string
		want  string
	}{map[string]string{
		"oci-layout": `{"imageLayoutVersion":"1.0.0"}`,
		"blobs/sha256/" + pm.Layers[0].Digest.Hex: string(preLayer),
		fmt.Sprintf("blobs/sha256/%x", lieCfgSum): lieCfg,
		fmt.Sprintf("blobs/sha256/%x", lieManSum): lieMan,
		"index.json": fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%x","size":%d,"annotations":{"org.opencontainers.image.ref.name":"localhost/lie:1"}}]}`, lieManSum, len(lieMan)),
	}, "config says"}
	for name, c := range cases {
		_, err := Load(dst, bytes.NewReader(tarOf(t, c.files)))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("%s: err = %v, want one line with %q", name, err, c.want)
		}
		if treeDigest(t, dst.Root) != before {
			t.Fatalf("%s: the refused archive changed the store", name)
		}
	}
	if _, err := Load(dst, strings.NewReader("garbage garbage")); err == nil {
		t.Fatal("garbage loaded")
	}
	if !errors.Is(func() error {
		_, err := Load(dst, bytes.NewReader(tarOf(t, cases["traversal layer"].files)))
		return err
	}(), store.ErrHostileLayer) {
		t.Fatal("traversal not reported as a hostile layer")
	}
}

func podman(t *testing.T) func(args ...string) ([]byte, error) {
	t.Helper()
	fixture.RequireRoot(t)
	bin := fixture.RequireBinary(t, "podman", "podman")
	dir := t.TempDir()
	return func(args ...string) ([]byte, error) {
		full := append([]string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}, args...)
		cmd := exec.Command(bin, full...)
		cmd.Env = append(os.Environ(), "TMPDIR="+dir)
		return cmd.CombinedOutput()
	}
}

func TestPodmanInterop(t *testing.T) {
	pm := podman(t)
	src, bbID, _ := withImages(t)
	dir := t.TempDir()
	// podman load of berth's archives (podman 4.3 takes one image per oci-archive).
	for _, format := range []string{DockerArchive, OCIArchive} {
		p := filepath.Join(dir, format+".tar")
		f, _ := os.Create(p)
		if err := Save(src, f, []string{"bb:1"}, format, nil); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if out, err := pm("load", "-i", p); err != nil || !strings.Contains(string(out), "docker.io/library/bb:1") {
			t.Fatalf("podman load %s: %v\n%s", format, err, out)
		}
		out, err := pm("image", "inspect", "--format", "{{.Id}}", "docker.io/library/bb:1")
		if err != nil || strings.TrimSpace(string(out)) != bbID.Hex {
			t.Fatalf("podman sees ID %q (%v), want %s", out, err, bbID.Hex)
		}
		pm("rmi", "-a", "-f")
	}
	// berth load of podman save, both formats.
	f, _ := os.Create(filepath.Join(dir, "in.tar"))
	Save(src, f, []string{"bb:1"}, DockerArchive, nil)
	f.Close()
	if out, err := pm("load", "-i", filepath.Join(dir, "in.tar")); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	for _, format := range []string{DockerArchive, OCIArchive} {
		p := filepath.Join(dir, "podman-"+format+".tar")
		if out, err := pm("save", "--format", format, "-o", p, "docker.io/library/bb:1"); err != nil {
			t.Fatalf("podman save: %v %s", err, out)
		}
		dst := openStore(t)
		f, _ := os.Open(p)
		loaded, err := Load(dst, f)
		f.Close()
		if err != nil {
			t.Fatalf("berth load of podman %s: %v", format, err)
		}
		// podman's docker-archive keeps the image ID; its oci-archive
		// rewrites the config, so there the manifest must be podman's.
		want := bbID
		if format == OCIArchive {
			out, _ := exec.Command("tar", "-xOf", p, "index.json").Output()
			var idx v1.IndexManifest
			json.Unmarshal(out, &idx)
			if len(idx.Manifests) != 1 || loaded[0].Digest != idx.Manifests[0].Digest {
				t.Fatalf("berth load of podman oci-archive: manifest %s, archive has %s", loaded[0].Digest, out)
			}
			want = loaded[0].ID
		}
		if len(loaded) != 1 || len(loaded[0].Names) != 1 || loaded[0].Names[0] != "docker.io/library/bb:1" || loaded[0].ID != want {
			t.Fatalf("berth load of podman %s: %+v, want bb:1 with ID %s", format, loaded, want)
		}
		img, _ := dst.Image("bb:1", "")
		cf, _ := img.ConfigFile()
		if strings.Join(cf.Config.Cmd, " ") != "sh" {
			t.Fatalf("config lost: %+v", cf.Config)
		}
		if res, _ := dst.Check(false); len(res.Problems) != 0 {
			t.Fatal(res.Problems)
		}
	}
}

// FuzzLoadManifest feeds docker manifest.json contents to the parser.
func FuzzLoadManifest(f *testing.F) {
	f.Add([]byte(`[{"Config":"c.json","RepoTags":["busybox:latest"],"Layers":["a/layer.tar"]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, err := ParseDockerManifest(data)
		if err != nil {
			return
		}
		for _, m := range ms {
			for _, p := range append([]string{m.Config}, m.Layers...) {
				if strings.Contains(p, "..") {
					t.Fatalf("accepted path %q", p)
				}
			}
		}
	})
}

// FuzzLoadIndex feeds OCI index.json contents to the parser.
func FuzzLoadIndex(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0a2f5f5617836051016e746acdfdbfc0f2e45ff1f2d014ac78ac5630178be297","size":405}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		im, err := ParseOCIIndex(data)
		if err != nil {
			return
		}
		for _, d := range im.Manifests {
			if len(d.Digest.Hex) != 64 {
				t.Fatalf("accepted digest %q", d.Digest)
			}
		}
	})
}

// FuzzLoadArchive loads arbitrary archives: never a panic, and a failed
// load leaves the store as it was.
func FuzzLoadArchive(f *testing.F) {
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := store.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		before := treeDigest(t, s.Root)
		if _, err := Load(s, bytes.NewReader(data)); err != nil && treeDigest(t, s.Root) != before {
			t.Fatalf("failed load (%v) changed the store", err)
		}
	})
}
