package store

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/berthproject/berth/internal/fixture"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomImage(t *testing.T, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(2048, layers)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func treeDigest(t *testing.T, root string) string { return fixture.TreeDigest(t, root) }

func TestWriteResolveList(t *testing.T) {
	s := openTemp(t)
	img := randomImage(t, 3)
	want, _ := img.Digest()
	got, err := s.Write(img, "example:1", "localhost/x/y:2")
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("Write returned %s, image digest %s", got, want)
	}
	cfg, _ := img.ConfigName()
	for _, ref := range []string{"example:1", "docker.io/library/example:1", "localhost/x/y:2", cfg.String(), cfg.Hex[:12], "example@" + want.String()} {
		r, err := s.Image(ref, "")
		if err != nil {
			t.Fatalf("Image(%q): %v", ref, err)
		}
		if d, _ := r.Digest(); d != want {
			t.Fatalf("Image(%q) = %s, want %s", ref, d, want)
		}
	}
	if _, err := s.Image("example:2", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown tag: err = %v", err)
	}
	entries, _ := s.List()
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
	}
	if strings.Join(names, ",") != "docker.io/library/example:1,localhost/x/y:2" {
		t.Fatalf("names = %v", names)
	}
	// Every blob the manifest references is on disk, verified.
	res, err := s.Check(false)
	if err != nil || len(res.Problems) != 0 {
		t.Fatalf("check: %v %v", res.Problems, err)
	}
	if res.Blobs != 5 { // 3 layers, config, manifest
		t.Fatalf("blobs = %d, want 5", res.Blobs)
	}
}

func TestIngestRefusesCorruptBlob(t *testing.T) {
	s := openTemp(t)
	before := treeDigest(t, s.Root)
	wrong := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	if _, err := s.Ingest(strings.NewReader("hello"), IngestOptions{Digest: &wrong, Size: 5}); err == nil {
		t.Fatal("blob with the wrong digest was accepted")
	}
	sum := sha256.Sum256([]byte("hello"))
	right := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sum)}
	if _, err := s.Ingest(strings.NewReader("hello"), IngestOptions{Digest: &right, Size: 6}); err == nil {
		t.Fatal("blob with the wrong size was accepted")
	}
	if after := treeDigest(t, s.Root); after != before {
		t.Fatal("a refused blob changed the store")
	}
	// A layer whose content does not match the config's diffID.
	img := randomImage(t, 1)
	other := randomImage(t, 1)
	ol, _ := other.Layers()
	cf, _ := img.ConfigFile()
	bad, err := mutate.ConfigFile(img, cf) // same config ...
	if err != nil {
		t.Fatal(err)
	}
	bad, _ = mutate.Append(mustBase(t, bad), mutate.Addendum{Layer: ol[0]})
	cf2, _ := bad.ConfigFile()
	cf2.RootFS.DiffIDs[0] = cf.RootFS.DiffIDs[0] // ... lying about the layer
	bad, _ = mutate.ConfigFile(bad, cf2)
	if _, err := s.Write(bad, "bad"); err == nil || !strings.Contains(err.Error(), "uncompressed digest") {
		t.Fatalf("layer with a wrong diffID: err = %v", err)
	}
	if after := treeDigest(t, s.Root); after != before {
		t.Fatal("a refused image changed the store")
	}
}

func mustBase(t *testing.T, img v1.Image) v1.Image {
	t.Helper()
	cf, _ := img.ConfigFile()
	cf.RootFS.DiffIDs = nil
	base, err := mutate.ConfigFile(emptyOCI(), cf)
	if err != nil {
		t.Fatal(err)
	}
	return base
}

