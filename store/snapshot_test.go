package store

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/berthproject/berth/internal/fixture"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func tarLayer(t *testing.T, files map[string]string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, content := range files {
		if strings.HasSuffix(name, "/") {
			tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755})
			continue
		}
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content))})
		tw.Write([]byte(content))
	}
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestSnapshotsByChainID(t *testing.T) {
	fixture.RequireRoot(t) // whiteouts are 0:0 char devices
	s := openTemp(t)
	base := tarLayer(t, map[string]string{"etc/": "", "etc/os": "base\n", "etc/gone": "x"})
	top := tarLayer(t, map[string]string{"etc/": "", "etc/os": "top\n", "etc/.wh.gone": ""})
	img1, _ := mutate.AppendLayers(emptyOCI(), base)
	img2, _ := mutate.AppendLayers(img1, top)
	if _, err := s.Write(img1, "one"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(img2, "two"); err != nil {
		t.Fatal(err)
	}
	stored, _ := s.Image("two", "")
	var wg sync.WaitGroup
	results := make([][]string, 4)
	errs := make([]error, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, _ := Open(s.Root)
			results[i], errs[i] = st.Snapshots(stored)
		}()
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if strings.Join(results[i], ":") != strings.Join(results[0], ":") {
			t.Fatalf("racing Snapshots disagree: %v vs %v", results[i], results[0])
		}
	}
	dirs := results[0]
	cf, _ := stored.ConfigFile()
	chains := ChainIDs(cf.RootFS.DiffIDs)
	if len(dirs) != 2 || dirs[0] != filepath.Join(s.Root, "snapshots", chains[0].Hex, "fs") || dirs[1] != filepath.Join(s.Root, "snapshots", chains[1].Hex, "fs") {
		t.Fatalf("dirs = %v, chains %v", dirs, chains)
	}
	if got, _ := os.ReadFile(filepath.Join(dirs[0], "etc/os")); string(got) != "base\n" {
		t.Fatalf("base layer etc/os = %q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(dirs[1], "etc/os")); string(got) != "top\n" {
		t.Fatalf("top layer etc/os = %q", got)
	}
	fi, err := os.Lstat(filepath.Join(dirs[1], "etc/gone"))
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("whiteout not an overlay char device: %v %v", fi, err)
	}
	// The base image shares the first snapshot: nothing new is unpacked.
	one, _ := s.Image("one", "")
	d1, err := s.Snapshots(one)
	if err != nil || len(d1) != 1 || d1[0] != dirs[0] {
		t.Fatalf("shared snapshot: %v %v", d1, err)
	}
	snaps, _ := s.snapshotIDs()
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots, want 2", len(snaps))
	}
	if res, _ := s.Check(false); len(res.Problems) != 0 || res.Snapshots != 2 {
		t.Fatalf("check: %+v", res)
	}
	// Removing "two" drops its top snapshot, keeps the shared one.
	if _, err := s.Remove("two", false); err != nil {
		t.Fatal(err)
	}
	snaps, _ = s.snapshotIDs()
	if len(snaps) != 1 || snaps[0] != chains[0] {
		t.Fatalf("after rmi: snapshots %v", snaps)
	}
	// A half-made snapshot (no diffid) is found and repaired.
	os.Remove(filepath.Join(s.SnapshotDir(chains[0]), "diffid"))
	if res, _ := s.Check(true); len(res.Repaired) != 1 {
		t.Fatalf("repair: %+v", res)
	}
	if _, err := os.Stat(s.SnapshotDir(chains[0])); !os.IsNotExist(err) {
		t.Fatal("broken snapshot kept")
	}
}

func TestSnapshotRefusesDamagedBlob(t *testing.T) {
	fixture.RequireRoot(t)
	s := openTemp(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5})
	tw.Write([]byte("hello"))
	tw.Close()
	b, err := s.Ingest(&buf, IngestOptions{Size: -1, Layer: true})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := s.Layer(b) // stored uncompressed: a flipped byte is no gzip error
	img, _ := mutate.AppendLayers(emptyOCI(), l)
	if _, err := s.Write(img, "x"); err != nil {
		t.Fatal(err)
	}
	stored, _ := s.Image("x", "")
	ls, _ := stored.Layers()
	d, _ := ls[0].Digest()
	// Flip a byte in the stored (uncompressed) layer's content.
	data, _ := os.ReadFile(s.blobPath(d))
	i := bytes.Index(data, []byte("hello"))
	data[i] = 'j'
	os.WriteFile(s.blobPath(d), data, 0o644)
	if _, err := s.Snapshots(stored); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("snapshot of a damaged blob: %v", err)
	}
	if snaps, _ := s.snapshotIDs(); len(snaps) != 0 {
		t.Fatal("a damaged blob became a snapshot")
	}
}