func TestHostileLayerRefused(t *testing.T) {
	s := openTemp(t)
	before := treeDigest(t, s.Root)
	for _, c := range []struct{ name, link string }{
		{"../evil", ""}, {"a/../../evil", ""}, {"/etc/evil", ""}, {"ok", "../../etc/shadow"},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		hdr := &tar.Header{Name: c.name, Mode: 0o644, Typeflag: tar.TypeReg, Size: 1}
		if c.link != "" {
			hdr = &tar.Header{Name: c.name, Typeflag: tar.TypeLink, Linkname: c.link}
		}
		tw.WriteHeader(hdr)
		if hdr.Size > 0 {
			tw.Write([]byte("x"))
		}
		tw.Close()
		_, err := s.Ingest(&buf, IngestOptions{Size: -1, Layer: true})
		if !errors.Is(err, ErrHostileLayer) || !strings.Contains(err.Error(), c.name) {
			t.Fatalf("%s -> %s: err = %v, want hostile layer naming the entry", c.name, c.link, err)
		}
	}
	// A decompression bomb past the limit.
	s.MaxLayerBytes = 1 << 20
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "big", Mode: 0o644, Size: 2 << 20})
	tw.Write(make([]byte, 2<<20))
	tw.Close()
	if _, err := s.Ingest(&buf, IngestOptions{Size: -1, Compress: true}); !errors.Is(err, ErrHostileLayer) {
		t.Fatalf("bomb: err = %v", err)
	}
	if after := treeDigest(t, s.Root); after != before {
		t.Fatal("a refused layer changed the store")
	}
}

func TestConcurrentWriters(t *testing.T) {
	s := openTemp(t)
	shared := randomImage(t, 1)
	if _, err := s.Write(shared, "shared"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each goroutine opens its own Store: separate lock fds, as
			// separate berth processes would have.
			st, err := Open(s.Root)
			if err != nil {
				errs <- err
				return
			}
			img, _ := random.Image(1024, 2)
			if _, err := st.Write(img, fmt.Sprintf("w%d", i)); err != nil {
				errs <- err
			}
			for j := 0; j < 5; j++ {
				if err := st.Tag("shared", fmt.Sprintf("t%d-%d", i, j)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	entries, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1+8+40 {
		t.Fatalf("index has %d entries, want 49", len(entries))
	}
	res, err := s.Check(false)
	if err != nil || len(res.Problems) != 0 {
		t.Fatalf("check after concurrent writes: %v %v", res.Problems, err)
	}
}

func TestLayersStoredOnce(t *testing.T) {
	s := openTemp(t)
	base := randomImage(t, 2)
	extra, _ := random.Layer(1024, "application/vnd.oci.image.layer.v1.tar+gzip")
	child, err := mutate.AppendLayers(base, extra)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(base, "base"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(child, "child"); err != nil {
		t.Fatal(err)
	}
	blobs, _ := s.blobList()
	// 3 distinct layers + 2 configs + 2 manifests.
	if len(blobs) != 7 {
		t.Fatalf("%d blobs, want 7 (shared layers stored once)", len(blobs))
	}
	// Removing the child keeps the base's layers.
	if _, err := s.Remove("child", false); err != nil {
		t.Fatal(err)
	}
	blobs, _ = s.blobList()
	if len(blobs) != 4 {
		t.Fatalf("%d blobs after rmi child, want 4", len(blobs))
	}
	if res, _ := s.Check(false); len(res.Problems) != 0 {
		t.Fatal(res.Problems)
	}
}

func TestRemoveSemantics(t *testing.T) {
	s := openTemp(t)
	img := randomImage(t, 1)
	d, _ := s.Write(img, "a", "b")
	id, _ := img.ConfigName()
	// An ID with two names needs force.
	if _, err := s.Remove(id.Hex[:12], false); err == nil {
		t.Fatal("rmi by ID with two names succeeded without -f")
	}
	res, err := s.Remove("a", false)
	if err != nil || len(res.Untagged) != 1 || len(res.Deleted) != 0 {
		t.Fatalf("rmi a: %+v %v", res, err)
	}
	// In use by a container: refused, -f only untags.
	os.MkdirAll(filepath.Join(s.Root, "containers", "c1"), 0o755)
	j, _ := json.Marshal(map[string]string{"ImageDigest": d.String()})
	os.WriteFile(filepath.Join(s.Root, "containers", "c1", "berth.json"), j, 0o644)
	if _, err := s.Remove("b", false); !errors.Is(err, ErrInUse) {
		t.Fatalf("rmi of an image in use: err = %v", err)
	}
	if _, err := s.Remove("b", true); err != nil {
		t.Fatal(err)
	}
	entries, _ := s.List()
	if len(entries) != 1 || entries[0].Name != "" || entries[0].Descriptor.Digest != d {
		t.Fatalf("after rmi -f of an image in use: %+v, want one dangling entry", entries)
	}
	if r, _ := s.Prune(true); len(r.Removed) != 0 {
		t.Fatal("prune removed an image in use")
	}
	os.RemoveAll(filepath.Join(s.Root, "containers", "c1"))
	r, err := s.Prune(false)
	if err != nil || len(r.Removed) != 1 || r.Reclaimed == 0 {
		t.Fatalf("prune: %+v %v", r, err)
	}
	if blobs, _ := s.blobList(); len(blobs) != 0 {
		t.Fatalf("%d blobs left after prune", len(blobs))
	}
	// Retagging a name to another image leaves the old one dangling.
	i1, i2 := randomImage(t, 1), randomImage(t, 1)
	s.Write(i1, "x")
	s.Write(i2, "x")
	entries, _ = s.List()
	if len(entries) != 2 || entries[1].Name != "" {
		t.Fatalf("retag: %+v", entries)
	}
}

func TestCheckRepair(t *testing.T) {
	s := openTemp(t)
	good, bad := randomImage(t, 1), randomImage(t, 1)
	s.Write(good, "good")
	s.Write(bad, "bad")
	ls, _ := bad.Layers()
	ld, _ := ls[0].Digest()
	if err := os.WriteFile(s.blobPath(ld), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.Root, "tmp", "blob-123"), []byte("half"), 0o644)
	res, err := s.Check(false)
	if err != nil || len(res.Problems) != 3 { // bad blob, the ref needing it, tmp leftover
		t.Fatalf("check: %v %v", res.Problems, err)
	}
	res, err = s.Check(true)
	if err != nil || len(res.Repaired) < 2 {
		t.Fatalf("repair: %+v %v", res, err)
	}
	if res, _ := s.Check(false); len(res.Problems) != 0 {
		t.Fatalf("after repair: %v", res.Problems)
	}
	if _, err := s.Image("good", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Image("bad", ""); err == nil {
		t.Fatal("broken image kept after repair")
	}
}

func TestIndexPlatforms(t *testing.T) {
	s := openTemp(t)
	amd, arm := randomImage(t, 1), randomImage(t, 1)
	setPlat := func(img v1.Image, arch string) v1.Image {
		cf, _ := img.ConfigFile()
		cf.OS, cf.Architecture = "linux", arch
		out, _ := mutate.ConfigFile(img, cf)
		return out
	}
	amd, arm = setPlat(amd, "amd64"), setPlat(arm, "arm64")
	idx := mutate.AppendManifests(emptyIndex(),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}})
	if _, err := s.WriteIndex(idx, "multi"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Image("multi", "linux/arm64")
	if err != nil {
		t.Fatal(err)
	}
	if a, b := digestOf(got), digestOf(arm); a != b {
		t.Fatalf("arm64 pick = %s, want %s", a, b)
	}
	_, err = s.Image("multi", "linux/s390x")
	if err == nil || !strings.Contains(err.Error(), "linux/amd64, linux/arm64/v8") {
		t.Fatalf("no matching platform: err = %v", err)
	}
	if _, err := s.Image("multi", "linux/amd64"); err != nil {
		t.Fatal(err)
	}
	// A child manifest is found by its digest (what a container records).
	if got, err := s.Image(digestOf(arm).String(), ""); err != nil || digestOf(got) != digestOf(arm) {
		t.Fatalf("child by digest: %v", err)
	}
}

func digestOf(img v1.Image) v1.Hash { d, _ := img.Digest(); return d }

var _ = io.EOF

func TestRepairUnreadableIndex(t *testing.T) {
	s := openTemp(t)
	a, b := randomImage(t, 1), randomImage(t, 2)
	s.Write(a, "a")
	s.Write(b, "b")
	os.WriteFile(s.indexPath(), []byte(`{"schemaVersion":2,"manifests":[{"trunc`), 0o644)
	if res, err := s.Check(false); err != nil || len(res.Problems) != 1 || !strings.HasPrefix(res.Problems[0], "index.json") {
		t.Fatalf("check of a broken index.json: %+v %v", res, err)
	}
	if res, err := s.Check(true); err != nil || len(res.Repaired) != 1 {
		t.Fatalf("repair: %+v %v", res, err)
	}
	for _, img := range []v1.Image{a, b} {
		if _, err := s.Image(digestOf(img).String(), ""); err != nil {
			t.Fatalf("image lost by the repair: %v", err)
		}
	}
	if entries, _ := s.List(); len(entries) != 2 {
		t.Fatalf("%d entries after rebuild, want 2", len(entries))
	}
	if res, _ := s.Check(false); len(res.Problems) != 0 {
		t.Fatal(res.Problems)
	}
}
